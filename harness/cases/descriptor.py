"""benchdnn conv descriptors: `g1mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2ph0pw0dh0dw0n"name"`.

A descriptor means what oneDNN benchdnn's conv driver makes of it (`tests/benchdnn/conv/conv_aux.cpp`:
`str2desc`; `tests/benchdnn/common.cpp`: `sanitize_desc`; `conv/conv.hpp`: `desc_t::init_pad_r`):

- Keys `g mb ic id ih iw oc od oh ow kd kh kw sd sh sw pd ph pw dd dh dw`, each followed by a decimal
  int (an optional `+`). One `_` may follow a key's number; a leading `_`, `__`, or text that is no key
  is an error. A key given twice keeps its last value.
- The name is everything after an `n` that stands where a key could: `n"text"`, `nText`, `_nText`.
  Nothing follows a name.
- Defaults: mb 2, g 1, s 1, d 0 (dilation counts from 0: `dh1` is PyTorch dilation 2), p unset.
  `g`, `ic`, `oc`, `s*` must be positive (`mb0` parses: see `Desc.spec`).
- Spatial dim X of d, h, w is present iff one of iX, kX, oX, dX is non-zero, sX != 1 or pX != 0
  (so `pd0`, `dd0`, `od0`, `sd1` alone leave it absent). In a present dim iX and kX must be positive.
  With oX absent or 0: pX defaults to 0 and oX = (i - ((k - 1)(d + 1) + 1) + 2p) / s + 1, which must
  be positive; with oX given and pX absent: pX = ((o - 1)s - i + ((k - 1)(d + 1) + 1)) / 2. Both
  divisions are C's: truncation toward zero (`mb2ic16ih33oc16oh16kh2sh2`: p = (-1) / 2 = 0).
- Rank: 3 if d is present (then h and w both present, or both absent and copied from d), else 2 if h
  is present (w copied from h when absent), else 1 if w is present (a 1-D problem uses w keys), else
  an error. Copies are made after o and p are derived.
- End pad: (o - 1)s - i + ((k - 1)(d + 1) + 1) - p, whatever sign it has.

Deliberate differences from benchdnn:
- A p value may be negative (benchdnn rejects every negative value): a crop, so every ConvSpec has a
  descriptor. A non-zero p makes its dim present.
- `n"text"`: one pair of enclosing double quotes is syntax, not part of the name (benchdnn keeps the
  quotes in its name string, and prints them back the same way, so the text round-trips either way).
- `parse_case` accepts whitespace before and after the descriptor and before its name (a batch file
  never has any: benchdnn splits files at whitespace); whitespace anywhere else, including between a
  key and its number (which strtoll would skip), is an error.
- Values beyond int64 are an error (strtoll would clamp them to INT64_MAX).
- Problems benchdnn parses but convparity cannot run are a `DescriptorError` from `Desc.spec`
  (for a batch file, a skipped case): a zero batch, groups that do not divide the channels, and end
  pads that crop every input row.
dtype and bias are not part of the descriptor.

Transposed convolutions: benchdnn's deconv driver (`benchdnn --deconv`, `tests/benchdnn/deconv/
deconv_aux.cpp: str2desc`, `deconv.hpp: desc_t::opp_pad`) reads the same keys with the same rules, `i*`
being the deconv's input and `o*` its output, but derives them the other way round: with oX absent or 0,
pX defaults to 0 and oX = (i - 1)s + ((k - 1)(d + 1) + 1) - 2p, which must be positive; with oX given
and pX absent, pX = ((i - 1)s - o + ((k - 1)(d + 1) + 1)) / 2 (C division); the end pad is
(i - 1)s - o + ((k - 1)(d + 1) + 1) - p. A negative end pad is output_padding (ConvSpec keeps the pair
in canonical form); a negative p adds bias-only positions before the output. convparity writes a
deconv descriptor behind the prefix `deconv:` (`deconv:g1mb2ic8ih4iw4oc4oh8ow8kh4kw4sh2sw2ph1pw1dh0dw0`),
so a deconv never reads as a conv and a descriptor alone names its case; `parse_desc` and `parse_case`
read the prefix, or take `transposed=True` for text without it (a batch file run as `--deconv`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from convparity.harness.cases.attributes import (
    BENCHDNN_TYPES,
    AttributeOptionError,
    parse_post_ops,
    parse_scales,
    parse_zero_points,
    read_options,
)
from convparity.harness.cases.descriptor_format import DECONV_PREFIX, DIMS, format_fields
from convparity.harness.cases.inputs import UNIFORM, InputStyle
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import ConvparityError
from convparity.harness.inert_text import abbreviated
from convparity.harness.vocabulary import DTYPES, TENSORS

SPATIAL_PREFIXES = ("i", "o", "k", "s", "p", "d")
# benchdnn's order: one pass over the text tries each key once, in this order.
KEYS = ("g", "mb", "ic", "id", "ih", "iw", "oc", "od", "oh", "ow", "kd", "kh", "kw", "sd", "sh", "sw",
        "pd", "ph", "pw", "dd", "dh", "dw")
INT64_MAX = 2**63 - 1


class DescriptorError(ConvparityError, ValueError):
    """A descriptor that does not parse, or a problem convparity cannot run; the message names the place."""


@dataclass(frozen=True)
class Case:
    """A spec with the name its descriptor or grid gave it (may be empty) and the tensors to compare.

    `tensors` is a subset of ("y", "dx", "dw", "db") in that order (a batch file's `--dir` decides it);
    "db" counts only where the spec has a bias. `fixed_dtype`: the source chose the spec's dtype (a batch
    file's `--dt`), so a run's dtypes do not apply to the case. `inputs`: how its values are drawn
    (harness.cases.inputs.InputStyle; a grid may ask for saturating integer sources).
    """

    spec: ConvSpec
    name: str = ""
    tensors: tuple[str, ...] = TENSORS
    fixed_dtype: bool = False
    inputs: InputStyle = UNIFORM

    def __post_init__(self) -> None:
        check_name(self.name)
        unknown = [t for t in self.tensors if t not in TENSORS]
        if unknown or not self.tensors:
            raise ValueError(f"tensors must be a non-empty subset of {TENSORS}, got {self.tensors!r}")
        object.__setattr__(self, "tensors", tuple(t for t in TENSORS if t in self.tensors))

    @property
    def descriptor(self) -> str:
        return format_descriptor(self.spec, self.name)

    @property
    def inputs_key(self) -> str:
        """How its values are drawn, as results.csv's `inputs` column writes it: "" for the default style."""
        return "" if self.inputs.is_default else self.inputs.text

    @property
    def compared(self) -> tuple[str, ...]:
        """The tensors this case compares: those of `tensors` the spec has (ConvSpec.tensors: no db without a bias,
        y alone for an integer convolution), and the post-op operands' gradients when a gradient is compared."""
        backward = any(t in self.tensors for t in ("dx", "dw", "db"))
        return tuple(t for t in self.spec.tensors if t in self.tensors or (backward and t.startswith("dpost")))


# Control characters (NUL, line breaks, escapes) and bidirectional overrides/isolates, which make a name
# print as something else, are refused in case names: names travel into CSV, Markdown and HTML reports.
_FORBIDDEN_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def check_name(name: str) -> None:
    """DescriptorError naming the character when a case name holds a control or bidirectional character."""
    if not isinstance(name, str):
        raise DescriptorError(f"a case name must be text, got {type(name).__name__}")
    found = _FORBIDDEN_IN_NAMES.search(name)
    if found:
        raise DescriptorError(f"case name {abbreviated(name)}: control or bidirectional character "
                         f"U+{ord(found.group()):04X} at position {found.start()} is not allowed")


@dataclass(frozen=True)
class Desc:
    """benchdnn's `desc_t` after `str2desc`: per-dim tuples cover the problem's spatial dims, w last.

    `dilation` counts from 0 as in the text; `pad_end` is benchdnn's `p*_r` (may be negative).
    `transposed`: read by the deconv driver (a transposed convolution). `grouped`: the text had a `g` key
    (benchdnn's `has_groups`: it prints g back, and reads a weights scale mask per group).
    """

    groups: int
    batch: int
    in_channels: int
    out_channels: int
    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    pad_begin: tuple[int, ...]
    pad_end: tuple[int, ...]
    dilation: tuple[int, ...]
    name: str = ""
    transposed: bool = False
    grouped: bool = False

    @property
    def rank(self) -> int:
        return len(self.input_size)

    def spec(self, *, dtype: str = "float32", bias: bool = True, batch: int | None = None) -> ConvSpec:
        """The ConvSpec of this problem (`batch` replaces the descriptor's mb, as benchdnn's `--mb`)."""
        try:
            return ConvSpec(
                batch=self.batch if batch is None else batch,
                in_channels=self.in_channels,
                out_channels=self.out_channels,
                input_size=self.input_size,
                kernel_size=self.kernel_size,
                stride=self.stride,
                padding=tuple(zip(self.pad_begin, self.pad_end)),
                dilation=tuple(d + 1 for d in self.dilation),
                groups=self.groups,
                bias=bias,
                dtype=dtype,
                transposed=self.transposed,
            )
        except ValueError as error:
            raise DescriptorError(f"descriptor {abbreviated(format_desc(self))}: {error}") from None


def c_div(numerator: int, denominator: int) -> int:
    """C integer division of int64 values: the quotient truncated toward zero (denominator > 0)."""
    quotient = abs(numerator) // denominator
    return -quotient if numerator < 0 else quotient


class _Scanner:
    """Reads keys and the name the way `str2desc`'s loop does, remembering where each came from."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = len(text) - len(text.lstrip())
        self.end = len(text.rstrip())
        self.values: dict[str, int] = {}
        self.name: str | None = None

    def error(self, pos: int, message: str, hint: str = "") -> DescriptorError:
        text = self.text
        before, after = text[:pos], text[pos:]
        if len(text) > 120:  # a descriptor with a 5000-digit value is not echoed whole
            before, after = ("..." + before[-40:]) if len(before) > 40 else before, (
                (after[:40] + "...") if len(after) > 40 else after)
            text = before + after
        return DescriptorError(f"descriptor {abbreviated(text)}: {message} at position {pos} ({before}>>{after}<<)"
                               + (f"; {hint}" if hint else ""))

    def scan(self) -> None:
        text = self.text
        while self.pos < self.end:
            matched = False
            for key in KEYS:
                if text.startswith(key, self.pos):
                    self._value(key)
                    matched = True
            if self.pos < self.end and self._name():
                return
            underscore = self.pos < self.end and text[self.pos] == "_"
            self.pos += underscore
            if not matched:
                if underscore:
                    raise self.error(self.pos - 1, "stray '_'", "one may follow a key's value, none may lead")
                if text[self.pos].isspace():
                    raise self.error(self.pos, "whitespace inside a descriptor (allowed only before its name)")
                word = re.match(r"[A-Za-z]*", text[self.pos : self.end])
                what = f"unknown key {abbreviated(word.group(), 40)}" if word and word.group() else "unexpected text"
                raise self.error(self.pos, what, f"expected one of {' '.join(KEYS)} or a name n\"...\"")

    def _value(self, key: str) -> None:
        text, start = self.text, self.pos + len(key)
        digits = start + (start < self.end and text[start] in "+-")
        stop = digits
        while stop < self.end and text[stop] in "0123456789":
            stop += 1
        if stop == digits:
            raise self.error(start, f"no value for {key!r}: a decimal int must follow it")
        if stop - digits > 19:  # more digits than any int64 has (and int() refuses beyond 4300)
            raise self.error(start, f"{key} has a {stop - digits}-digit value, beyond int64")
        value = int(text[digits:stop]) * (-1 if text[start] == "-" else 1)
        if value < 0 and key[0] != "p":
            raise self.error(start, f"{key} must be a non-negative int, got {value}")
        if abs(value) > INT64_MAX:
            raise self.error(start, f"{key}={value} is beyond int64")
        self.values[key] = value
        self.pos = stop

    def _name(self) -> bool:
        text, pos = self.text, self.pos
        if text[pos].isspace():  # extension: `desc n"name"`
            pos = len(text) - len(text[pos:].lstrip())
            if pos >= self.end or text[pos] != "n":
                return False
        if text[pos] != "n":
            return False
        rest = text[pos + 1 : self.end]
        self.name = rest[1:-1] if len(rest) >= 2 and rest[0] == rest[-1] == '"' else rest
        self.pos = self.end
        return True


def parse_desc(text: str, *, transposed: bool = False) -> Desc:
    """Read one descriptor the way benchdnn's `str2desc` does (see the module docstring): the conv
    driver's, or the deconv driver's when `transposed` or after the prefix `deconv:`."""
    stripped = text.lstrip()
    prefixed = stripped.startswith(DECONV_PREFIX)
    try:
        return _read_desc(stripped[len(DECONV_PREFIX):] if prefixed else text, transposed or prefixed)
    except DescriptorError as error:
        if transposed or prefixed:
            raise DescriptorError(f"deconv {error}") from None
        raise


def _read_desc(text: str, transposed: bool) -> Desc:
    scanner = _Scanner(text)
    scanner.scan()
    values = scanner.values
    if not values:
        raise DescriptorError(f"descriptor {abbreviated(text)} has no keys")

    def fail(message: str) -> DescriptorError:
        return DescriptorError(f"descriptor {abbreviated(text)}: {message}")

    for key, default in (("g", 1), ("ic", 0), ("oc", 0), ("sd", 1), ("sh", 1), ("sw", 1)):
        if values.get(key, default) <= 0:
            raise fail(f"{key} must be positive" if key in values else f"{key} is required")
    dims: dict[str, dict[str, int]] = {}
    for dim in DIMS:
        given = {prefix: values[prefix + dim] for prefix in SPATIAL_PREFIXES if prefix + dim in values}
        present = any(given.get(p, 0) for p in "iokd") or given.get("s", 1) != 1 or given.get("p", 0) != 0
        if present:
            dims[dim] = _resolve(dim, given, fail, transposed)
    if "d" in dims and ("h" in dims) != ("w" in dims):
        raise fail("a 3-D problem needs both h and w keys or neither (then d is copied to them): "
                   f"only {'h' if 'h' in dims else 'w'} is given")
    if "d" in dims:
        dims.setdefault("h", dims["d"])
        dims.setdefault("w", dims["d"])
    elif "h" in dims:
        dims.setdefault("w", dims["h"])
    if not dims:
        raise fail("no spatial dim: give at least iw and kw (1-D), ih and kh (2-D) or id and kd (3-D)")
    order = [dims[dim] for dim in DIMS if dim in dims]
    column = lambda prefix: tuple(d[prefix] for d in order)  # noqa: E731
    return Desc(
        groups=values.get("g", 1),
        batch=values.get("mb", 2),
        in_channels=values["ic"],
        out_channels=values["oc"],
        input_size=column("i"),
        output_size=column("o"),
        kernel_size=column("k"),
        stride=column("s"),
        pad_begin=column("p"),
        pad_end=column("r"),
        dilation=column("d"),
        name=scanner.name or "",
        transposed=transposed,
        grouped="g" in values,
    )


def _resolve(dim: str, given: dict[str, int], fail, transposed: bool = False) -> dict[str, int]:
    """o, p and the end pad `r` of a present dim, derived as str2desc does (the deconv driver's if `transposed`)."""
    i, k, s, d = given.get("i", 0), given.get("k", 0), given.get("s", 1), given.get("d", 0)
    for prefix, value in (("i", i), ("k", k)):
        if value <= 0:
            keys = ", ".join(p + dim for p in given)
            raise fail(f"{prefix}{dim} must be positive when the {dim} dim is present (given: {keys})")
    effective = (k - 1) * (d + 1) + 1
    o = given.get("o", 0)
    if transposed:
        return _resolve_deconv(dim, i, o, k, s, given.get("p"), d, effective, fail)
    if o == 0:
        p = given.get("p", 0)
        o = c_div(i - effective + 2 * p, s) + 1
        if o <= 0:
            raise fail(f"o{dim} derived as {o}: effective kernel {effective} is larger than i{dim}={i} "
                       f"padded by p{dim}={p} on both sides")
    else:
        p = given["p"] if "p" in given else c_div((o - 1) * s - i + effective, 2)
    return {"i": i, "o": o, "k": k, "s": s, "p": p, "d": d, "r": (o - 1) * s - i + effective - p}


def _resolve_deconv(dim: str, i: int, o: int, k: int, s: int, p: int | None, d: int, effective: int,
                    fail) -> dict[str, int]:
    """o, p and the end pad `r` of a present dim, derived as the deconv driver's str2desc does."""
    if o == 0:
        p = p or 0
        o = (i - 1) * s + effective - 2 * p
        if o <= 0:
            raise fail(f"o{dim} derived as {o}: p{dim}={p} on both sides crops all (i{dim} - 1) * s{dim} + "
                       f"effective kernel {effective} = {(i - 1) * s + effective} positions")
    elif p is None:
        p = c_div((i - 1) * s - o + effective, 2)
    return {"i": i, "o": o, "k": k, "s": s, "p": p, "d": d, "r": (i - 1) * s - o + effective - p}


def parse_case(text: str, *, dtype: str = "float32", bias: bool = True, transposed: bool = False) -> Case:
    """Parse one descriptor into a Case (spec with the given dtype and bias); a transposed convolution
    after the prefix `deconv:` or when `transposed`. Attribute options (`--attr-post-ops=...`, see
    harness.cases.attributes) may lead it, separated by spaces."""
    options, geometry = split_options(text)
    desc = parse_desc(geometry, transposed=transposed)
    spec = desc.spec(dtype=dtype, bias=bias)
    try:
        if options:
            spec = with_attributes(spec, read_options(options))
        return Case(spec, desc.name)
    except ValueError as error:
        raise DescriptorError(f"descriptor {abbreviated(text)}: {error}") from None


def split_options(text: str) -> tuple[list[str], str]:
    """(the `--NAME=VALUE` words that lead `text`, the rest: the descriptor itself)."""
    options: list[str] = []
    rest = text.lstrip()
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        options.append(word)
        rest = rest.lstrip()
    return options, rest


def with_attributes(spec: ConvSpec, options: dict[str, str]) -> ConvSpec:
    """`spec` with the post-op chain and quantization that attribute options give (harness.cases.attributes)."""
    quantization = spec.quantization
    grouped = spec.groups > 1
    if "attr-scales" in options:
        quantization = parse_scales(options["attr-scales"], quantization, grouped)
    if "attr-zero-points" in options:
        quantization = parse_zero_points(options["attr-zero-points"], quantization, grouped)
    if options.get("bia-dt"):
        bias_type = options["bia-dt"].removeprefix("dnnl_")
        if bias_type not in BENCHDNN_TYPES or BENCHDNN_TYPES[bias_type] not in ("int32", *DTYPES):
            raise AttributeOptionError(f"--bia-dt={options['bia-dt']}: a bias is s32 or a float type (f64, f32, "
                                       "f16, bf16)")
        quantization = replace(quantization, bias_dtype=BENCHDNN_TYPES[bias_type])
    if options.get("rounding"):
        quantization = replace(quantization, rounding=options["rounding"])
    post_ops = parse_post_ops(options.get("attr-post-ops", ""), spec.rank) if "attr-post-ops" in options \
        else spec.post_ops
    return spec.replace(post_ops=post_ops, quantization=quantization)


def parse_descriptor(text: str, *, dtype: str = "float32", bias: bool = True, transposed: bool = False) -> ConvSpec:
    """Parse a benchdnn conv (or deconv) descriptor into a ConvSpec (the name, if any, is dropped)."""
    return parse_case(text, dtype=dtype, bias=bias, transposed=transposed).spec


def format_descriptor(spec: ConvSpec, name: str = "") -> str:
    """The canonical, complete descriptor of `spec`: every key of its rank, dilation counted from 0;
    `deconv:` first for a transposed convolution.

    A name is printed as `n"name"`, which reads back as the same name whatever characters it holds.
    """
    return spec.named_descriptor(name)


def format_desc(desc: Desc) -> str:
    """The canonical, complete descriptor of a parsed `Desc` (also for problems no ConvSpec can hold)."""
    fields = {"i": desc.input_size, "o": desc.output_size, "k": desc.kernel_size, "s": desc.stride,
              "p": desc.pad_begin, "d": desc.dilation}
    return format_fields(desc.groups, desc.batch, desc.in_channels, desc.out_channels, fields, desc.name,
                         desc.transposed)
