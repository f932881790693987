"""Seeded inputs for a case: x, w, b, dy drawn in float64 then cast to the spec's dtype.

The draw depends on the run seed and the case (its descriptor and bias), not on the dtype, the
backend or the machine, so every backend and every dtype sees the same values before the cast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import numpy_dtype


@dataclass(frozen=True)
class Inputs:
    """x (N, C, *in), w (O, C/groups, *kernel), b (O,) or None, dy (N, O, *out), all of spec.dtype.

    Transposed: w (C, O/groups, *kernel) (spec.w_shape).
    """

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    dy: np.ndarray


def case_seed(spec: ConvSpec, seed: int) -> int:
    """A 64-bit seed from the run seed and the case (not its dtype)."""
    key = f"{seed}|{spec.replace(dtype='float64').descriptor}|bias={spec.bias}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little")


def make_inputs(spec: ConvSpec, seed: int) -> Inputs:
    """Uniform(-1, 1) draws, weights scaled by 1/sqrt(fan_in) so outputs stay O(1) in every dtype.

    fan_in is the most products of x and w one element of y sums: C/groups * prod(kernel) for a
    convolution; for a transposed one, C/groups times the taps that reach one output position (about
    prod(kernel / stride)), from spec.reductions.
    """
    rng = np.random.default_rng(case_seed(spec, seed))
    dtype = numpy_dtype(spec.dtype)
    fan_in = spec.reductions["y"] - (1 if spec.bias else 0)
    x = rng.uniform(-1.0, 1.0, spec.x_shape)
    w = rng.uniform(-1.0, 1.0, spec.w_shape) / np.sqrt(fan_in)
    b = rng.uniform(-1.0, 1.0, (spec.out_channels,)) if spec.bias else None
    dy = rng.uniform(-1.0, 1.0, spec.y_shape)
    return Inputs(
        x=x.astype(dtype),
        w=w.astype(dtype),
        b=None if b is None else b.astype(dtype),
        dy=dy.astype(dtype),
    )
