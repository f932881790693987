"""Grids: where cases come from. Named grids (registered by plugins), TOML files and random samples
produce `Case`s; TOML grids and random samples lazily, in any number. (benchdnn batch files:
`convparity.harness.cases.batch_file`.)

TOML grid file:

    description = "what this grid checks"

    [[product]]              # the cartesian product of every listed axis (more tables add more)
    in_channels = [4, 8]     # axes: batch in_channels out_channels input_size kernel_size stride
    input_size = [[9, 9]]    #       padding dilation groups bias transposed output_padding; a
    kernel_size = [[3, 3]]   #       missing axis takes the ConvSpec default (batch 2, stride 1, ...)
    padding = [0, "same", [[0, 1], [1, 0]]]

    [[case]]                 # explicit cases: a descriptor, or the same fields as single values
    descriptor = "mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2"
    bias = false
    name = "blog post"

    [[case]]                 # a transposed convolution: transposed = true, or a deconv: descriptor
    descriptor = "deconv:mb2ic8ih4oc4kh4sh2ph1"

Combinations of a product that are not valid convolutions (groups not dividing the channels, a
kernel larger than the padded input) are skipped; an invalid explicit case is an error.
"""

from __future__ import annotations

import itertools
import math
import random
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convparity.harness.cases.dedupe import SeenSet
from convparity.harness.cases.descriptor import Case, DescriptorError, check_name, parse_case
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import ConvparityError

SPEC_FIELDS = (
    "batch",
    "in_channels",
    "out_channels",
    "input_size",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "transposed",
    "output_padding",
)


class GridError(ConvparityError, ValueError):
    """A grid source that cannot be read; the message names the file, line or field at fault."""


@dataclass(frozen=True)
class Grid:
    """A named list of cases, built on demand."""

    name: str
    description: str
    cases: Callable[[], list[Case]]


MAX_FILE_BYTES = 1 << 30


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of a grid or batch file; GridError naming the file when it cannot be read, is no regular file
    (a FIFO or a device would block or never end) or is larger than MAX_FILE_BYTES."""
    try:
        path.stat()  # raises for a loop of symbolic links, which is_file() would take for a missing file
        if not path.is_file():
            kind = "folder" if path.is_dir() else "special file (a FIFO, a device or a socket)" if path.exists() \
                else "missing file"
            raise GridError(f"{what} {path} is a {kind}, not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise GridError(f"{what} {path} is larger than {MAX_FILE_BYTES >> 20} MiB")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise GridError(f"{what} {path} is not UTF-8 text: byte 0x{error.object[error.start]:02x} at offset "
                        f"{error.start}") from None
    except OSError as error:
        raise GridError(f"cannot read {what} {path}: {error.strerror}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _well_typed(field: str, value: Any) -> bool:
    """Whether `value` has a type `field` accepts, so a product skips only geometrically invalid combinations."""
    if field in ("bias", "transposed"):
        return isinstance(value, bool)
    if field in ("batch", "in_channels", "out_channels", "groups"):
        return _is_int(value)
    if field == "padding":
        if value in ("same", "valid") or _is_int(value):
            return True
        return isinstance(value, list) and all(
            _is_int(v) or (isinstance(v, list) and len(v) == 2 and all(map(_is_int, v))) for v in value)
    return _is_int(value) or (isinstance(value, list) and all(map(_is_int, value)))


def check_case_name(name: str, where: str) -> str:
    """`name`, or GridError naming where it is, when a case name may not hold what it holds."""
    try:
        check_name(name)
    except ValueError as error:
        raise GridError(f"{where}: {error}") from None
    return name


def _tables(value: Any, path: Path, key: str) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise GridError(f"{path}: {key!r} must be an array of tables, written [[{key}]]")
    return value


def _spec_from_fields(fields: dict[str, Any], where: str) -> ConvSpec:
    unknown = sorted(set(fields) - set(SPEC_FIELDS))
    if unknown:
        raise GridError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join(SPEC_FIELDS)})")
    for required in ("in_channels", "out_channels", "input_size", "kernel_size"):
        if required not in fields:
            raise GridError(f"{where}: missing field {required!r}")
    try:
        return ConvSpec(**{"batch": 2, **{k: _tuples(v) for k, v in fields.items()}})
    except (TypeError, ValueError) as error:
        raise GridError(f"{where}: {error}") from None


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class TomlGrid:
    """A TOML grid file, validated: iterate it for its cases (lazily: a product of any size streams).

    `size` counts every combination of the products plus the explicit cases: an upper bound, since
    combinations that are not valid convolutions are skipped.
    """

    path: Path
    description: str
    products: tuple[dict[str, list], ...]
    explicit: tuple[Case, ...]

    @property
    def size(self) -> int:
        return sum(math.prod(len(values) for values in axes.values()) for axes in self.products) + len(self.explicit)

    def __iter__(self) -> Iterator[Case]:
        for axes in self.products:
            for combo in itertools.product(*axes.values()):
                try:
                    spec = ConvSpec(**{k: _tuples(v) for k, v in zip(axes, combo)})
                except (TypeError, ValueError):
                    continue
                yield Case(spec)
        yield from self.explicit


def read_toml_grid(path: str | Path) -> TomlGrid:
    """A TOML grid file, checked throughout (see the module docstring for the format)."""
    path = Path(path)
    text = read_text(path, "grid file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        where = str(error).replace("(at end of document)", f"(at line {len(text.splitlines())}, end of file)")
        raise GridError(f"{path}: invalid TOML: {where}") from None
    unknown = sorted(set(data) - {"description", "product", "case", "name"})
    if unknown:
        raise GridError(f"{path}: unknown table or key {unknown[0]!r} (expected description, product, case)")
    products = []
    for index, table in enumerate(_tables(data.get("product", []), path, "product")):
        where = f"{path}: [[product]] #{index + 1}"
        axes = {}
        for key, values in table.items():
            if key not in SPEC_FIELDS:
                raise GridError(f"{where}: unknown axis {key!r} (axes: {', '.join(SPEC_FIELDS)})")
            if not isinstance(values, list) or not values:
                raise GridError(f"{where}: axis {key!r} must be a non-empty list of values")
            for value in values:
                if not _well_typed(key, value):
                    raise GridError(f"{where}: axis {key!r} has a value of the wrong type: {value!r}")
            axes[key] = values
        fields = {"batch": [2], **axes}
        for required in ("in_channels", "out_channels", "input_size", "kernel_size"):
            if required not in fields:
                raise GridError(f"{where}: missing axis {required!r}")
        products.append(fields)
    explicit = []
    for index, table in enumerate(_tables(data.get("case", []), path, "case")):
        where = f"{path}: [[case]] #{index + 1}"
        table = dict(table)
        name = str(table.pop("name", ""))
        if "descriptor" in table:
            descriptor, bias = table.pop("descriptor"), table.pop("bias", True)
            if table:
                raise GridError(f"{where}: a case with a descriptor takes only name and bias, not {sorted(table)}")
            if not isinstance(bias, bool):
                raise GridError(f"{where}: bias must be true or false, got {bias!r}")
            try:
                explicit.append(Case(parse_case(str(descriptor), bias=bias).spec, check_case_name(name, where)))
            except DescriptorError as error:
                raise GridError(f"{where}: {error}") from None
        else:
            explicit.append(Case(_spec_from_fields(table, where), check_case_name(name, where)))
    return TomlGrid(path, str(data.get("description", "")), tuple(products), tuple(explicit))


def random_specs(seed: int) -> Iterator[ConvSpec]:
    """An endless stream of valid specs drawn from a broad space: ranks 1 to 3, groups and depthwise,
    asymmetric padding, stride and dilation up to 3, bias on and off. Same seed, same stream."""
    rng = random.Random(seed)
    while True:
        rank = rng.choice((1, 2, 2, 3))
        groups = rng.choice((1, 1, 2, 3, 4))
        in_channels = groups * rng.randint(1, 4)
        depthwise = rng.random() < 0.2
        if depthwise:
            groups = in_channels
        out_channels = groups * rng.randint(1, 3)
        largest = {1: 24, 2: 12, 3: 7}[rank]
        try:
            yield ConvSpec(
                batch=rng.randint(1, 3),
                in_channels=in_channels,
                out_channels=out_channels,
                input_size=tuple(rng.randint(1, largest) for _ in range(rank)),
                kernel_size=tuple(rng.randint(1, 5) for _ in range(rank)),
                stride=tuple(rng.randint(1, 3) for _ in range(rank)),
                padding=tuple((rng.randint(0, 3), rng.randint(0, 3)) for _ in range(rank)),
                dilation=tuple(rng.choice((1, 1, 2, 3)) for _ in range(rank)),
                groups=groups,
                bias=rng.random() < 0.7,
            )
        except ValueError:
            continue


def random_cases(count: int, seed: int, seen: SeenSet | None = None) -> Iterator[Case]:
    """`count` distinct cases from `random_specs(seed)` (distinct also from those in `seen`), lazily,
    named random-SEED-K."""
    if not isinstance(count, int) or count < 1:
        raise GridError(f"--random must be a positive number of cases, got {count}")
    own = seen is None
    seen = seen or SeenSet()
    try:
        made = 0
        for spec in random_specs(seed):
            if made == count:
                return
            if seen.add(spec):
                yield Case(spec, f"random-{seed}-{made}")
                made += 1
    finally:
        if own:
            seen.close()
