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
  `--dt` and the legacy `--cfg` (the dtype), `--bia-dt` (a bias for FWD_D, FWD_I and BWD_W),
  `--mb` (replaces the descriptor's mb; 0 keeps it, as in benchdnn), `--reset`, `--batch`.
- skipping: values whose meaning convparity cannot compute make the problems that use them
  `Skipped`, one `Note` per option value: post-ops, scales, zero points, dropout, rounding modes,
  precomputed reductions, non-strict fpmath or accumulation modes, integer / fp8 / fp4 / mixed data
  types, `--dir=BWD_DW` (benchdnn's conv cannot create it), a zero batch, and problems benchdnn
  parses but that are no ConvSpec (see `Desc.spec`).
- ignored (`Ignored`, with the reason): options that only choose oneDNN's implementation, memory
  layout, engine, threading or run mode, and `--match` / `--start`, which only narrow the problems
  benchdnn runs (convparity runs them all). Ignored options do not multiply problems.
Anything else starting with `-` is an error, as in benchdnn (which exits on it), and so is a
descriptor `str2desc` rejects.

A `BatchFile` yields each spec once, at its first place, comparing the tensors of every problem with
that spec (FWD_D, BWD_D and BWD_W of one descriptor are one case comparing y, dx and dw). Its cases
keep the dtype their options give them (`Case.fixed_dtype`): a run's dtypes do not apply to them.

Deliberate differences from benchdnn:
- `--batch=FILE` is resolved against the folder of the file that includes it (benchdnn tries the
  current folder, then the folders of files read so far, then its installed inputs/conv); an
  include cycle is an error (benchdnn recurses until it crashes).
- Option values are checked when the option is read, not when the next descriptor is.
- A FWD_B / BWD_WB bias has the case's dtype (benchdnn uses f32, f64 for f64 weights); its values are
  drawn in that dtype, so they are the same numbers in both.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from convparity.harness.cases.dedupe import spec_digest
from convparity.harness.cases.descriptor import Case, Desc, DescriptorError, parse_desc
from convparity.harness.cases.grids import GridError, read_text
from convparity.harness.inert_text import abbreviated

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
FLOAT_DTYPES = {"f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16"}
INTEGER_DTYPES = ("s8", "u8", "s32", "s64", "s4", "u4", "boolean")
NO_DTYPE = ("f8_e5m2", "f8_e4m3", "e8m0", "f4_e2m1", "undef")  # str2dt names convparity has no dtype for
DT_NAMES = (*FLOAT_DTYPES, *INTEGER_DTYPES, *NO_DTYPE)
# Legacy --cfg names (conv/cfg.cpp before oneDNN b41c6cf0d1, 2023; f32_full, f32_no_limits from v1.x).
_CFG_SPELLED = ("f16", "f32", "f64", "u8s8f32", "u8s8f16", "u8s8bf16", "u8s8s32", "u8s8s8", "u8s8u8", "s8s8f32",
                "s8s8f16", "s8s8bf16", "s8s8s32", "s8s8s8", "s8s8u8", "bf16bf16f32", "bf16bf16f16", "bf16bf16s8",
                "bf16bf16u8", "f32bf16bf16", "bf16f32bf16", "f32f32s8", "f32f32u8", "f16f16f32", "f16f16s8",
                "f16f16u8", "f32f16f16", "f16f32f16")
CFG = {
    **{name: tuple(re.findall(r"bf16|f16|f32|f64|s8|u8|s32", name)) for name in _CFG_SPELLED},
    "f32_wino": ("f32",), "f32_full": ("f32",), "f32_no_limits": ("f32",), "bf16bf16bf16": ("bf16",),
}
# Attribute options: the values that leave the convolution as it is, and what any other value does.
ATTRIBUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "attr-post-ops": (("",), "post-ops change the result; convparity compares the convolution alone"),
    "attr-scales": (("",), "scales change the result"),
    "attr-zero-points": (("",), "zero points change the result (integer convolutions)"),
    "attr-precomputed-reductions": (("",), "precomputed reductions belong to integer zero points"),
    "attr-dropout": (("",), "dropout changes the result"),
    "attr-rounding-mode": (("",), "a rounding mode other than the default changes the result"),
    "attr-fpmath": (("", "strict", "strict:true", "strict:false"),
                    "lets oneDNN compute below the data type's precision; convparity's bound assumes strict math"),
    "attr-acc-mode": (("", "strict"),
                      "lets oneDNN accumulate below strict precision; convparity's bound assumes strict"),
}
_IMPLEMENTATION = "chooses oneDNN's implementation"
_LAYOUT = "chooses a memory layout"
_ENGINE = "chooses the engine, threading or memory kind"
_MODE = "sets benchdnn's run mode or output"
_NARROW = "narrows which problems benchdnn runs; convparity runs them all"
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
    **dict.fromkeys(("match", "start"), _NARROW),
}
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
    with that spec; `size` counts them; `summary` says what was read, skipped and ignored.

    Iterating reads the file again (memory stays bounded by the number of distinct specs).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._tensors: dict[bytes, tuple[str, ...]] = {}
        problems = skipped_problems = 0
        skipped: dict[str, dict] = {}
        ignored: dict[str, dict] = {}
        for item in iter_batch(self.path):
            if isinstance(item, Case):
                problems += 1
                key = spec_digest(item.spec)
                self._tensors[key] = self._tensors.get(key, ()) + item.tensors
            elif isinstance(item, Skipped):
                problems += 1
                skipped_problems += 1
                for note in dict.fromkeys(item.notes):
                    first = f"{item.where}: {note.option}" + (f" ({note.detail})" if note.detail else "")
                    skipped.setdefault(note.why, {"problems": 0, "first": first})["problems"] += 1
            else:
                name = item.option.split("=", 1)[0]
                ignored.setdefault(name, {"tokens": 0, "why": item.why, "first": item.where})["tokens"] += 1
        # problems: benchdnn's (layout and implementation variants not counted); cases: distinct specs computed.
        self.summary = {"problems": problems, "computed": problems - skipped_problems, "cases": len(self._tensors),
                        "skipped": skipped_problems, "skipped_by_reason": skipped, "ignored_options": ignored}

    @property
    def size(self) -> int:
        return len(self._tensors)

    def __iter__(self) -> Iterator[Case]:
        done: set[bytes] = set()
        for item in iter_batch(self.path):
            if isinstance(item, Case):
                key = spec_digest(item.spec)
                if key not in done:
                    done.add(key)
                    yield replace(item, tensors=self._tensors[key])


@dataclass
class _Settings:
    """The conv driver options that decide what is computed (benchdnn's `settings_t`, defaults)."""

    dir: tuple[str, ...] = ("FWD_B",)
    dt: tuple[tuple[str, ...], ...] = (("f32",),)
    cfg: tuple[str, ...] = ("",)
    bia_dt: tuple[str, ...] = ("undef",)
    mb: tuple[int, ...] = (0,)
    attributes: dict[str, tuple[str, ...]] = field(default_factory=lambda: {name: ("",) for name in ATTRIBUTES})


def iter_batch(path: str | Path) -> Iterator[Case | Skipped | Ignored]:
    """The cases, skipped problems and ignored options of a batch file, in the order benchdnn meets them."""
    yield from _Reader().read(Path(path), ())


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
    def __init__(self) -> None:
        self.settings = _Settings()

    def read(self, path: Path, stack: tuple[Path, ...]) -> Iterator[Case | Skipped | Ignored]:
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
        elif name in ATTRIBUTES:
            s.attributes[name] = _values(value, ("",), lambda v: v)
        else:
            raise BatchFileError(f"{where}: unknown option {abbreviated(token)} (not an option of benchdnn's conv "
                                 "driver)")
        return None

    def problems(self, token: str, where: str) -> Iterator[Case | Skipped]:
        """One case or skipped problem per combination of the options in force (benchdnn's loop order)."""
        try:
            desc = parse_desc(token)
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
            notes = [Note(f"--attr-{n[5:]}={v}", ATTRIBUTES[n][1]) for n, v in zip(names, values)
                     if v not in ATTRIBUTES[n][0]]
            yield _problem(desc, token, where, direction, dt_option, dt, bia_dt, mb, notes)


def _problem(desc: Desc, token: str, where: str, direction: str, dt_option: str, dt: tuple[str, ...],
             bia_dt: str, mb: int, notes: list[Note]) -> Case | Skipped:
    tensors, bias = DIRECTIONS[direction]
    if direction == "BWD_DW":
        notes.append(Note("--dir=BWD_DW", "benchdnn's conv driver cannot create a BWD_DW primitive"))
    dtype = _dtype(dt, dt_option, notes)
    if bias is None:
        bias = bia_dt != "undef"
        if bias and bia_dt not in FLOAT_DTYPES:
            notes.append(Note(f"--bia-dt={bia_dt}", "a bias data type convparity has no dtype for"))
        if direction == "BWD_W" and bias:
            tensors = ("dw", "db")
    if mb == 0 and desc.batch == 0:
        notes.append(Note("mb0", "a zero batch (benchdnn runs an empty problem)"))
    if not notes:
        try:
            spec = desc.spec(dtype=dtype or "float32", bias=bias, batch=mb or None)
        except DescriptorError as error:
            notes.append(Note(token, "not a convolution convparity can build", str(error)))
        else:
            return Case(spec, desc.name, tensors, fixed_dtype=True)
    return Skipped(token, where, tuple(notes))


def _dtype(dt: tuple[str, ...], option: str, notes: list[Note]) -> str | None:
    """The convparity dtype of src:wei:dst data types, or None with a note saying why there is none."""
    src, wei, dst = dt * 3 if len(dt) == 1 else dt
    names = (src, wei, dst)
    integers = [n for n in dict.fromkeys(names) if n in INTEGER_DTYPES]
    missing = [n for n in dict.fromkeys(names) if n in NO_DTYPE]
    if integers:
        notes.append(Note(option, "integer data types are not convparity dtypes", ", ".join(integers)))
    elif missing:
        notes.append(Note(option, "a data type convparity has no dtype for", ", ".join(missing)))
    elif len(set(names)) > 1:
        notes.append(Note(option, "mixed src:wei:dst data types; a convparity case has one dtype"))
    else:
        return FLOAT_DTYPES[src]
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

