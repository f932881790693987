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

Bugs written for issue 22 before the grouping was reworked, and never used to tune it (`UNSEEN`: one
cause each, with the rule that states it; `TWO_CAUSES`: two independent causes in one backend):

- planted-stride-3d: stride is ignored in 3-D convolutions (dy placed in the stride-1 output's shape).
- planted-f16-bias: the bias is dropped from y in float16 (db is right).
- planted-groups-dilation: dilation is ignored when the convolution is also grouped.
- planted-crop-asym: y loses its last element along every dim whose padding is asymmetric, and the
  backward pass ignores dy there.
- planted-two-y: y is 1% too large in transposed convolutions, and grouped ones take the input channel
  groups in rotated order (as planted-groups).
- planted-two-dx: dx is 1% too large when some stride > 1, and has its sign flipped with 1x1 kernels.

Faults rather than wrong numbers (`FAULTS`):

- planted-flaky: y is 1% off on about 30% of calls, whatever the case (a race, say).
- planted-hang: hangs when every output size is 1 (small cases only); planted-slow: hangs on every case.
- planted-crash: kills its process (SIGSEGV) when some dilation > 1.

And for the triage's tolerance test, planted-near: y off by 0.6 of convparity's own bound (passes at
the default tolerance factor, fails at 0.3). CONVPARITY_PLANTED_FIXED=name,name makes those backends
right (a fix released), for the findings database's tests.

A hang sleeps and a crash kills the worker for real; in a test's in-process executor
(tests/harness/search/inline.py, which sets SIMULATE) they raise `Simulated` instead, which that executor
turns into the timeout or crash outcome a worker would give.
"""

from __future__ import annotations

import os
import signal
import time

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


UNSEEN = {
    "planted-stride-3d": ("rank == 3 and any stride > 1", {"y", "dx", "dw"}),
    "planted-f16-bias": ("bias and dtype == float16", {"y"}),
    "planted-groups-dilation": ("groups > 1 and any dilation > 1", {"y", "dx", "dw"}),
    "planted-crop-asym": ("padding asymmetric", {"y", "dx", "dw"}),
}
TWO_CAUSES = {
    "planted-two-y": (("transposed", {"y"}), ("groups > 1", {"y", "dx", "dw"})),
    "planted-two-dx": (("any stride > 1", {"dx"}), ("kernel_size == 1", {"dx"})),
}
FAULTS = {"planted-flaky": ("fail", 0.3), "planted-hang": ("timeout", "output_size == 1"),
          "planted-slow": ("timeout", "every case"), "planted-crash": ("crash", "any dilation > 1")}
SIMULATE = "CONVPARITY_SIMULATE_FAULTS"
FIXED = "CONVPARITY_PLANTED_FIXED"
HANG_SECONDS = 3600


class Simulated(BaseException):
    """A hang or crash in the in-process test executor: `failure` is the outcome a worker would give.
    A BaseException, so that the verdict's `except Exception` does not make it an error row."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


def conv(spec: ConvSpec, x, w, b, dy, **changes):
    """The reference's (y, dx, dw, db) with some geometry changed; float64 (transposed or not, as the spec)."""
    kwargs = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups) | changes
    if spec.transposed:
        kwargs.setdefault("output_padding", spec.output_padding)
        return reference_impl.conv_transpose_forward_backward(x, w, b, dy, **kwargs)
    return reference_impl.conv_forward_backward(x, w, b, dy, **kwargs)


def _wrong_geometry(spec: ConvSpec, x, w, b, dy, **changes):
    """What a backend computes with some geometry fields changed (stride or dilation ignored), everything else
    as asked: the changed convolution, with dy cut or zero-padded to its output's shape. A transposed one
    keeps its output_padding as the equivalent end pad (only after - output_padding matters), which stays
    valid whatever the stride and dilation. Where the changed geometry is no convolution at all (a crop
    larger than the smaller output), an empty y and zero gradients."""
    fields = dict(changes)
    if spec.transposed:
        fields.update(padding=tuple((lo, hi - extra) for (lo, hi), extra in zip(spec.padding, spec.output_padding)),
                      output_padding=0)
    try:
        changed = spec.replace(**fields)
    except ValueError:
        empty = np.zeros((spec.batch, spec.out_channels) + (0,) * spec.rank)
        return empty, np.zeros_like(x), np.zeros_like(w), None if b is None else np.zeros_like(b)
    return conv(changed, x, w, b, _placed(dy, changed.y_shape))


def _placed(dy, shape):
    """dy cut or zero-padded to `shape` (the output shape a wrong geometry gives)."""
    placed = np.zeros(shape)
    overlap = tuple(slice(0, min(a, c)) for a, c in zip(shape, dy.shape))
    placed[overlap] = dy[overlap]
    return placed


def _pad_shift(spec, x, w, b, dy):
    padding = tuple((lo - 1, hi + 1) if lo > 0 else (lo, hi) for lo, hi in spec.padding)
    return conv(spec, x, w, b, dy, padding=padding)


def _no_dilation(spec, x, w, b, dy):
    return _wrong_geometry(spec, x, w, b, dy, dilation=1)


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
    shift = (spec.in_channels if spec.transposed else spec.out_channels) // spec.groups  # one group of w's rows
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


def _stride_3d(spec, x, w, b, dy):
    if spec.rank != 3:
        return conv(spec, x, w, b, dy)
    return _wrong_geometry(spec, x, w, b, dy, stride=1)


def _f16_bias(spec, x, w, b, dy):
    y, dx, dw, db = conv(spec, x, w, b, dy)
    if spec.dtype == "float16" and b is not None:
        y = conv(spec, x, w, None, dy)[0]
    return y, dx, dw, db


def _groups_dilation(spec, x, w, b, dy):
    if spec.groups == 1:
        return conv(spec, x, w, b, dy)
    return _no_dilation(spec, x, w, b, dy)


def _crop_asym(spec, x, w, b, dy):
    asymmetric = [d for d, (lo, hi) in enumerate(spec.padding) if lo != hi]
    ignored = dy.copy()
    for d in asymmetric:
        ignored[(slice(None), slice(None)) + (slice(None),) * d + (-1,)] = 0.0
    y, dx, dw, db = conv(spec, x, w, b, ignored)
    y = conv(spec, x, w, b, dy)[0]
    for d in asymmetric:
        y = y[(slice(None), slice(None)) + (slice(None),) * d + (slice(0, -1),)]
    return y, dx, dw, db


def _two_y(spec, x, w, b, dy):
    y, dx, dw, db = _groups(spec, x, w, b, dy)
    return (y * 1.01 if spec.transposed else y), dx, dw, db


def _two_dx(spec, x, w, b, dy):
    y, dx, dw, db = conv(spec, x, w, b, dy)
    if max(spec.stride) > 1:
        dx = dx * 1.01
    if max(spec.kernel_size) == 1:
        dx = -dx
    return y, dx, dw, db


def _fault(failure: str) -> None:
    if os.environ.get(SIMULATE):
        raise Simulated(failure)
    if failure == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(HANG_SECONDS)


def chance() -> float:
    """A draw in [0, 1), unseeded: it differs from call to call (a test may replace it)."""
    return float(np.random.default_rng().random())


def _flaky(spec, x, w, b, dy):
    y, dx, dw, db = conv(spec, x, w, b, dy)
    if chance() < FAULTS["planted-flaky"][1]:
        y = y * 1.01
    return y, dx, dw, db


def _hang(spec, x, w, b, dy):
    if max(spec.output_size) == 1:
        _fault("timeout")
    return conv(spec, x, w, b, dy)


def _slow(spec, x, w, b, dy):
    _fault("timeout")


def _crash(spec, x, w, b, dy):
    if any(d > 1 and k > 1 for d, k in zip(spec.dilation, spec.kernel_size)):
        _fault("crash")
    return conv(spec, x, w, b, dy)


def _near(spec, x, w, b, dy):
    from convparity.harness.evaluation.bound import element_bound

    y, dx, dw, db = conv(spec, x, w, b, dy)
    magnitude = conv(spec, *(None if a is None else np.abs(a) for a in (x, w, b, dy)))[0]
    accumulation = "float64" if spec.dtype == "float64" else "float32"
    bound = element_bound(y, magnitude, reduction=spec.reductions["y"], dtype=spec.dtype, accumulation=accumulation,
                          tolerance_factor=1.0)
    return y + 0.6 * bound, dx, dw, db


BUGS = {"planted-pad-shift": _pad_shift, "planted-no-dilation": _no_dilation, "planted-groups": _groups,
        "planted-zero-db": _zero_db, "planted-scale-y": _scale_y, "planted-depthwise": _depthwise,
        "planted-last-size": _last_size, "planted-raise": _raise,
        "planted-stride-3d": _stride_3d, "planted-f16-bias": _f16_bias, "planted-groups-dilation": _groups_dilation,
        "planted-crop-asym": _crop_asym, "planted-two-y": _two_y, "planted-two-dx": _two_dx,
        "planted-flaky": _flaky, "planted-hang": _hang, "planted-slow": _slow, "planted-crash": _crash,
        "planted-near": _near}


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
        bug = conv if self.name in os.environ.get(FIXED, "").split(",") else self._bug
        return tuple(None if t is None else np.asarray(t).astype(x.dtype) for t in bug(spec, *arrays))


@hookimpl
def convparity_register_backends(register):
    for name in BUGS:
        register(PlantedBackend(name))
