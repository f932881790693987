"""ConvSpec: one convolution layer configuration, validated on construction.

Field conventions (see DESIGN.md):
- `input_size`, `kernel_size`, `stride`, `dilation`: one int per spatial dim (1 to 3 dims);
  dilation 1 is a dense kernel (PyTorch's convention).
- `padding`: one (before, after) pair per dim. Accepted on construction as an int, per-dim ints,
  per-dim pairs, or "valid" / "same" (TensorFlow's rule: the odd pad goes at the end).
- The end pad is stored in canonical form: 0 where a negative end pad would only drop input no
  window reaches (or a positive one only adds zeros none reaches), else the smallest padding or the
  smallest crop that gives the same windows. A crop that changes the output is kept.
- `dtype`: one data type for every tensor ("float64", "float32", "float16", "bfloat16", "float8_e4m3",
  "float8_e5m2", "uint8", "int8") or benchdnn's SRC:WEI:DST ("uint8:int8:uint8", "bfloat16:float32:bfloat16"):
  see harness.vocabulary.check_dtype. 8-bit integer sources make a quantized convolution: an exact integer
  accumulation, compared in quantization steps where y is an integer type, without gradients.
- `post_ops`: the epilogue fused after the convolution (reference_impl.post_ops.PostOp, benchdnn's
  `--attr-post-ops`); `quantization`: scales, zero points, bias type and rounding (harness.cases.attributes).
  Both print as benchdnn options before the descriptor and read back from it.
- `transposed`: a transposed convolution (deconvolution) instead of a convolution: x (N, C_in, *in),
  w (C_in, C_out/groups, *kernel) as in PyTorch and ONNX, y (N, C_out, *out) with
  out = (i - 1) * s - before - after + (k - 1) * d + output_padding + 1 per dim. Positive pads crop
  the full result, negative ones extend it with positions no input reaches (bias only); see
  convparity.reference_impl.transposed. `output_padding` (an int or one per dim, 0 for a convolution) follows
  PyTorch's rule: < stride or < dilation. Only after - output_padding matters, so the pair is stored
  in canonical form: symmetric pads (after = before >= 0) when an allowed output_padding makes them
  so (PyTorch's `padding=p, output_padding=op`), else the smallest output_padding that keeps the end
  pad >= 0, else the largest allowed one. "valid" is no padding; "same" is TensorFlow's and Keras'
  rule for transposed convolutions: out = i * s, the crop split with its odd element at the end.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from convparity.harness.cases.attributes import PER_CHANNEL, Quantization, format_options
from convparity.harness.cases.descriptor_format import format_fields
from convparity.harness.vocabulary import FLOAT_TYPES, TENSORS, check_dtype, data_types, is_integer
from convparity.reference_impl.geometry import ConvGeometry, TransposedGeometry, per_dim, per_dim_pairs
from convparity.reference_impl.post_ops import DIFFERENTIABLE_OPERANDS, PostOp, operand_shape

# Sizes a spec can have: every size, channel count, kernel extent, stride, dilation and pad fits in a signed
# 64-bit int, as benchdnn reads them (str2desc's strtoll). Larger tensors than a machine can hold are valid specs
# (benchdnn's shapes_large_conv has dims beyond 2**31 - 1): a run answers them `unsupported`, saying how much
# memory their inputs would need (harness.evaluation.verdict.drawn_inputs).
MAX_INT = 2**63 - 1
EXACT_TAPS = 1 << 20  # kernel extents up to which multiply_adds counts taps one by one


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


def _transposed_same_padding(size: int, effective_kernel: int, stride: int) -> tuple[int, int, int]:
    """(before, after, output_padding) of TensorFlow's "SAME" transposed convolution: out = i * s.

    It is the data gradient of a "SAME" convolution of an input of i * s: that crops
    max(effk - s, 0) positions of the full (i - 1) * s + effk, the odd one at the end, and an
    effective kernel shorter than the stride leaves s - effk positions past the full result.
    """
    total = effective_kernel - stride
    if total < 0:
        return 0, 0, -total
    return total // 2, total - total // 2, 0


def canonical_output_padding(before: int, after: int, extra: int, stride: int, dilation: int) -> tuple[int, int]:
    """(after, output_padding) in canonical form for a transposed convolution (see the module docstring).

    Only after - output_padding matters (the output ends at the same position of the full result);
    output_padding may be 0 to max(stride, dilation) - 1 (PyTorch's rule).
    """
    net, most = after - extra, max(stride, dilation) - 1
    if before >= 0 and 0 <= before - net <= most:
        return before, before - net
    extra = min(max(-net, 0), most)
    return net + extra, extra


@dataclass(frozen=True)
class ConvSpec:
    """One convolution: x (batch, in_channels, *input_size), w (out_channels, in_channels/groups, *kernel_size).

    A transposed one (`transposed=True`): w (in_channels, out_channels/groups, *kernel_size).
    """

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
    transposed: bool = False
    output_padding: tuple[int, ...] = 0  # type: ignore[assignment]  # an int or one per dim
    post_ops: tuple[PostOp, ...] = ()
    quantization: Quantization = Quantization()

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
        set_("dtype", check_dtype(self.dtype))
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups={self.groups} must divide in_channels={self.in_channels} and "
                f"out_channels={self.out_channels}"
            )
        if not isinstance(self.transposed, (bool, np.bool_)):
            raise ValueError(f"transposed must be True or False, got {self.transposed!r}")
        set_("transposed", bool(self.transposed))
        extra = per_dim("output_padding", self.output_padding, rank, minimum=0)
        if not self.transposed and any(extra):
            raise ValueError(f"output_padding must be 0 for a convolution (transposed=False), got "
                             f"{self.output_padding!r}")
        effective = tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation))
        padding: Any = 0 if self.padding == "valid" else self.padding
        if isinstance(padding, str) and padding != "same":
            raise ValueError(f"padding must be 'same', 'valid', an int or per-dim pads, got {padding!r}")
        if self.transposed:
            pairs, extra = self._transposed_padding(padding, extra, effective)
        else:
            pairs = self._conv_padding(padding, effective)
        set_("padding", pairs)
        set_("output_padding", extra)
        self._check_attributes()

    def _check_attributes(self) -> None:
        """The post-op chain and quantization against the shapes and data types (ValueError naming the field)."""
        if not isinstance(self.post_ops, (tuple, list)) or not all(isinstance(op, PostOp) for op in self.post_ops):
            raise ValueError(f"post_ops must be a tuple of PostOp, got {self.post_ops!r}")
        object.__setattr__(self, "post_ops", tuple(self.post_ops))
        for index, op in enumerate(self.post_ops):
            try:
                operand_shape(op, self.y_shape)
            except ValueError as error:
                raise ValueError(f"post_ops[{index}]: {error}") from None
        if not isinstance(self.quantization, Quantization):
            raise ValueError(f"quantization must be a Quantization, got {self.quantization!r}")
        src, _, dst = self.data_types
        q = self.quantization
        if q.bias_dtype == "int32" and not is_integer(src):
            raise ValueError(f"quantization bias_dtype int32 needs 8-bit integer sources, not dtype {self.dtype}")
        if q.rounding == "double_rounding" and (not is_integer(src) or not is_integer(dst) or self.post_ops
                                              or self.bias_dtype not in ("int32", None)):
            raise ValueError("quantization rounding double_rounding requantizes an integer accumulator: it needs "
                             "integer sources and destination, an int32 bias and no post-ops")
        if self.transposed and is_integer(src):
            raise ValueError(f"dtype {self.dtype}: convparity computes integer convolutions, not transposed ones")
        if self.transposed and q.w_scale == PER_CHANNEL:
            raise ValueError("quantization w_scale per_channel: convparity scales a transposed convolution's weights "
                             "per tensor only")
        if self.bias_dtype == "int32" and q.x_scale == PER_CHANNEL:
            raise ValueError("quantization x_scale per_channel: an int32 bias counts accumulator steps of one x "
                             "scale, so it needs a common x_scale")

    def _conv_padding(self, padding: Any, effective: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """A convolution's (before, after) pads, checked and with canonical end pads."""
        input_size, rank = self.input_size, len(self.input_size)
        if padding == "same":
            pairs = tuple(_same_padding(i, e, s) for i, e, s in zip(input_size, effective, self.stride))
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
        return pairs

    def _transposed_padding(self, padding: Any, extra: tuple[int, ...], effective: tuple[int, ...],
                            ) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
        """A transposed convolution's (before, after) pads and output_padding, checked and canonical."""
        input_size, rank = self.input_size, len(self.input_size)
        if padding == "same":
            if any(extra):
                raise ValueError(f"output_padding must be 0 with padding='same' (which sets it), got {extra}")
            triples = [_transposed_same_padding(i, e, s) for i, e, s in zip(input_size, effective, self.stride)]
            pairs, extra = tuple((lo, hi) for lo, hi, _ in triples), tuple(e for _, _, e in triples)
        else:
            pairs = per_dim_pairs(padding, rank)
        for dim, (e, s, d) in enumerate(zip(extra, self.stride, self.dilation)):
            if e >= s and e >= d:
                raise ValueError(f"output_padding must be smaller than stride or dilation in every dim, got {e} with "
                                 f"stride {s} and dilation {d} in spatial dim {dim}")
        self._check_limits(pairs)
        for dim, ((lo, hi), e, i, k, s) in enumerate(zip(pairs, extra, input_size, effective, self.stride)):
            full = (i - 1) * s + k
            out = full - lo - hi + e
            if out < 1:
                raise ValueError(f"padding {(lo, hi)} leaves no output in spatial dim {dim}: {full} positions - {lo} "
                                 f"- {hi} + output_padding {e} = {out}")
        canonical = [canonical_output_padding(lo, hi, e, s, d)
                     for (lo, hi), e, s, d in zip(pairs, extra, self.stride, self.dilation)]
        return (tuple((lo, hi) for (lo, _), (hi, _) in zip(pairs, canonical)),
                tuple(e for _, e in canonical))

    def _check_limits(self, pairs: tuple[tuple[int, int], ...]) -> None:
        """ValueError naming the field when a value is beyond MAX_INT (int64)."""
        for field in ("batch", "in_channels", "out_channels", "groups", "input_size", "kernel_size", "stride",
                      "dilation", "padding"):
            value = pairs if field == "padding" else getattr(self, field)
            flat = [v for item in value for v in item] if field == "padding" else (
                list(value) if isinstance(value, tuple) else [value])
            if any(abs(v) > MAX_INT for v in flat):
                raise ValueError(f"{field}: {_short(value)} is beyond the largest size a spec can have, int64's "
                                 f"{MAX_INT}")

    @property
    def rank(self) -> int:
        return len(self.input_size)

    @property
    def data_types(self) -> tuple[str, str, str]:
        """(x, w, y) data types: `dtype` itself, or its SRC:WEI:DST parts."""
        return data_types(self.dtype)

    @property
    def quantized(self) -> bool:
        """Whether the sources are 8-bit integers (the accumulation is exact, in integers)."""
        return is_integer(self.data_types[0])

    @property
    def integer_output(self) -> bool:
        """Whether y is an integer type: it is compared in quantization steps, not under the float bound."""
        return is_integer(self.data_types[2])

    @property
    def differentiable(self) -> bool:
        """Whether the case has gradients: every tensor is a float (an integer one has no gradient) and nothing is
        scaled (benchdnn's scales are an inference attribute)."""
        return all(t in FLOAT_TYPES for t in self.data_types) and self.quantization.is_identity

    @property
    def compute_dtype(self) -> str:
        """The float type the epilogue works in: y's for a float y, float32 for an integer y."""
        dst = self.data_types[2]
        return dst if dst in FLOAT_TYPES else "float32"

    def dtype_of(self, tensor: str) -> str:
        """The data type `tensor` is returned in: y the destination's, dx the source's, dw the weights', db the
        bias's, an operand's gradient (dpost{k}) the working type."""
        src, wei, dst = self.data_types
        return {"y": dst, "dx": src, "dw": wei, "db": self.bias_dtype or dst}.get(tensor, self.compute_dtype)

    @property
    def bias_dtype(self) -> str | None:
        """The bias's data type (None without a bias): the declared one, else int32 for 8-bit sources, float32 for
        8-bit float or integer outputs, y's type otherwise."""
        if not self.bias:
            return None
        if self.quantization.bias_dtype:
            return self.quantization.bias_dtype
        if self.quantized:
            return "int32"
        dst = self.data_types[2]
        return dst if dst in ("float64", "float32", "float16", "bfloat16") else "float32"

    @property
    def operand_shapes(self) -> tuple[tuple[int, ...] | None, ...]:
        """One per post-op: the shape of its operand (None for an eltwise step); see reference_impl.post_ops."""
        return tuple(operand_shape(op, self.y_shape) for op in self.post_ops)

    @property
    def per_channel_shapes(self) -> dict[str, tuple[int, ...]]:
        """{quantization field: (channels,)} for the scales and zero points drawn per channel."""
        channels = {"x": self.in_channels, "w": self.out_channels, "y": self.out_channels}
        return {name: (channels[name[0]],) for name in self.quantization.per_channel}

    @property
    def tensors(self) -> tuple[str, ...]:
        """The tensors a case compares: y; with gradients also dx, dw, db (with a bias) and `dpost{k}` for each
        post-op k whose operand has one (a sum's residual, a binary's src1, prelu's slopes)."""
        if not self.differentiable:
            return ("y",)
        operands = tuple(f"dpost{k}" for k, op in enumerate(self.post_ops) if op.kind in DIFFERENTIABLE_OPERANDS)
        return tuple(t for t in TENSORS if t != "db" or self.bias) + operands

    @property
    def op(self) -> str:
        """"deconv" for a transposed convolution, else "conv" (benchdnn's driver names)."""
        return "deconv" if self.transposed else "conv"

    @property
    def geometry(self) -> ConvGeometry | TransposedGeometry:
        """The reference's view of the shapes: a TransposedGeometry for a transposed spec."""
        shared: dict[str, Any] = dict(batch=self.batch, in_channels=self.in_channels, out_channels=self.out_channels,
                                      groups=self.groups, input_size=self.input_size,
                                      kernel_size=self.kernel_size, stride=self.stride, dilation=self.dilation,
                                      padding=self.padding)
        if self.transposed:
            return TransposedGeometry(**shared, output_padding=self.output_padding)
        return ConvGeometry(**shared)

    @property
    def output_size(self) -> tuple[int, ...]:
        return self.geometry.output_size

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels) + self.input_size

    @property
    def w_shape(self) -> tuple[int, ...]:
        """(O, C/groups, *kernel); transposed: (C_in, C_out/groups, *kernel)."""
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels) + self.output_size

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The canonical shape of every tensor: x, w, b, y, the gradients dy, dx, dw, db, and each post-op operand
        `post{k}` with its gradient `dpost{k}`."""
        operands = {f"{prefix}{k}": shape for k, shape in enumerate(self.operand_shapes) if shape is not None
                    for prefix in ("post", "dpost")}
        return {"x": self.x_shape, "w": self.w_shape, "b": (self.out_channels,), "y": self.y_shape,
                "dy": self.y_shape, "dx": self.x_shape, "dw": self.w_shape, "db": (self.out_channels,), **operands}

    @property
    def multiply_adds(self) -> int:
        """The multiply-adds of y exactly: every (output, tap) pair whose input is inside the input, not padding,
        times the batch, the output channels and the input channels per group (dx and dw take as many).

        Per dim, with o outputs, a tap t at offset t * d - before reaches input o * s + t * d - before of a
        convolution; a transposed one takes input i to output i * s + t * d - before. Padding taps are not
        counted: a framework that multiplies them by zero does no arithmetic that could err. A kernel longer than
        EXACT_TAPS in a dim counts every pair there (an upper bound), so a descriptor's absurd kernel costs no time.
        """
        pairs = 1
        for dim in range(self.rank):
            size, out = self.input_size[dim], self.output_size[dim]
            s, d, before = self.stride[dim], self.dilation[dim], self.padding[dim][0]
            # the source index runs over [0, n) and reaches target index source * s + tap * d - before in [0, limit)
            n, limit = (size, out) if self.transposed else (out, size)
            if self.kernel_size[dim] > EXACT_TAPS:  # beyond any real kernel: every pair, an upper bound
                pairs *= n * self.kernel_size[dim]
                continue
            count = 0
            for tap in range(self.kernel_size[dim]):
                offset = tap * d - before
                low = max(0, -(offset // s))
                high = min(n - 1, (limit - 1 - offset) // s)
                count += max(0, high - low + 1)
            pairs *= count
        return self.batch * self.out_channels * (self.in_channels // self.groups) * pairs

    @property
    def reductions(self) -> dict[str, int]:
        """Reduction length K_T of every tensor: how many products each element sums (at most).

        Transposed: TransposedGeometry.reduction_lengths (only the taps that reach an output count).
        """
        geometry = self.geometry
        if isinstance(geometry, TransposedGeometry):
            return geometry.reduction_lengths(bias=self.bias)
        kernel = math.prod(self.kernel_size)
        return {
            "y": self.in_channels // self.groups * kernel + (1 if self.bias else 0),
            "dx": self.out_channels // self.groups * kernel,
            "dw": self.batch * math.prod(self.output_size),
            "db": self.batch * math.prod(self.output_size),
        }

    @property
    def descriptor(self) -> str:
        """The canonical benchdnn descriptor (harness.cases.descriptor reads it back as this spec), after the
        attribute options of a post-op chain or quantization (harness.cases.attributes)."""
        return self.named_descriptor()

    @property
    def attribute_options(self) -> str:
        """benchdnn's options for the post-op chain and quantization ("" for a plain convolution)."""
        return format_options(self.post_ops, self.quantization, self.rank + 2)

    def named_descriptor(self, name: str = "") -> str:
        """The descriptor with `n"name"` after it (none for an empty name); dilation counts from 0 there."""
        fields = {"i": self.input_size, "o": self.output_size, "k": self.kernel_size, "s": self.stride,
                  "p": tuple(lo for lo, _ in self.padding), "d": tuple(d - 1 for d in self.dilation)}
        geometry = format_fields(self.groups, self.batch, self.in_channels, self.out_channels, fields, name,
                                 self.transposed)
        options = self.attribute_options
        return f"{options} {geometry}" if options else geometry

    def replace(self, **changes: Any) -> ConvSpec:
        return dataclasses.replace(self, **changes)

