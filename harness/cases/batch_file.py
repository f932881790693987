"""benchdnn batch files for the conv driver, read as benchdnn reads them: tokens -> options -> cases.

Tokens (`tests/benchdnn/common.cpp: batch`): the file splits at whitespace (space, tab, newline, \\v,
\\f, \\r); a token that starts with `#` drops the rest of its line; a token that ends with `\\` is
joined to the next token (a lone `\\` joins the tokens on either side of it). Several descriptors and
options may share a line.

Options (`conv/bench_conv.cpp: bench`, `utils/parser.{hpp,cpp}`) are read in order and stay in force
for every later descriptor, across `--batch=` includes in both directions (benchdnn keeps one
settings object per run), until `--reset` puts the driver options back to their defaults. A value
option is `--name=VALUE`; `--name=` alone restores its default; a comma-separated VALUE gives one
problem per value, and a descriptor gives one problem per combination (`check_correctness`).

What each option means here:
- honoured: `--dir` (which tensors are compared and whether there is a bias, see `DIRECTIONS`),
  `--dt` (benchdnn's DT or SRC:WEI:DST, harness.vocabulary.check_dtype: floats, 8-bit floats and 8-bit
  integers, mixed) and the legacy `--cfg`, `--bia-dt` (a bias for FWD_D, FWD_I and BWD_W, and its data
  type), `--mb` (replaces the descriptor's mb; 0 keeps it, as in benchdnn), `--attr-post-ops`,
  `--attr-scales` and `--attr-zero-points` (the spec's attributes: harness.cases.attributes), `--match`
  (benchdnn's POSIX basic regular expression, searched in the problem as benchdnn prints it:
  `problem_text`), `--start` (skips the first N problems), `--reset`, `--batch`.
- skipping: values whose meaning convparity cannot compute make the problems that use them
  `Skipped`, one `Note` per option value: a fused depthwise (`dw`) or comparison post-op, scales of a
  fused depthwise convolution, dropout, stochastic rounding, precomputed reductions, non-strict fpmath
  or accumulation modes, 4-bit, 64-bit and boolean data types, gradients of an integer or scaled
  convolution, `--dir=BWD_DW` (benchdnn's conv cannot create it), a zero batch, and problems benchdnn
  parses but that are no ConvSpec (see `Desc.spec`).
- ignored (`Ignored`, with the reason): options that only choose oneDNN's implementation, memory
  layout, engine, threading or run mode. Ignored options do not multiply problems.
Anything else starting with `-` is an error, as in benchdnn (which exits on it), and so is a
descriptor `str2desc` rejects.

The conv driver reads descriptors as convolutions; `BatchFile(path, driver="deconv")` reads them as
benchdnn's deconv driver does (`benchdnn --deconv --batch=FILE`): transposed convolutions.

A `BatchFile` yields each spec once, at its first place, comparing the tensors of every problem with
that spec (FWD_D, BWD_D and BWD_W of one descriptor are one case comparing y, dx and dw). Its cases
keep the dtype their options give them (`Case.fixed_dtype`): a run's dtypes do not apply to them.

Deliberate differences from benchdnn:
- `--batch=FILE` is resolved against the folder of the file that includes it (benchdnn tries the
  current folder, then the folders of files read so far, then its installed inputs/conv); an
  include cycle is an error (benchdnn recurses until it crashes).
- Option values are checked when the option is read, not when the next descriptor is.
- A FWD_B / BWD_WB bias of a float convolution has the case's dtype (benchdnn uses f32, f64 for f64
  weights); its values are drawn in that dtype, so they are the same numbers in both. An integer
  convolution's FWD_B bias is f32 in real units, as benchdnn's.
- A common scale is read as benchdnn's `stof` reads it (a float32 value); a scale's data type is ignored,
  since every value convparity uses is exact in bf16 and f16.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from convparity.harness.cases.attributes import (
    BENCHDNN_TYPES,
    AttributeOptionError,
    Quantization,
    parse_post_ops,
    parse_scales,
    parse_zero_points,
)
from convparity.harness.cases.dedupe import spec_digest
from convparity.harness.cases.descriptor import Case, Desc, DescriptorError, parse_desc
from convparity.harness.cases.descriptor_format import DIMS
from convparity.harness.cases.grids import GridError, read_text
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.inert_text import abbreviated
from convparity.harness.vocabulary import check_dtype

# --dir value -> (tensors compared, bias); None: decided by --bia-dt. (conv.cpp: get_kinds_to_check)
DIRECTIONS: dict[str, tuple[tuple[str, ...], bool | None]] = {
    "FWD_B": (("y",), True),
    "FWD_D": (("y",), None),
    "FWD_I": (("y",), None),
    "BWD_D": (("dx",), False),
    "BWD_W": (("dw",), None),
    "BWD_WB": (("dw", "db"), True),
    "BWD_DW": (("dx", "dw"), False),
}
NO_DTYPE = ("s64", "s4", "u4", "boolean", "e8m0", "f4_e2m1", "undef")  # str2dt names convparity has no type for
DT_NAMES = (*BENCHDNN_TYPES, *NO_DTYPE)
# Legacy --cfg names (conv/cfg.cpp before oneDNN b41c6cf0d1, 2023; f32_full, f32_no_limits from v1.x).
_CFG_SPELLED = ("f16", "f32", "f64", "u8s8f32", "u8s8f16", "u8s8bf16", "u8s8s32", "u8s8s8", "u8s8u8", "s8s8f32",
                "s8s8f16", "s8s8bf16", "s8s8s32", "s8s8s8", "s8s8u8", "bf16bf16f32", "bf16bf16f16", "bf16bf16s8",
                "bf16bf16u8", "f32bf16bf16", "bf16f32bf16", "f32f32s8", "f32f32u8", "f16f16f32", "f16f16s8",
                "f16f16u8", "f32f16f16", "f16f32f16")
CFG = {
    **{name: tuple(re.findall(r"bf16|f16|f32|f64|s8|u8|s32", name)) for name in _CFG_SPELLED},
    "f32_wino": ("f32",), "f32_full": ("f32",), "f32_no_limits": ("f32",), "bf16bf16bf16": ("bf16",),
}
# The attribute options that are the spec's own (harness.cases.attributes).
HONOURED_ATTRIBUTES = ("attr-post-ops", "attr-scales", "attr-zero-points")
# Attribute options convparity cannot compute: the values that leave the convolution as it is, and what any other
# value does.
ATTRIBUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "attr-precomputed-reductions": (("",), "precomputed reductions belong to integer zero points"),
    "attr-dropout": (("",), "dropout changes the result"),
    "attr-rounding-mode": (("", "environment", "dst:environment"),
                           "stochastic rounding draws its own random bits; convparity's reference rounds to nearest"),
    "attr-fpmath": (("", "strict", "strict:true", "strict:false"),
                    "lets oneDNN compute below the data type's precision; convparity's bound assumes strict math"),
    "attr-acc-mode": (("", "strict"),
                      "lets oneDNN accumulate below strict precision; convparity's bound assumes strict"),
}
_IMPLEMENTATION = "chooses oneDNN's implementation"
_LAYOUT = "chooses a memory layout"
_ENGINE = "chooses the engine, threading or memory kind"
_MODE = "sets benchdnn's run mode or output"
IGNORED = {
    **dict.fromkeys(("alg", "impl", "skip-impl", "global-impl", "global-skip-impl", "attr-scratchpad",
                     "attr-deterministic", "check-ref-impl", "cpu-isa-hints", "attr-same-pd-check", "fast-ref"),
                    _IMPLEMENTATION),
    **dict.fromkeys(("stag", "wtag", "dtag", "strides", "allow-enum-tags-only"), _LAYOUT),
    **dict.fromkeys(("engine", "ctx-init", "ctx-exe", "memory-kind", "stream-kind", "execution-mode",
                     "num-streams"), _ENGINE),
    **dict.fromkeys(("mode", "mode-modifier", "perf-template", "canonical", "verbose", "summary",
                     "fix-times-per-prb", "max-ms-per-prb", "repeats-per-prb", "mem-check", "cold-cache",
                     "buffer-prefix"), _MODE),
}
DRIVERS = ("conv", "deconv")
_WHITESPACE_TOKEN = re.compile(r"[^ \t\n\v\f\r]+")


class BatchFileError(GridError):
    """A batch file benchdnn would stop on, or that cannot be read; the message names file and line."""


SHIPPED = Path(__file__).resolve().parent / "batch_files"  # oneDNN's files the docs use (with its license)


def shipped_batch_files() -> dict[str, Path]:
    """The batch files convparity ships, by name (harness/cases/batch_files/<source>/<name>)."""
    return {path.name: path for path in sorted(SHIPPED.glob("*/*"))
            if path.is_file() and path.name not in ("LICENSE", "README.md")}


def find_batch_file(name: str) -> Path | None:
    """NAME as a path when it is a file, else the shipped batch file of that name (a bare name only), else None."""
    path = Path(name)
    if path.is_file():
        return path
    return shipped_batch_files().get(name) if path.name == name else None


@dataclass(frozen=True)
class Note:
    """Why a problem is skipped: the option value (or descriptor part) and what it means."""

    option: str
    why: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.option}: {self.why}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Skipped:
    """A problem benchdnn would run that convparity cannot compute as benchdnn means it."""

    descriptor: str
    where: str
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Ignored:
    """An option read and left out of every case, with the reason."""

    option: str
    where: str
    why: str


class BatchFile:
    """A batch file (with its includes), read through once on construction, so errors surface before any case
    runs: iterate it for its cases, each spec once (at its first place) comparing the tensors of every problem
    with that spec; `size` counts them; `summary` says what was read, matched, skipped and ignored.

    `driver`: "conv" (benchdnn --conv) or "deconv" (benchdnn --deconv: the descriptors are transposed
    convolutions). The cases are kept (about a kilobyte each), so the file is read once.
    """

    def __init__(self, path: str | Path, driver: str = "conv") -> None:
        if driver not in DRIVERS:
            raise BatchFileError(f"driver must be one of {', '.join(DRIVERS)}, got {driver!r}")
        self.path = Path(path)
        self.driver = driver
        cases: dict[bytes, Case] = {}
        problems = skipped_problems = unmatched = 0
        skipped: dict[str, dict] = {}
        ignored: dict[str, dict] = {}
        for item in iter_batch(self.path, driver):
            if isinstance(item, Case):
                problems += 1
                key = spec_digest(item.spec)
                known = cases.get(key)
                cases[key] = item if known is None else replace(known, tensors=known.tensors + item.tensors)
            elif isinstance(item, Skipped):
                problems += 1
                skipped_problems += 1
                for note in dict.fromkeys(item.notes):
                    first = f"{item.where}: {note.option}" + (f" ({note.detail})" if note.detail else "")
                    skipped.setdefault(note.why, {"problems": 0, "first": first})["problems"] += 1
            elif isinstance(item, Unmatched):
                unmatched += 1
            else:
                name = item.option.split("=", 1)[0]
                ignored.setdefault(name, {"tokens": 0, "why": item.why, "first": item.where})["tokens"] += 1
        self._cases = list(cases.values())
        # problems: benchdnn's (layout and implementation variants not counted) that --match and --start let run;
        # cases: distinct specs computed.
        self.summary = {"problems": problems, "computed": problems - skipped_problems, "cases": len(self._cases),
                        "skipped": skipped_problems, "not_matched": unmatched, "skipped_by_reason": skipped,
                        "ignored_options": ignored}

    @property
    def size(self) -> int:
        return len(self._cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self._cases)


@dataclass(frozen=True)
class Unmatched:
    """A problem `--match` or `--start` leaves out, as benchdnn does (counted, not run)."""

    where: str


@dataclass
class _Settings:
    """The conv driver options that decide what is computed (benchdnn's `settings_t`, defaults)."""

    dir: tuple[str, ...] = ("FWD_B",)
    dt: tuple[tuple[str, ...], ...] = (("f32",),)
    cfg: tuple[str, ...] = ("",)
    bia_dt: tuple[str, ...] = ("undef",)
    mb: tuple[int, ...] = (0,)
    attributes: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {name: ("",) for name in (*HONOURED_ATTRIBUTES, *ATTRIBUTES)})
    match: re.Pattern | None = None


def iter_batch(path: str | Path, driver: str = "conv") -> Iterator[Case | Skipped | Ignored | Unmatched]:
    """The cases, skipped and unmatched problems and ignored options of a batch file, in the order benchdnn
    meets them, read by benchdnn's conv or deconv driver."""
    yield from _Reader(driver == "deconv").read(Path(path), ())


def read_tokens(path: Path) -> Iterator[tuple[str, int]]:
    """benchdnn's argv from a batch file: (token, line number of its start)."""
    text = read_text(path, "batch file")
    pending: tuple[str, int] | None = None
    joining = False
    skip_to, line, counted = -1, 1, 0
    for match in _WHITESPACE_TOKEN.finditer(text):
        if match.start() < skip_to:
            continue
        line += text.count("\n", counted, match.start())
        counted = match.start()
        token = match.group()
        if token.startswith("#"):
            newline = text.find("\n", match.end())
            skip_to = len(text) if newline < 0 else newline
            continue
        if joining:
            if pending is None:
                raise BatchFileError(f"{path}:{line}: a line continuation '\\' with nothing before it")
            token, start = pending[0] + token, pending[1]
            pending = None
        else:
            start = line
        joining = token.endswith("\\")
        if joining:
            token = token[:-1]
            if not token:  # a lone backslash joins the tokens on either side of it
                continue
        if pending is not None:
            yield pending
        pending = (token, start)
    if pending is not None:
        yield pending


class _Reader:
    def __init__(self, transposed: bool) -> None:
        self.settings = _Settings()
        self.transposed = transposed
        self.start = 0  # --start: a global setting, not reset by --reset
        self.index = 0  # problems met so far (benchdnn's task counter)
        self.specs: dict[tuple, ConvSpec | Note] = {}

    def read(self, path: Path, stack: tuple[Path, ...]) -> Iterator[Case | Skipped | Ignored | Unmatched]:
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as error:  # a loop of symbolic links
            raise BatchFileError(f"cannot read batch file {path}: {error}") from None
        if resolved in stack:
            chain = " -> ".join(str(p) for p in (*stack[stack.index(resolved):], resolved))
            raise BatchFileError(f"batch files include each other in a cycle: {chain}")
        for token, line in read_tokens(path):
            where = f"{path}:{line}"
            if token.startswith("--batch="):
                include = token[len("--batch="):]
                if not include:
                    raise BatchFileError(f"{where}: --batch= needs a file name")
                target = Path(include) if Path(include).is_absolute() else path.parent / include
                if not target.is_file():
                    raise BatchFileError(f"{where}: --batch={include}: no file {target}")
                yield from self.read(target, (*stack, resolved))
            elif token.startswith("-"):
                ignored = self.option(token, where)
                if ignored is not None:
                    yield ignored
            else:
                yield from self.problems(token, where)

    def option(self, token: str, where: str) -> Ignored | None:
        """Apply one option token; an ignored one comes back as `Ignored`."""
        name, equals, value = token[2:].partition("=")
        s = self.settings
        if token.startswith("--reset"):
            self.settings = _Settings()
        elif re.fullmatch(r"-v\d*", token) or (token.startswith("--help")):
            return Ignored(token, where, _MODE)
        elif not token.startswith("--") or not equals:
            hint = "options start with '--'" if not token.startswith("--") else "a value option is --NAME=VALUE"
            raise BatchFileError(f"{where}: unknown option {abbreviated(token)} ({hint})")
        elif name in IGNORED:
            return Ignored(token, where, IGNORED[name])
        elif name == "dir":
            s.dir = _values(value, ("FWD_B",), lambda v: _choice(v.upper(), DIRECTIONS, token, where))
        elif name == "dt":
            s.dt = _values(value, (("f32",),), lambda v: _data_types(v, token, where))
        elif name == "cfg":
            s.cfg = _values(value, ("",), lambda v: _choice(v.lower(), CFG, token, where))
        elif name == "bia-dt":
            s.bia_dt = _values(value, ("undef",), lambda v: _choice(v.removeprefix("dnnl_"), DT_NAMES, token, where))
        elif name == "mb":
            s.mb = _values(value, (0,), lambda v: _batch(v, token, where))
        elif name in s.attributes:
            s.attributes[name] = _values(value, ("",), lambda v: v)
        elif name == "match":
            s.match = _pattern(value, token, where) if value else None
        elif name == "start":
            if not re.fullmatch(r"\d+", value):
                raise BatchFileError(f"{where}: {token}: --start takes a non-negative int")
            self.start = int(value)
        else:
            raise BatchFileError(f"{where}: unknown option {abbreviated(token)} (not an option of benchdnn's conv "
                                 "driver)")
        return None

    def problems(self, token: str, where: str) -> Iterator[Case | Skipped | Unmatched]:
        """One case or skipped problem per combination of the options in force (benchdnn's loop order)."""
        try:
            desc = parse_desc(token, transposed=self.transposed)
        except DescriptorError as error:
            raise BatchFileError(f"{where}: {error}") from None
        s = self.settings
        dts = []
        for dt, cfg in itertools.product(s.dt, s.cfg):
            if cfg and dt != ("f32",):
                raise BatchFileError(f"{where}: --dt and the legacy --cfg cannot both be set (benchdnn refuses it)")
            dts.append((f"--cfg={cfg}", CFG[cfg]) if cfg else (f"--dt={':'.join(dt)}", dt))
        names = list(s.attributes)
        for direction, (dt_option, dt), bia_dt, values, mb in itertools.product(
            s.dir, dts, s.bia_dt, itertools.product(*s.attributes.values()), s.mb
        ):
            self.index += 1
            attributes = dict(zip(names, values))
            if self.index <= self.start or (s.match is not None and not s.match.search(
                    problem_text(desc, direction, dt, bia_dt, attributes, mb))):
                yield Unmatched(where)
                continue
            yield self.problem(desc, token, where, direction, dt_option, dt, bia_dt, mb, attributes)

    def problem(self, desc: Desc, token: str, where: str, direction: str, dt_option: str, dt: tuple[str, ...],
                bia_dt: str, mb: int, attributes: dict[str, str]) -> Case | Skipped:
        tensors, bias = DIRECTIONS[direction]
        notes = [Note(f"--{name}={value}", ATTRIBUTES[name][1]) for name, value in attributes.items()
                 if name in ATTRIBUTES and value not in ATTRIBUTES[name][0]]
        if direction == "BWD_DW":
            notes.append(Note("--dir=BWD_DW", "benchdnn's conv driver cannot create a BWD_DW primitive"))
        dtype = _dtype(dt, dt_option, notes)
        if bias is None:
            bias = bia_dt != "undef"
            if direction == "BWD_W" and bias:
                tensors = ("dw", "db")
            bias_type = bia_dt if bias else None
        else:
            bias_type = None  # FWD_B, BWD_WB: benchdnn's own bias type
        if mb == 0 and desc.batch == 0:
            notes.append(Note("mb0", "a zero batch (benchdnn runs an empty problem)"))
        if notes or dtype is None:
            return Skipped(token, where, tuple(notes))
        key = (desc, dtype, bias, bias_type, mb, *(attributes[name] for name in HONOURED_ATTRIBUTES))
        spec = self.specs.get(key)
        if spec is None:
            spec = self.specs[key] = _spec(desc, token, dtype, bias, bias_type, mb, attributes)
        if isinstance(spec, Note):
            return Skipped(token, where, (spec,))
        if not any(t in spec.tensors for t in tensors):
            return Skipped(token, where, (Note(f"--dir={direction}", "convparity compares no gradients of an integer "
                                                                      "or scaled convolution", f"dtype {dtype}"),))
        return Case(spec, desc.name, tensors, fixed_dtype=True)


def _spec(desc: Desc, token: str, dtype: str, bias: bool, bias_type: str | None, mb: int,
          attributes: dict[str, str]) -> ConvSpec | Note:
    """The spec of one problem, or the Note saying why there is none (read once per distinct key)."""
    try:
        spec = desc.spec(dtype=dtype, bias=bias, batch=mb or None)
    except DescriptorError as error:
        return Note(token, "not a convolution convparity can build", str(error))
    option = ""
    try:
        option = f"--attr-post-ops={attributes['attr-post-ops']}"
        post_ops = parse_post_ops(attributes["attr-post-ops"], spec.rank)
        quantization = Quantization()
        option = f"--attr-scales={attributes['attr-scales']}"
        quantization = parse_scales(attributes["attr-scales"], quantization, desc.grouped)
        option = f"--attr-zero-points={attributes['attr-zero-points']}"
        quantization = parse_zero_points(attributes["attr-zero-points"], quantization, desc.grouped)
        option = f"--bia-dt={bias_type}"
        quantization = replace(quantization, bias_dtype=_bias_dtype(spec, bias_type))
        option = f"--bia-dt={bias_type}" if bias_type else token
        return spec.replace(post_ops=post_ops, quantization=quantization)
    except AttributeOptionError as error:
        return Note(option, str(error).partition(": ")[2] or str(error))
    except ValueError as error:
        return Note(option, "not a convolution convparity can build", str(error))


def _bias_dtype(spec: ConvSpec, bias_type: str | None) -> str:
    """The bias data type of a problem: --bia-dt's for FWD_D, FWD_I and BWD_W; benchdnn's f32 for an integer
    convolution's FWD_B; the spec's own otherwise."""
    if bias_type is None:
        return "float32" if spec.quantized and spec.bias else ""
    name = BENCHDNN_TYPES.get(bias_type, "")
    if name not in ("int32", "float64", "float32", "float16", "bfloat16"):
        raise AttributeOptionError(f"--bia-dt={bias_type}: a bias data type convparity has no type for")
    return name


def problem_text(desc: Desc, direction: str, dt: tuple[str, ...], bia_dt: str, attributes: dict[str, str],
                 mb: int) -> str:
    """A problem as benchdnn prints it (`prb_t::set_repro_line`), the text `--match` searches: the options that
    differ from their defaults, then the descriptor with only the keys benchdnn prints (conv_aux.cpp:
    `g` when the text had one, `mb` unless 2, h and w keys unless the shape is square, `s` unless every stride is
    1, `d` unless every dilation is 0)."""
    words = []
    if direction != "FWD_B":
        words.append(f"--dir={direction}")
    if dt not in (("f32",), ("f32", "f32", "f32")):
        words.append(f"--dt={':'.join(dt)}")
    if bia_dt != "undef" and direction not in ("FWD_B", "BWD_WB"):
        words.append(f"--bia-dt={bia_dt}")
    words += [f"--{name}={value}" for name, value in attributes.items() if value]
    return " ".join(words + [benchdnn_descriptor(desc, mb)])


def benchdnn_descriptor(desc: Desc, mb: int = 0) -> str:
    """The descriptor as benchdnn prints it (conv_aux.cpp, `operator<<(desc_t)` with print_dhw)."""
    dims = dict(zip(DIMS[3 - desc.rank:], range(desc.rank)))
    columns = {"i": desc.input_size, "o": desc.output_size, "k": desc.kernel_size, "s": desc.stride,
               "p": desc.pad_begin, "d": desc.dilation}
    rows = [tuple(values) for values in zip(*columns.values())]  # per dim: (i, o, k, s, p, d)
    square = len(rows) == 2 and rows[0] == rows[1]
    cubic = len(rows) == 3 and rows[0] == rows[1] == rows[2]
    printed = {3: ("d",) if cubic else ("d", "h", "w"), 2: ("h",) if square else ("h", "w"), 1: ("w",)}[desc.rank]

    def spatial(prefix: str) -> str:
        return "".join(f"{prefix}{dim}{columns[prefix][dims[dim]]}" for dim in printed)

    batch = mb or desc.batch
    text = (f"g{desc.groups}" if desc.grouped else "") + (f"mb{batch}" if batch != 2 else "")
    text += f"ic{desc.in_channels}{spatial('i')}oc{desc.out_channels}{spatial('o')}{spatial('k')}"
    if any(s != 1 for s in desc.stride):
        text += spatial("s")
    text += spatial("p")
    if any(d != 0 for d in desc.dilation):
        text += spatial("d")
    return text + (f"n{desc.name}" if desc.name else "")


def _pattern(value: str, token: str, where: str) -> re.Pattern:
    """benchdnn's --match pattern: a POSIX basic regular expression (regcomp without REG_EXTENDED), as Python's re.

    In a basic expression + ? | ( ) { } are plain characters and their escaped forms are the operators."""
    translated = []
    escaped = False
    for char in value:
        if escaped:
            translated.append(char if char in "(){}|+?" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "+?|(){}":
            translated.append("\\" + char)
        else:
            translated.append(char)
    try:
        return re.compile("".join(translated))
    except re.error as error:
        raise BatchFileError(f"{where}: {abbreviated(token)}: not a regular expression benchdnn can use ({error})") \
            from None


def _dtype(dt: tuple[str, ...], option: str, notes: list[Note]) -> str | None:
    """The convparity dtype of src:wei:dst data types, or None with a note saying why there is none."""
    names = dt * 3 if len(dt) == 1 else dt
    missing = [n for n in dict.fromkeys(names) if n in NO_DTYPE]
    if missing:
        notes.append(Note(option, "a data type convparity has no type for", ", ".join(missing)))
        return None
    try:
        return check_dtype(":".join(BENCHDNN_TYPES[n] for n in names))
    except ValueError as error:
        notes.append(Note(option, "data types convparity cannot combine", str(error).partition(": ")[2]))
        return None


def _values(value: str, default: tuple, parse) -> tuple:
    """benchdnn's parse_vector_str: an empty value is the default, else one entry per comma."""
    return default if not value else tuple(parse(v) for v in value.split(","))


def _choice(value: str, known, token: str, where: str) -> str:
    if value not in known:
        shown = token if len(token) <= 80 else abbreviated(token)
        raise BatchFileError(f"{where}: {shown}: unknown value {abbreviated(value)} (known: "
                             f"{', '.join(k for k in known if k)})")
    return value


def _data_types(value: str, token: str, where: str) -> tuple[str, ...]:
    names = tuple(_choice(v.removeprefix("dnnl_"), DT_NAMES, token, where) for v in value.split(":"))
    if len(names) not in (1, 3):
        raise BatchFileError(f"{where}: {token}: a data type entry is DT or SRC:WEI:DST, got {len(names)} parts")
    return names


def _batch(value: str, token: str, where: str) -> int:
    if not re.fullmatch(r"0|[1-9]\d*", value):
        raise BatchFileError(f"{where}: {token}: --mb takes non-negative ints, got {value!r}")
    return int(value)
