"""Seeded inputs for a case: x, w, b, dy drawn in float64 then cast to the spec's dtype.

The draw depends on the run seed, the case (its descriptor and bias) and the input style, not on the
dtype, the backend or the machine, so every backend and every dtype sees the same values before the cast.

An `InputStyle` says how values are drawn:

- `uniform` (the default, every sweep): Uniform(-1, 1), weights scaled by 1/sqrt(fan_in) so that
  outputs stay O(1) in every dtype;
- `integers:K`: whole numbers from 1 to K in magnitude, of either sign (no zeros, which would hide what a
  value does), exact in every dtype (bfloat16 holds every integer up to 256): what a repro script shows a
  maintainer, when a bug survives them (convparity.harness.search.values).

A style travels with the case wherever it is evaluated (a sweep's `RunCase` and `EvaluateCase` tasks
carry it, and regenerate the inputs from (spec, seed, style) in their workers); its `text` is how it is
written in files and on the command line (`convparity explain --inputs integers:1`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import numpy_dtype

INPUT_KINDS = ("uniform", "integers")
LARGEST_INTEGER = 256  # every integer up to here is exact in bfloat16, the narrowest dtype


@dataclass(frozen=True)
class InputStyle:
    """How a case's values are drawn: "uniform", or nonzero "integers" of magnitude at most `scale` (see the
    module docstring)."""

    kind: str = "uniform"
    scale: int = 0

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input style: unknown kind {self.kind!r} (known: {', '.join(INPUT_KINDS)})")
        if self.kind == "uniform" and self.scale != 0:
            raise ValueError("input style: uniform values take no scale")
        if self.kind == "integers" and not (isinstance(self.scale, int) and 1 <= self.scale <= LARGEST_INTEGER):
            raise ValueError(f"input style: integers need a scale from 1 to {LARGEST_INTEGER}, got {self.scale!r}")

    @property
    def text(self) -> str:
        """"uniform" or "integers:K": how files and command lines write it (`parse` reads it back)."""
        return self.kind if self.kind == "uniform" else f"{self.kind}:{self.scale}"

    @property
    def is_default(self) -> bool:
        return self == UNIFORM

    @classmethod
    def parse(cls, text: str) -> InputStyle:
        """The style whose `text` this is ("" reads as uniform); ValueError saying what is accepted."""
        text = str(text).strip()
        if text in ("", "uniform"):
            return UNIFORM
        match = re.fullmatch(r"integers:(\d{1,4})", text)
        if not match or not 1 <= int(match.group(1)) <= LARGEST_INTEGER:
            raise ValueError(f"input style {text!r}: expected 'uniform' or 'integers:K' (K from 1 to "
                             f"{LARGEST_INTEGER})")
        return cls("integers", int(match.group(1)))


UNIFORM = InputStyle()


@dataclass(frozen=True)
class Inputs:
    """x (N, C, *in), w (O, C/groups, *kernel), b (O,) or None, dy (N, O, *out), all of spec.dtype.

    Transposed: w (C, O/groups, *kernel) (spec.w_shape).
    """

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    dy: np.ndarray


def case_seed(spec: ConvSpec, seed: int, style: InputStyle = UNIFORM) -> int:
    """A 64-bit seed from the run seed, the case (not its dtype) and the input style (the default style
    adds nothing, so uniform draws are those of every earlier version)."""
    key = f"{seed}|{spec.replace(dtype='float64').descriptor}|bias={spec.bias}"
    if not style.is_default:
        key += f"|inputs={style.text}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def make_inputs(spec: ConvSpec, seed: int, style: InputStyle = UNIFORM) -> Inputs:
    """The case's inputs in `style` (default uniform).

    Uniform: Uniform(-1, 1) draws, weights scaled by 1/sqrt(fan_in) so outputs stay O(1) in every dtype.
    fan_in is the most products of x and w one element of y sums: C/groups * prod(kernel) for a
    convolution; for a transposed one, C/groups times the taps that reach one output position (about
    prod(kernel / stride)), from spec.reductions. Integers: whole numbers of magnitude 1 to scale, either
    sign, unscaled.
    """
    rng = np.random.default_rng(case_seed(spec, seed, style))
    dtype = numpy_dtype(spec.dtype)
    if style.kind == "integers":
        def draw(shape: tuple[int, ...]) -> np.ndarray:
            magnitudes = rng.integers(1, style.scale + 1, shape)
            return np.where(rng.random(shape) < 0.5, -magnitudes, magnitudes).astype(np.float64)

        x, w = draw(spec.x_shape), draw(spec.w_shape)
        b = draw((spec.out_channels,)) if spec.bias else None
        dy = draw(spec.y_shape)
    else:
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
