"""benchdnn conv descriptors: `g1mb2ic3ih5iw7oc4oh2ow3kh3kw3sh2sw2ph0pw0dh0dw0 n"name"`.

Grammar (oneDNN benchdnn's conv driver): keys followed by non-negative ints, underscores optional,
an optional `n"name"` last. Defaults: g1, mb2, s*1, d*0 (benchdnn's dilation counts from 0, so `dh1`
is PyTorch dilation 2). The spatial rank is 3 if any d-dim key is given, else 2 if any h key, else 1;
a dim given no key at all copies the keys of the one before it (h from d, w from h); in a dim
with keys, a missing s, p or d takes its default. Without o keys, p defaults to 0 and
o = (i - ((k - 1)(d + 1) + 1) + 2p) // s + 1; with o keys and no p, p = ((o - 1)s - i + effk) // 2.
The end pad is (o - 1)s - i + effk - p. dtype and bias are not part of the descriptor.
Extension: a p value may be negative (a crop), so every ConvSpec has a descriptor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.cases.spec import ConvSpec

DIMS = ("d", "h", "w")
SPATIAL_PREFIXES = ("i", "o", "k", "s", "p", "d")
KEYS = ("g", "mb", "ic", "oc") + tuple(p + dim for p in SPATIAL_PREFIXES for dim in DIMS)
_TOKEN = re.compile(r"_*(?:(?P<key>[a-z]+)(?P<value>-?\d+)|n\"(?P<name>[^\"]*)\")")


class DescriptorError(ValueError):
    """A descriptor that does not parse; the message points at the offending token."""


@dataclass(frozen=True)
class Case:
    """A spec with the name its descriptor or grid gave it (may be empty)."""

    spec: ConvSpec
    name: str = ""

    def __post_init__(self) -> None:
        check_name(self.name)

    @property
    def descriptor(self) -> str:
        return format_descriptor(self.spec, self.name)


# Control characters (NUL, line breaks, escapes) and bidirectional overrides/isolates, which make a name
# print as something else, are refused in case names: names travel into CSV, Markdown and HTML reports.
_FORBIDDEN_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def check_name(name: str) -> None:
    """ValueError naming the character when a case name holds a control or bidirectional character."""
    if not isinstance(name, str):
        raise ValueError(f"a case name must be text, got {type(name).__name__}")
    found = _FORBIDDEN_IN_NAMES.search(name)
    if found:
        raise ValueError(f"case name {name!r}: control or bidirectional character U+{ord(found.group()):04X} at "
                         f"position {found.start()} is not allowed")


def _point(text: str, pos: int, message: str) -> DescriptorError:
    return DescriptorError(f"descriptor {text!r}: {message} at position {pos} ({text[:pos]}>>{text[pos:]}<<)")


def _tokens(text: str) -> tuple[dict[str, int], str]:
    values: dict[str, int] = {}
    name = ""
    pos, end = 0, len(text.rstrip())
    while pos < end:
        if text[pos].isspace():
            pos += 1
            continue
        if name:
            raise _point(text, pos, 'nothing may follow the name n"..."')
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _point(text, pos, "expected a key followed by a number, or n\"name\"")
        if match["name"] is not None:
            name = match["name"] or " "
        else:
            key = match["key"]
            if key not in KEYS:
                raise _point(text, match.start("key"), f"unknown key {key!r}")
            if key in values:
                raise _point(text, match.start("key"), f"key {key!r} given twice")
            if match["value"].startswith("-") and key[0] != "p":
                raise _point(text, match.start("value"), f"{key} must be a non-negative int")
            values[key] = int(match["value"])
        pos = match.end()
    return values, name.strip()


def parse_case(text: str, *, dtype: str = "float32", bias: bool = True) -> Case:
    """Parse one descriptor line into a Case (spec with the given dtype and bias)."""
    values, name = _tokens(text)
    if not values:
        raise DescriptorError(f"descriptor {text!r} is empty")
    rank = 3 if any(p + "d" in values for p in SPATIAL_PREFIXES) else 2 if any(
        p + "h" in values for p in SPATIAL_PREFIXES
    ) else 1
    dims = DIMS[3 - rank :]
    for previous, dim in zip(dims, dims[1:]):
        if not any(prefix + dim in values for prefix in SPATIAL_PREFIXES):  # a dim with no keys copies the last
            for prefix in SPATIAL_PREFIXES:
                if prefix + previous in values:
                    values[prefix + dim] = values[prefix + previous]
    for key in ("ic", "oc") + tuple(p + dims[-1] for p in ("i", "k")):
        if key not in values:
            raise DescriptorError(f"descriptor {text!r}: missing required key {key!r}")
    unused = [k for k in values if k[0] in SPATIAL_PREFIXES and len(k) == 2 and k[1] in DIMS and k[1] not in dims]
    if unused:
        raise DescriptorError(f"descriptor {text!r}: keys {unused} do not fit its {rank}-d shape")
    padding, size, kernel, stride, dilation = [], [], [], [], []
    for dim in dims:
        i, k = values["i" + dim], values["k" + dim]
        s, d = values.get("s" + dim, 1), values.get("d" + dim, 0) + 1
        if s < 1 or i < 1 or k < 1:
            raise DescriptorError(f"descriptor {text!r}: i{dim}, k{dim} and s{dim} must be positive")
        effective = (k - 1) * d + 1
        if "o" + dim in values:
            o = values["o" + dim]
            p = values.get("p" + dim, ((o - 1) * s - i + effective) // 2)
        else:
            p = values.get("p" + dim, 0)
            o = (i - effective + 2 * p) // s + 1
        if o < 1:
            raise DescriptorError(
                f"descriptor {text!r}: effective kernel {effective} in {dim} is larger than the padded input "
                f"{i + 2 * p} (output size o{dim}={o})"
            )
        padding.append((p, (o - 1) * s - i + effective - p))
        size.append(i)
        kernel.append(k)
        stride.append(s)
        dilation.append(d)
    try:
        spec = ConvSpec(
            batch=values.get("mb", 2),
            in_channels=values["ic"],
            out_channels=values["oc"],
            input_size=tuple(size),
            kernel_size=tuple(kernel),
            stride=tuple(stride),
            padding=tuple(padding),
            dilation=tuple(dilation),
            groups=values.get("g", 1),
            bias=bias,
            dtype=dtype,
        )
        return Case(spec, name)
    except ValueError as error:
        raise DescriptorError(f"descriptor {text!r}: {error}") from None


def parse_descriptor(text: str, *, dtype: str = "float32", bias: bool = True) -> ConvSpec:
    """Parse a benchdnn conv descriptor into a ConvSpec (the name, if any, is dropped)."""
    return parse_case(text, dtype=dtype, bias=bias).spec


def format_descriptor(spec: ConvSpec, name: str = "") -> str:
    """The canonical, complete descriptor of `spec`: every key of its rank, dilation counted from 0."""
    dims = DIMS[3 - spec.rank :]
    fields = {
        "i": spec.input_size,
        "o": spec.output_size,
        "k": spec.kernel_size,
        "s": spec.stride,
        "p": tuple(lo for lo, _ in spec.padding),
        "d": tuple(d - 1 for d in spec.dilation),
    }
    parts = [f"g{spec.groups}mb{spec.batch}ic{spec.in_channels}"]
    parts += [f"i{dim}{v}" for dim, v in zip(dims, fields["i"])]
    parts.append(f"oc{spec.out_channels}")
    for prefix in "okspd":
        parts += [f"{prefix}{dim}{v}" for dim, v in zip(dims, fields[prefix])]
    text = "".join(parts)
    return f'{text}n"{name}"' if name else text
