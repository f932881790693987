"""ConvSpec: one convolution layer configuration, validated on construction.

Field conventions (see DESIGN.md):
- `input_size`, `kernel_size`, `stride`, `dilation`: one int per spatial dim (1 to 3 dims);
  dilation 1 is a dense kernel (PyTorch's convention).
- `padding`: one (before, after) pair per dim. Accepted on construction as an int, per-dim ints,
  per-dim pairs, or "valid" / "same" (TensorFlow's rule: the odd pad goes at the end).
- The end pad is stored in canonical form: 0 where a negative end pad would only drop input no
  window reaches (or a positive one only adds zeros none reaches), else the smallest padding or the
  smallest crop that gives the same windows. A crop that changes the output is kept.
- `dtype`: "float64", "float32", "float16" or "bfloat16".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reference_impl.geometry import ConvGeometry, per_dim, per_dim_pairs

DTYPES = ("float64", "float32", "float16", "bfloat16")
# Sizes a tensor can have: every size, channel count, kernel extent, stride, dilation and pad fits in a
# signed 32-bit int (frameworks index with int32 or int64, benchdnn with int64), and no tensor holds more
# than MAX_ELEMENTS elements (2**36: 512 GiB in float64, beyond any machine this runs on). A spec past
# either is refused with the field named, so nothing downstream ever allocates or prints it.
MAX_INT = 2**31 - 1
MAX_ELEMENTS = 2**36
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype for a spec dtype name (bfloat16 from ml_dtypes)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return np.dtype(name)


def _short(value: object) -> str:
    """A value for an error message, at most about 60 characters: an int of thousands of digits is described."""
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_short, value)) + ")"
    if isinstance(value, int) and abs(value) > 10**40:
        return f"a {int(abs(value).bit_length() * 0.30103) + 1}-digit number"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:28]}...{text[-28:]}"


def _same_padding(size: int, effective_kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME": output ceil(i / s), total pad split with the odd element at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + effective_kernel - size, 0)
    return total // 2, total - total // 2


def canonical_end_pad(size: int, before: int, after: int, effective_kernel: int, stride: int) -> int:
    """The end pad that gives the same windows as `after`, in canonical form.

    Windows reach the padded positions [0, (o - 1) * s + e); every end pad in
    [exact, exact + s) gives the same output, where exact = (o - 1) * s + e - i - before.
    Canonical: 0 when it is in that range; else the smallest padding, or the smallest crop.
    """
    out = (size + before + after - effective_kernel) // stride + 1
    exact = (out - 1) * stride + effective_kernel - size - before
    return min(max(exact, 0), exact + stride - 1)


@dataclass(frozen=True)
class ConvSpec:
    """One convolution: x (batch, in_channels, *input_size), w (out_channels, in_channels/groups, *kernel_size)."""

    batch: int
    in_channels: int
    out_channels: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...] = 1  # type: ignore[assignment]  # ints and strings are normalised
    padding: tuple[tuple[int, int], ...] = 0  # type: ignore[assignment]  # in __post_init__
    dilation: tuple[int, ...] = 1  # type: ignore[assignment]
    groups: int = 1
    bias: bool = True
    dtype: str = "float32"

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        try:
            rank = 1 if isinstance(self.input_size, (int, np.integer)) else len(self.input_size)
        except TypeError:
            rank = 1  # not a size at all: per_dim names the field
        if not 1 <= rank <= 3:
            raise ValueError(f"input_size must have 1 to 3 spatial dims, got {self.input_size!r}")
        input_size = per_dim("input_size", self.input_size, rank, minimum=1)
        set_("input_size", input_size)
        for field in ("batch", "in_channels", "out_channels", "groups"):
            value = getattr(self, field)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field} must be a positive int, got {value!r}")
            set_(field, int(value))
        set_("kernel_size", per_dim("kernel_size", self.kernel_size, rank, minimum=1))
        for field in ("stride", "dilation"):
            set_(field, per_dim(field, getattr(self, field), rank, minimum=1))
        if not isinstance(self.bias, (bool, np.bool_)):
            raise ValueError(f"bias must be True or False, got {self.bias!r}")
        set_("bias", bool(self.bias))
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide in_channels={self.in_channels} and "
                f"out_channels={self.out_channels}"
            )
        effective = tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation))
        padding: Any = 0 if self.padding == "valid" else self.padding
        if padding == "same":
            pairs = tuple(_same_padding(i, e, s) for i, e, s in zip(input_size, effective, self.stride))
        elif isinstance(padding, str):
            raise ValueError(f"padding must be 'same', 'valid', an int or per-dim pads, got {padding!r}")
        else:
            pairs = per_dim_pairs(padding, rank)
        for dim, ((lo, hi), size, e) in enumerate(zip(pairs, input_size, effective)):
            if size + min(lo, 0) < 1:
                raise ValueError(f"padding {(lo, hi)} crops all {size} inputs of spatial dim {dim}")
            if size + lo + hi < e:
                raise ValueError(
                    f"kernel_size: effective kernel {e} (kernel {self.kernel_size[dim]}, dilation "
                    f"{self.dilation[dim]}) is larger than the padded input {size + lo + hi} in spatial dim {dim}"
                )
        self._check_limits(pairs)
        pairs = tuple(
            (lo, canonical_end_pad(size, lo, hi, e, s))
            for (lo, hi), size, e, s in zip(pairs, input_size, effective, self.stride)
        )
        for dim, ((lo, hi), size) in enumerate(zip(pairs, input_size)):
            if size + min(lo, 0) + min(hi, 0) < 1:
                raise ValueError(f"padding {(lo, hi)} crops all {size} inputs of spatial dim {dim}")
        set_("padding", pairs)

    def _check_limits(self, pairs: tuple[tuple[int, int], ...]) -> None:
        """ValueError naming the field when a value or a tensor is beyond MAX_INT / MAX_ELEMENTS."""
        for field in ("batch", "in_channels", "out_channels", "groups", "input_size", "kernel_size", "stride",
                      "dilation", "padding"):
            value = pairs if field == "padding" else getattr(self, field)
            flat = [v for item in value for v in item] if field == "padding" else (
                list(value) if isinstance(value, tuple) else [value])
            if any(abs(v) > MAX_INT for v in flat):
                raise ValueError(f"{field}: {_short(value)} is beyond the largest size a tensor can have ({MAX_INT})")
        effective = tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation))
        out = tuple((i + lo + hi - e) // s + 1 for i, (lo, hi), e, s in zip(self.input_size, pairs, effective,
                                                                              self.stride))
        for tensor, shape in (("x", (self.batch, self.in_channels, *self.input_size)),
                              ("w", (self.out_channels, self.in_channels // self.groups, *self.kernel_size)),
                              ("y", (self.batch, self.out_channels, *out))):
            if math.prod(shape) > MAX_ELEMENTS:
                raise ValueError(f"{tensor} would hold {math.prod(shape):.3g} elements {shape}, more than the "
                                 f"{MAX_ELEMENTS:.3g} a tensor may have here")

    @property
    def rank(self) -> int:
        return len(self.input_size)

    @property
    def geometry(self) -> ConvGeometry:
        return ConvGeometry(
            batch=self.batch,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            groups=self.groups,
            input_size=self.input_size,
            kernel_size=self.kernel_size,
            stride=self.stride,
            dilation=self.dilation,
            padding=self.padding,
        )

    @property
    def output_size(self) -> tuple[int, ...]:
        return self.geometry.output_size

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels) + self.input_size

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels) + self.output_size

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The canonical shape of every tensor: x, w, b, y and the gradients dy, dx, dw, db."""
        return {"x": self.x_shape, "w": self.w_shape, "b": (self.out_channels,), "y": self.y_shape,
                "dy": self.y_shape, "dx": self.x_shape, "dw": self.w_shape, "db": (self.out_channels,)}

    @property
    def reductions(self) -> dict[str, int]:
        """Reduction length K_T of every tensor: how many products each element sums."""
        kernel = math.prod(self.kernel_size)
        return {
            "y": self.in_channels // self.groups * kernel + (1 if self.bias else 0),
            "dx": self.out_channels // self.groups * kernel,
            "dw": self.batch * math.prod(self.output_size),
            "db": self.batch * math.prod(self.output_size),
        }

    @property
    def descriptor(self) -> str:
        from harness.cases.descriptor import format_descriptor

        return format_descriptor(self)

    def replace(self, **changes: Any) -> ConvSpec:
        return dataclasses.replace(self, **changes)

