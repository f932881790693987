"""Backends with one planted bug each, for the search's tests (CONVPARITY_EXTRA_PLUGINS=<this module>).

Each computes with reference_impl and rounds to the input dtype like an honest backend, except on
the cases its bug touches. `PLANTED` maps each backend to the rule that describes exactly those
cases, the tensors the bug breaks and the spec fields its minimal case must show:

- planted-pad-shift: a dim with padding before > 0 is padded (before - 1, after + 1): windows one late.
- planted-no-dilation: dilation is ignored (a dense kernel), so y has the dense output's shape and
  dx, dw come from dy placed in that shape.
- planted-groups: with groups > 1 the input channel groups are taken in rotated order.
- planted-zero-db: db is all zeros.
- planted-scale-y: y is scaled by 1 + 1e-3 (float32 and float64 bounds are far tighter).
- planted-depthwise: a depthwise convolution (groups == in_channels > 1) takes each output channel's
  weights from the next group's (other grouped convolutions are right).
- planted-last-size: like Keras 3.15's channels_first bias bug, the bias is added along the last
  axis (and db summed over all others) when the last output size equals out_channels.
- planted-raise: raises for a stride > 1.
"""

from __future__ import annotations

import numpy as np

from convparity import reference_impl
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.cases.spec import ConvSpec

# backend: (rule text, failing tensors as a set, the minimal case's distinguishing fields)
PLANTED = {
    "planted-pad-shift": ("any padding before > 0", {"y", "dx", "dw"}, {"padding": ((1, 0),)}),
    "planted-no-dilation": ("any dilation > 1", {"y", "dx", "dw"}, {"dilation": (2,)}),
    "planted-groups": ("groups > 1", {"y", "dx", "dw"}, {"groups": 2}),
    "planted-zero-db": ("bias", {"db"}, {"bias": True}),
    "planted-scale-y": ("every case", {"y"}, {}),
    "planted-depthwise": ("depthwise (groups == in_channels > 1)", {"y", "dx", "dw"}, {"groups": 2, "in_channels": 2}),
    "planted-last-size": ("bias and output_size[-1] == out_channels > 1", {"y", "db"},
                          {"out_channels": 2, "bias": True}),
    "planted-raise": ("any stride > 1", set(), {"stride": (2,)}),
}


def conv(spec: ConvSpec, x, w, b, dy, **changes):
    """The reference's (y, dx, dw, db) with some geometry changed; float64."""
    kwargs = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups) | changes
    return reference_impl.conv_forward_backward(x, w, b, dy, **kwargs)


def _pad_shift(spec, x, w, b, dy):
    padding = tuple((lo - 1, hi + 1) if lo > 0 else (lo, hi) for lo, hi in spec.padding)
    return conv(spec, x, w, b, dy, padding=padding)


def _no_dilation(spec, x, w, b, dy):
    dense = spec.replace(dilation=1)
    placed = np.zeros(dense.y_shape)
    overlap = tuple(slice(0, min(a, c)) for a, c in zip(dense.y_shape, spec.y_shape))
    placed[overlap] = dy[overlap]
    return conv(spec, x, w, b, placed, dilation=1)


def _groups(spec, x, w, b, dy):
    if spec.groups == 1:
        return conv(spec, x, w, b, dy)
    per_group = spec.in_channels // spec.groups
    order = np.roll(np.arange(spec.in_channels), per_group)
    y, dx, dw, db = conv(spec, x[:, order], w, b, dy)
    restored = np.empty_like(dx)
    restored[:, order] = dx
    return y, restored, dw, db


def _zero_db(spec, x, w, b, dy):
    y, dx, dw, db = conv(spec, x, w, b, dy)
    return y, dx, dw, None if db is None else np.zeros_like(db)


def _scale_y(spec, x, w, b, dy):
    y, dx, dw, db = conv(spec, x, w, b, dy)
    return y * (1 + 1e-3), dx, dw, db


def _depthwise(spec, x, w, b, dy):
    if not spec.groups == spec.in_channels > 1:
        return conv(spec, x, w, b, dy)
    shift = spec.out_channels // spec.groups
    y, dx, dw, db = conv(spec, x, np.roll(w, shift, axis=0), b, dy)
    return y, dx, np.roll(dw, -shift, axis=0), db


def _last_size(spec, x, w, b, dy):
    if not (b is not None and spec.output_size[-1] == spec.out_channels):
        return conv(spec, x, w, b, dy)
    y, dx, dw, _ = conv(spec, x, w, None, dy)
    return y + b, dx, dw, dy.sum(axis=tuple(range(dy.ndim - 1)))


def _raise(spec, x, w, b, dy):
    if max(spec.stride) > 1:
        raise RuntimeError(f"strided kernels are not built for stride {spec.stride}")
    return conv(spec, x, w, b, dy)


BUGS = {"planted-pad-shift": _pad_shift, "planted-no-dilation": _no_dilation, "planted-groups": _groups,
        "planted-zero-db": _zero_db, "planted-scale-y": _scale_y, "planted-depthwise": _depthwise,
        "planted-last-size": _last_size, "planted-raise": _raise}


class PlantedBackend:
    def __init__(self, name: str) -> None:
        self.name = name
        self._bug = BUGS[name]

    def version(self) -> str:
        return "planted 1.0"

    def availability(self) -> str | None:
        return None

    def supports(self, spec) -> str | None:
        return None

    def run(self, spec, x, w, b, dy):
        arrays = [None if a is None else np.asarray(a, dtype=np.float64) for a in (x, w, b, dy)]
        return tuple(None if t is None else np.asarray(t).astype(x.dtype) for t in self._bug(spec, *arrays))


@hookimpl
def convparity_register_backends(register):
    for name in BUGS:
        register(PlantedBackend(name))
