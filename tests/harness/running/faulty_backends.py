"""Backends that misbehave on purpose, for the runner's tests (CONVPARITY_EXTRA_PLUGINS=<this module>).

Each computes the right answer with the reference implementation, except on a case with
`out_channels == FAULTY_OUT_CHANNELS`, where it aborts, segfaults, is killed, hangs, raises, returns
a wrong-shaped y, a structured array or float16 for wider inputs, as its name says. `test-missing`
is never available; `test-slow` is right but takes SLOW_SECONDS a case, so a run lasts long enough to
be interrupted; `test-slow-start` takes SLOW_START_SECONDS to become available in each process (a
heavy framework import). `test-broken-<member>` raise from that member on every call. `test-clipped-weights`
clips every weight to +-CLIP before computing, on every case (a narrow kernel's saturation): right on drawn
weights, which stay far below, wrong on a model's outlier weight.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

import numpy as np

from convparity import reference_impl
from convparity.harness.backends.hookspecs import hookimpl

FAULTY_OUT_CHANNELS = 3
SLOW_SECONDS = float(os.environ.get("CONVPARITY_TEST_SLOW_SECONDS", "0.04"))  # a test may slow it down
SLOW_START_SECONDS = 2.0
BROKEN_MEMBERS = ("version", "availability", "supports")
CLIP = 4.0


def _abort(outputs):
    os.abort()


def _segfault(outputs):
    ctypes.string_at(0)


def _killed(outputs):
    os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does


def _hang(outputs):
    time.sleep(3600)


def _raise(outputs):
    raise ValueError("cannot do this stride")


def _wrong_shape(outputs):
    y, dx, dw, db = outputs
    return y[..., :-1], dx, dw, db


def _structured(outputs):
    y, dx, dw, db = outputs
    return np.zeros(y.shape, dtype=[("value", "f8"), ("flag", "?")]), dx, dw, db


def _narrow(outputs):
    return tuple(None if t is None else t.astype(np.float16) for t in outputs)


def _unchanged(outputs):
    return outputs


FAULTS = {"abort": _abort, "segfault": _segfault, "killed": _killed, "hang": _hang, "raise": _raise,
          "wrong-shape": _wrong_shape, "structured": _structured, "narrow": _narrow}
_started: set[str] = set()


class FaultyBackend:
    def __init__(self, fault: str) -> None:
        self.name = f"test-{fault}"
        self._fault = FAULTS.get(fault, _unchanged)
        self._slow = fault == "slow"
        self._clip = fault == "clipped-weights"

    def version(self) -> str:
        return "faulty 1.0"

    def availability(self) -> str | None:
        if self.name == "test-slow-start" and self.name not in _started:
            time.sleep(SLOW_START_SECONDS)
            _started.add(self.name)
        return "libmissing.so is not installed" if self.name == "test-missing" else None

    def supports(self, spec) -> str | None:
        return None

    def run(self, spec, x, w, b, dy):
        if self._slow:
            time.sleep(SLOW_SECONDS)
        if self._clip:
            w = np.clip(w, -CLIP, CLIP)
        outputs = tuple(
            None if t is None else np.asarray(t, dtype=x.dtype)
            for t in reference_impl.conv_forward_backward(
                x, w, b, dy, stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups
            )
        )
        return self._fault(outputs) if spec.out_channels == FAULTY_OUT_CHANNELS else outputs


class BrokenBackend(FaultyBackend):
    """Right answers, but one member raises on every call."""

    def __init__(self, member: str) -> None:
        super().__init__("unchanged")
        self.name = f"test-broken-{member}"
        self._member = member

    def _check(self, member: str) -> None:
        if member == self._member:
            raise RuntimeError(f"{member}() is broken on purpose")

    def version(self) -> str:
        self._check("version")
        return super().version()

    def availability(self) -> str | None:
        self._check("availability")
        return super().availability()

    def supports(self, spec) -> str | None:
        self._check("supports")
        return super().supports(spec)


@hookimpl
def convparity_register_backends(register):
    for fault in (*FAULTS, "missing", "slow", "slow-start", "clipped-weights"):
        register(FaultyBackend(fault))
    for member in BROKEN_MEMBERS:
        register(BrokenBackend(member))
