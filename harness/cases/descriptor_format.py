"""Printing a descriptor: benchdnn's conv grammar written out in canonical, complete form.

The grammar and its reading are harness.cases.descriptor's; this module only prints, from plain values,
so that both the spec (`ConvSpec.descriptor`) and the parser (`format_desc`) print the same way without
importing each other. It imports nothing of convparity.
"""

from __future__ import annotations

DIMS = ("d", "h", "w")
DECONV_PREFIX = "deconv:"


def format_fields(groups: int, batch: int, in_channels: int, out_channels: int, fields: dict[str, tuple[int, ...]],
                  name: str = "", transposed: bool = False) -> str:
    """`g{G}mb{N}ic{C}i{..}oc{O}o{..}k{..}s{..}p{..}d{..}` with every key of the rank (w last), then `n"name"`.

    fields: per prefix i, o, k, s, p (the start pads), d (dilation counted from 0), one value per dim;
    `deconv:` first for a transposed convolution. A name reads back as itself whatever it holds.
    """
    dims = DIMS[3 - len(fields["i"]):]
    parts = [f"{DECONV_PREFIX if transposed else ''}g{groups}mb{batch}ic{in_channels}"]
    parts += [f"i{dim}{v}" for dim, v in zip(dims, fields["i"])]
    parts.append(f"oc{out_channels}")
    for prefix in "okspd":
        parts += [f"{prefix}{dim}{v}" for dim, v in zip(dims, fields[prefix])]
    text = "".join(parts)
    return f'{text}n"{name}"' if name else text
