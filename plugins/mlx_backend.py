"""Backend `mlx`: mlx.core.conv_general and mlx.core.vjp on MLX's CPU device.

Boundary: MLX convolutions are channels-last, so x (N, C, *in) and dy (N, O, *out) become (N, *in, C) and
(N, *out, O), w (O, C/groups, *k) becomes (O, *k, C/groups), and the results are moved back. Arrays are
made with an explicit dtype: `mx.array` of a float64 NumPy array is float32 unless told otherwise.
bfloat16 arrays enter as float32 (exact) and are cast. conv_general takes per-dim (low, high) pads,
negative ones included. The bias is `y + b` (MLX has no convolution with bias), differentiated with the
convolution by one `mx.vjp`. Everything runs inside `mx.stream(mx.cpu)`. The whole of it is `mlx_conv`
(the backend's program).

A post-op chain (every kind convparity has) follows inside the function `mx.vjp` differentiates, so the
operands' gradients (a sum's residual, binary src1, prelu slopes) come from the same vjp: mlx.nn's
activations (relu, leaky_relu for slopes from 0 to 1, relu6, elu, gelu, gelu_approx, silu, hardswish where
the parameters are PyTorch's in the working precision, mish, softplus, prelu), nn.BatchNorm in eval mode with
the running statistics set, and mlx.core's broadcasting ops (sigmoid, tanh, clip, power, round, ...); the
operands move to channels-last with y. mlx.nn's activations are mx.compile'd functions (shapeless), so each
is one fused elementwise kernel; the plugin compiles nothing else. nn.BatchNorm takes 2 to 4 dims, so after a
3-D convolution it is a limit with MLX's message.

Limits are probes: each is a tiny convolution showing one feature, and MLX's own error message, when it
raises one, becomes the reason. On MLX 0.32: 3-D convolutions with groups, and float64 wherever the CPU
backend needs its direct ("slow") kernels, which have no float64 instantiation: dilation, groups, and the
input-dilated convolution that the vjp uses for dx when stride > 1. The remaining float64 specs run, but
see DEVIATIONS (the convolution, and exp, erf and sigmoid, are computed to float32's accuracy). mlx is imported
only when first needed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np

from convparity.plugin import (
    CONVOLUTION_ONLY,
    BackendCost,
    ConvSpec,
    Deviation,
    Extras,
    Framework,
    Limit,
    Outputs,
    Probe,
    Program,
    first_limit,
    hookimpl,
    installed_version,
    probed_limits,
    program_arguments,
    tiny_spec,
)

MLX = Framework("mlx.core", "mlx", distribution="mlx")


def _dense(spec: ConvSpec) -> bool:
    """Stride 1, dilation 1, one group: the specs MLX's CPU backend runs with its explicit-GEMM kernels."""
    return set(spec.stride) == {1} and set(spec.dilation) == {1} and spec.groups == 1


def _dense_plain(spec: ConvSpec) -> bool:
    return _dense(spec) and not spec.post_ops


def _dense_chain(spec: ConvSpec) -> bool:
    return _dense(spec) and bool(spec.post_ops)


# The post-op kinds mlx_conv computes with MLX's exp, erf or sigmoid (logaddexp is built on exp).
EXP_KINDS = ("elu", "gelu_erf", "swish", "logistic", "mish", "soft_relu", "exp")


def _dense_exp_chain(spec: ConvSpec) -> bool:
    return _dense(spec) and any(op.function in EXP_KINDS for op in spec.post_ops)


# The post-op kinds mlx_conv computes after the convolution with mlx.nn's activations and layers (nn.BatchNorm,
# nn.prelu) and mlx.core's elementwise ops, broadcasting: every kind convparity has.
POST_OPS = ("relu", "clip", "elu", "gelu_erf", "gelu_tanh", "swish", "logistic", "tanh", "hardswish", "hardsigmoid",
            "mish", "soft_relu", "linear", "abs", "square", "sqrt", "exp", "log", "round", "pow", "sum", "binary_add",
            "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min", "prelu", "batchnorm")

DEVIATIONS = (
    Deviation(
        condition="float64 with stride 1, dilation 1 and one group",
        reason="MLX's CPU explicit-GEMM convolution computes float64 in float32 and returns float64 "
        "(`auto conv_dtype = float32;` in mlx/backend/cpu/conv.cpp), so y and dx carry float32 rounding. Repro: "
        "import mlx.core as mx, numpy as np; x = np.random.default_rng(0).random((1, 64, 1)); "
        "y = mx.conv_general(mx.array(x, dtype=mx.float64), mx.ones((1, 1, 1), dtype=mx.float64), stream=mx.cpu); "
        "print(y.dtype, abs(np.array(y) - x).max())  # float64, ~3e-8 (x rounded to float32), not 0",
        upstream="docs/upstream/mlx-float64-computed-in-float32.md (not reported yet)",
        applies=_dense_plain,
        dtypes=("float64",),
        tensors=("y", "dx"),
    ),
    Deviation(
        condition="float64 with stride 1, dilation 1 and one group, and a post-op built on exp, erf or sigmoid "
        "(elu, gelu_erf, swish, logistic, mish, soft_relu, exp)",
        reason="MLX's CPU exp, erf and sigmoid (and logaddexp, softplus) compute float64 with their float32 "
        "approximations, relative error ~1e-7 (mlx/backend/cpu/simd/math.h). Repro: import mlx.core as mx, math; "
        "print(mx.exp(mx.array([0.5], dtype=mx.float64), stream=mx.cpu).item() - math.exp(0.5))  # ~1e-7, not ~1e-16",
        upstream="https://github.com/ml-explore/mlx/issues/3047",
        applies=_dense_exp_chain,
        dtypes=("float64",),
        strict=False,
    ),
    Deviation(
        condition="float64 with stride 1, dilation 1 and one group, and a post-op chain",
        reason="the convolution computed in float32 (the deviation above) feeds the chain: y and dx carry its "
        "rounding, and so do dw, db and the operands' gradients wherever the chain's derivative depends on the "
        "convolution's output (gelu, tanh, binary mul, prelu, ...); a rounding step can hide it in y. Given MLX's "
        "own convolution output, the chain and its gradients agree with float64 "
        "(tests/plugins/test_mlx.py::test_float64_chains_are_exact_but_for_the_float32_convolution)",
        upstream="not reported yet",
        applies=_dense_chain,
        dtypes=("float64",),
        strict=False,
    ),
    Deviation(
        condition="bias, float16/bfloat16",
        reason="MLX has no convolution with bias (mlx.nn.Conv2d adds it too): conv_general rounds to the narrow "
        "dtype and `+ b` rounds again (two roundings). Repro: import mlx.core as mx; "
        "y = mx.conv_general(mx.ones((1, 1, 2), dtype=mx.float16), mx.array([[[2048.0, 1.0]]], dtype=mx.float16), "
        "stream=mx.cpu) + mx.array([1.0], dtype=mx.float16); print(y.item())  # 2048.0, not 2050 = 2048 + 1 + 1",
        upstream="a precision choice, not reported",
        dtypes=("float16", "bfloat16"),
        tensors=("y",),
        bias=True,
        strict=False,
    ),
    Deviation(
        condition="bias, float16/bfloat16, and a post-op chain",
        reason="the twice-rounded conv + b (the deviation above) feeds the chain: where the bias cancels the "
        "convolution, the chain's derivative is taken at a value off by a rounding of the convolution, not of y (a "
        "kink of relu, abs, clip, prelu; the slope of square), so dx, dw, db and operand gradients differ too. "
        "Repro: import mlx.core as mx; bf = mx.bfloat16; w = mx.array([[[1.0, 2.0**-8]]]).astype(bf); "
        "f = lambda x: mx.abs(mx.conv_general(x, w, stream=mx.cpu) + mx.array([-1.0]).astype(bf)); "
        "print(mx.vjp(f, [mx.ones((1, 1, 2)).astype(bf)], [mx.ones((1, 1, 1)).astype(bf)])[1])  "
        "# dx [0, 0], not sign(2**-8) * w = [1, 2**-8]",
        upstream="a precision choice, not reported",
        applies=lambda spec: bool(spec.post_ops),
        dtypes=("float16", "bfloat16"),
        bias=True,
        strict=False,
    ),
)


def mlx_conv(*, stride, padding, dilation, groups, dtype, bias, post_ops=()):
    """mx.conv_general (+ b), then the post-op chain as mlx.nn / mlx.core ops, and mx.vjp through all of it on the
    CPU stream, channels-last inside: x (N, *in, C), w (O, *k, C/groups), y, dy and the chain's operands
    (N, *out, O). step(x, w, b, dy, operands=(), quantization=None) -> (y, dx, dw, db[, {"dpost{k}": gradient}])
    channels-first, as NumPy arrays."""

    import mlx.core as mx
    import mlx.nn as nn
    import numpy as np

    low, high = [before for before, _ in padding], [after for _, after in padding]
    chain = [dict(step) for step in post_ops]
    differentiable = ("sum", "binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min",
                      "prelu")
    trained = [k for k, op in enumerate(chain) if op["kind"] in differentiable]
    binary = {"binary_add": mx.add, "binary_sub": mx.subtract, "binary_mul": mx.multiply, "binary_div": mx.divide,
              "binary_max": mx.maximum, "binary_min": mx.minimum}
    narrow = {"float16": np.float16, "bfloat16": np.float32, "float32": np.float32}.get(dtype, np.float64)

    def pytorch_hardswish(alpha, beta):  # nn.hardswish is x * relu6(x + 3) / 6: alpha 1/6 in the working precision
        return beta == 0.5 and narrow(alpha) == narrow(1 / 6)

    def eltwise(v, kind, alpha, beta):
        if kind == "relu":  # nn.leaky_relu is max(slope * x, x): a leaky relu for slopes from 0 to 1
            if alpha == 0:
                return nn.relu(v)
            return nn.leaky_relu(v, negative_slope=alpha) if 0 < alpha <= 1 else mx.where(v > 0, v, alpha * v)
        if kind == "clip":
            return nn.relu6(v) if (alpha, beta) == (0, 6) else mx.clip(v, alpha, beta)
        if kind == "swish":
            return nn.silu(v) if alpha == 1 else v * mx.sigmoid(alpha * v)
        if kind == "hardswish":
            return nn.hardswish(v) if pytorch_hardswish(alpha, beta) else v * mx.clip(alpha * v + beta, 0, 1)
        if kind == "soft_relu":
            return nn.softplus(v) if alpha == 1 else nn.softplus(alpha * v) / alpha
        simple = {"elu": lambda: nn.elu(v, alpha=alpha), "gelu_erf": lambda: nn.gelu(v),
                  "gelu_tanh": lambda: nn.gelu_approx(v), "logistic": lambda: mx.sigmoid(v),
                  "tanh": lambda: mx.tanh(v), "hardsigmoid": lambda: mx.clip(alpha * v + beta, 0, 1),
                  "mish": lambda: nn.mish(v), "linear": lambda: alpha * v + beta, "abs": lambda: mx.abs(v),
                  "square": lambda: mx.square(v), "sqrt": lambda: mx.sqrt(v), "exp": lambda: mx.exp(v),
                  "log": lambda: mx.log(v), "round": lambda: mx.round(v), "pow": lambda: alpha * mx.power(v, beta)}
        return simple[kind]()

    def apply(v, op, operand):
        kind = op["kind"]
        if operand is None:
            return eltwise(v, kind, op["alpha"], op["beta"])
        if kind == "sum":
            return v + (op["scale"] * (operand - op["zero_point"]) if op["scale"] != 1 or op["zero_point"] else operand)
        if kind == "batchnorm":  # nn.BatchNorm in inference, its running statistics set
            norm = nn.BatchNorm(v.shape[-1], eps=op["alpha"])
            norm.running_mean, norm.running_var, norm.weight, norm.bias = operand
            norm.eval()
            return norm(v)
        if kind == "prelu":
            return nn.prelu(v, operand)
        return binary[kind](v, operand)

    def forward(constants, x, w, *rest):
        b, learned = (rest[0], rest[1:]) if bias else (None, rest)
        operands = list(constants)
        for k, operand in zip(trained, learned):
            operands[k] = operand
        y = mx.conv_general(x, w, stride=list(stride), padding=(low, high), kernel_dilation=list(dilation),
                            groups=groups)
        y = y + b if b is not None else y  # MLX has no convolution with bias
        for op, operand in zip(chain, operands):
            y = apply(y, op, operand)
        return y

    def array(a):  # of `dtype` (mx.array of float64 is float32 unless told); bfloat16 enters as float32 (exact)
        if dtype == "bfloat16":
            return mx.array(a.astype(np.float32), dtype=mx.float32).astype(mx.bfloat16)
        return mx.array(np.ascontiguousarray(a), dtype=getattr(mx, dtype))

    def numpy(a):
        return np.array(a.astype(mx.float32) if a.dtype == mx.bfloat16 else a)

    def operand_array(op, operand):
        if op["kind"] == "batchnorm":  # rows mean, var, gamma, beta: each (O,), along the last (channel) axis
            return [array(row) for row in operand]
        return array(np.moveaxis(operand, 1, -1))

    def step(x, w, b, dy, operands=(), quantization=None):
        with mx.stream(mx.cpu):
            constants = [None if operand is None else operand_array(op, operand)
                         for op, operand in zip(chain, operands)]
            primals = [array(np.moveaxis(x, 1, -1)), array(np.moveaxis(w, 1, -1))] + ([] if b is None else [array(b)])
            primals += [constants[k] for k in trained]
            (y,), grads = mx.vjp(lambda *p: forward(constants, *p), primals, [array(np.moveaxis(dy, 1, -1))])
            mx.eval(y, *grads)
        y, dx, dw, *rest = [numpy(t) for t in (y, *grads)]
        db = rest.pop(0) if b is not None else None
        outputs = (np.moveaxis(y, -1, 1), np.moveaxis(dx, -1, 1), np.moveaxis(dw, -1, 1), db)
        if not trained:
            return outputs
        return (*outputs, {f"dpost{k}": np.moveaxis(g, -1, 1) for k, g in zip(trained, rest)})

    return step


@lru_cache(maxsize=256)
def _step(spec: ConvSpec) -> Callable[..., tuple]:
    MLX.load()
    return MlxBackend().program(spec).build()


# Each example is x (1, 2, 5, ...), w (2, 2, 2, ...) with one feature.
PROBES = (
    Probe("rank 3 with groups > 1", lambda spec: spec.rank == 3 and spec.groups > 1,
          tiny_spec(3, in_channels=2, out_channels=2, input_size=(5, 5, 5), groups=2)),
    Probe("float64 with stride > 1", lambda spec: spec.dtype == "float64" and max(spec.stride) > 1,
          tiny_spec(1, in_channels=2, out_channels=2, input_size=(5,), stride=2, dtype="float64")),
    Probe("float64 with dilation > 1", lambda spec: spec.dtype == "float64" and max(spec.dilation) > 1,
          tiny_spec(1, in_channels=2, out_channels=2, input_size=(5,), dilation=2, dtype="float64")),
    Probe("float64 with groups > 1", lambda spec: spec.dtype == "float64" and spec.groups > 1,
          tiny_spec(2, in_channels=2, out_channels=2, input_size=(5, 5), groups=2, dtype="float64")),
)


def _rank3_batchnorm(spec: ConvSpec) -> bool:
    return spec.rank == 3 and any(op.function == "batchnorm" for op in spec.post_ops)


def _batchnorm_probe() -> tuple[Limit, ...]:
    """nn.BatchNorm after a tiny 3-D convolution: MLX's own message when it refuses (it takes 2 to 4 dims)."""
    spec = tiny_spec(3, in_channels=2, out_channels=2, input_size=(3, 3, 3))
    batchnorm = (("kind", "batchnorm"), ("alpha", 1e-5), ("beta", 0.0), ("scale", 1.0), ("zero_point", 0), ("mask", 0))
    step = Program(mlx_conv, {**program_arguments(spec), "post_ops": (batchnorm,)}).build()
    ones = [np.ones(shape, np.float32) for shape in (spec.x_shape, spec.w_shape, (2,), spec.y_shape, (4, 2))]
    try:
        step(*ones[:4], operands=(ones[4],))
    except ValueError as error:
        return (Limit("rank 3 with batchnorm", f"MLX {installed_version('mlx')} (CPU): {error}", _rank3_batchnorm),)
    return ()


@cache
def _probed_limits() -> tuple[Limit, ...]:
    """The probes MLX refuses, with MLX's own message."""
    return probed_limits(PROBES, MlxBackend().run, (ValueError,),
                         lambda error: f"MLX {installed_version('mlx')} (CPU): {error}") + _batchnorm_probe()


class MlxBackend:
    """conv_general + vjp on MLX's CPU device, channels-last at MLX's side of the boundary."""

    name = "mlx"
    deviations = DEVIATIONS
    # Measured (2026-12, 2-core machine): `convparity run -b mlx -g smoke --dtype float32 --compile-cache off`,
    # median `seconds` per case of results.csv 0.0033; per_gflop assumed.
    cost = BackendCost(0.0033, 0.05)
    post_ops = POST_OPS

    def availability(self) -> str | None:
        return MLX.missing()

    def version(self) -> str:
        return f"{installed_version('mlx')} (CPU device)"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The probes MLX refuses, with its reasons; empty when mlx is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(mlx_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy), and the
        gradients of the chain's operands where it has differentiable ones."""
        if extras is None:
            return _step(spec)(x, w, b, dy)
        return _step(spec)(x, w, b, dy, operands=extras.operands)


@hookimpl
def convparity_register_backends(register):
    register(MlxBackend())
