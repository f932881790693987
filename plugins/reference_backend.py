"""Backend `reference`: convparity's own NumPy im2col reference, for self-checks of the harness.

Its program runs reference_impl.conv_forward_backward (conv_transpose_forward_backward for a transposed
spec) in float64 and returns the results in each tensor's data type; a post-op chain runs through
reference_impl.post_ops, an integer convolution through reference_impl.quantized.quantized_conv_forward.
It computes every spec convparity can express.
"""

from __future__ import annotations

import numpy as np

from convparity.plugin import (
    POST_OP_KINDS,
    BackendCost,
    ConvSpec,
    Extras,
    Outputs,
    Program,
    hookimpl,
    installed_version,
    program_arguments,
)


def reference_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None, post_ops=(),
                   quantization=None):
    """convparity's float64 reference; step(x, w, b, dy, operands=(), quantization=None) -> (y, dx, dw, db[,
    {"dpost{k}": gradient}]), each in its tensor's data type (an integer y as codes)."""
    import ml_dtypes
    import numpy as np

    from convparity import reference_impl

    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if output_padding is not None:
        options["output_padding"] = output_padding
    chain = tuple(reference_impl.PostOp(**dict(step)) for step in post_ops)
    settings = dict(quantization or ())
    source, _, destination = (dtype.split(":") * 3)[:3] if ":" not in dtype else dtype.split(":")
    integers = ("uint8", "int8", "int32")
    names = {"bfloat16": ml_dtypes.bfloat16, "float8_e4m3": ml_dtypes.float8_e4m3fn,
             "float8_e5m2": ml_dtypes.float8_e5m2}

    def cast(values, data_type):
        return values.astype(names.get(data_type, data_type))

    def per_channel(value, ndim, axis=1):
        shape = [1] * ndim
        shape[axis] = -1
        return np.asarray(value, dtype=np.float64).reshape(shape)

    def integer_step(x, w, b, operands, q):
        y = reference_impl.quantized_conv_forward(
            x, w, b, **options, x_scale=q["x_scale"], x_zero_point=q["x_zero_point"], w_scale=q["w_scale"],
            w_zero_point=q["w_zero_point"], y_scale=q["y_scale"], y_zero_point=q["y_zero_point"],
            y_dtype=destination, rounding=settings.get("rounding", "half_even"), post_ops=chain, operands=operands)
        return (y if destination in integers else cast(y, destination)), None, None, None

    def float_step(x, w, b, dy, operands, q):
        as64 = [None if a is None else np.asarray(a, dtype=np.float64) for a in (x, w, b, dy)]
        x64 = (as64[0] - per_channel(q.get("x_zero_point", 0), x.ndim)) * per_channel(q.get("x_scale", 1.0), x.ndim)
        w64 = (as64[1] - q.get("w_zero_point", 0)) * per_channel(q.get("w_scale", 1.0), w.ndim, 1 if
                                                                   output_padding is not None else 0)
        forward = (reference_impl.conv_transpose_forward if output_padding is not None
                   else reference_impl.conv_forward)
        trace = reference_impl.chain_forward(forward(x64, w64, as64[2], **options), chain, operands)
        y = trace.output / per_channel(q.get("y_scale", 1.0), x.ndim) + per_channel(q.get("y_zero_point", 0), x.ndim)
        if destination in integers:
            ties = np.abs(y - np.floor(y) - 0.5) == 0
            y = reference_impl.saturate(reference_impl.round_codes(y, ties, settings.get("rounding", "half_even")),
                                         destination)
            return y.astype(destination), None, None, None
        if dy is None:
            return cast(y, destination), None, None, None
        gradients = reference_impl.chain_backward(trace, chain, operands, as64[3])
        backward = (reference_impl.conv_transpose_backward if output_padding is not None
                    else reference_impl.conv_backward)
        dx, dw, db = backward(gradients.conv_output, as64[0], as64[1], **options, bias=b is not None)
        outputs = (cast(y, destination), cast(dx, x.dtype), cast(dw, w.dtype), None if db is None else
                   cast(db, b.dtype))
        if not gradients.operands:
            return outputs
        return (*outputs, {f"dpost{k}": cast(g, destination) for k, g in gradients.operands.items()})

    def step(x, w, b, dy, operands=(), quantization=None):
        q = dict(quantization or {})
        if source in integers:
            return integer_step(x, w, b, operands, q)
        return float_step(x, w, b, dy, operands, q)

    return step


class ReferenceBackend:
    """The reference as a backend: supports every spec."""

    name = "reference"
    cost = BackendCost(0.0003, 0.1)  # NumPy on one core, its magnitude pass included: ~10 GFLOP/s
    post_ops = POST_OP_KINDS
    data_types = ("any",)

    def version(self) -> str:
        return f"convparity {installed_version('convparity')} (numpy {np.__version__})"

    def availability(self) -> str | None:
        return None

    def supports(self, spec: ConvSpec) -> str | None:
        return None

    def program(self, spec: ConvSpec) -> Program:
        return Program(reference_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        step = self.program(spec).build()
        if extras is None:
            return step(x, w, b, dy)
        return step(x, w, b, dy, operands=extras.operands, quantization=extras.quantization)


@hookimpl
def convparity_register_backends(register):
    register(ReferenceBackend())
