"""Backends that misbehave on purpose, for the runner's tests (CONVPARITY_EXTRA_PLUGINS=<this module>).

Each computes the right answer with the reference implementation, except on a case with
`out_channels == FAULTY_OUT_CHANNELS`, where it aborts, segfaults, is killed, hangs, raises or
returns a wrong-shaped y, as its name says. `test-missing` is never available; `test-slow` is right
but takes SLOW_SECONDS a case, so a run lasts long enough to be interrupted.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

import numpy as np

import reference_impl
from harness.backends.hookspecs import hookimpl

FAULTY_OUT_CHANNELS = 3
SLOW_SECONDS = 0.04


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


def _unchanged(outputs):
    return outputs


FAULTS = {"abort": _abort, "segfault": _segfault, "killed": _killed, "hang": _hang, "raise": _raise,
          "wrong-shape": _wrong_shape}


class FaultyBackend:
    def __init__(self, fault: str) -> None:
        self.name = f"test-{fault}"
        self._fault = FAULTS.get(fault, _unchanged)
        self._slow = fault == "slow"

    def version(self) -> str:
        return "faulty 1.0"

    def availability(self) -> str | None:
        return "libmissing.so is not installed" if self.name == "test-missing" else None

    def supports(self, spec) -> str | None:
        return None

    def run(self, spec, x, w, b, dy):
        if self._slow:
            time.sleep(SLOW_SECONDS)
        outputs = tuple(
            None if t is None else np.asarray(t, dtype=x.dtype)
            for t in reference_impl.conv_forward_backward(
                x, w, b, dy, stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups
            )
        )
        return self._fault(outputs) if spec.out_channels == FAULTY_OUT_CHANNELS else outputs


@hookimpl
def convparity_register_backends(register):
    for fault in (*FAULTS, "missing", "slow"):
        register(FaultyBackend(fault))
