"""Backend `paddle`: PaddlePaddle dygraph paddle.nn.functional.conv{1,2,3}d and paddle.grad, on the CPU.

Layouts are Paddle's channels-first ones ("NCL", "NCHW", "NCDHW"), the canonical layouts, so nothing is
transposed. Padding goes in Paddle's per-dim pair form [[0, 0], [0, 0], [before, after], ...], which takes
asymmetric pads; Paddle refuses negative ones ("Invalid padding, all value should be larger than or equal
to 0"), so a crop is a slice of x before the convolution and autograd carries dx through it. Tensors are
placed on the CPU explicitly, so no global device setting is touched. The whole of it is `paddle_conv`
(the backend's program).

A post-op chain (every kind convparity has) follows the convolution as Paddle's own ops: the activations
of paddle.nn.functional (relu, leaky_relu, relu6, elu, gelu with approximate=False/True, silu, sigmoid,
tanh, hardswish where the parameters are PyTorch's in the working precision, hardsigmoid with slope and
offset, mish, softplus with beta), batch_norm in inference with the running statistics, prelu (one slope or
one per channel; other masks as paddle.where), paddle.scale, clip, pow, round (half to even) and the
broadcasting elementwise ops. paddle.grad differentiates all of it, the sum's residual, binary src1 and prelu
slopes included. Dygraph runs each op as its own kernel: nothing is fused (paddle.jit.to_static gives the same
bits for conv + batch_norm + relu; conv_bn fusion is a pass of Paddle Inference, which has no gradients).
In float64 the kernels whose parameter is a C++ float attribute compute with it rounded to float32 (DEVIATIONS).

Limits are probes: Paddle's CPU convolution kernels are registered for float64 and float32 only; for
each other dtype a tiny convolution is attempted and Paddle's own NotFound message becomes the reason.
paddle is imported only when first needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache, lru_cache
from types import ModuleType

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
    Program,
    dtype_probes,
    first_limit,
    hookimpl,
    probed_limits,
    program_arguments,
)

PADDLE = Framework("paddle", "paddle", distribution="paddlepaddle")
# The post-op kinds paddle_conv computes after the convolution, each with paddle.nn.functional (or paddle's
# elementwise ops, broadcasting): every kind convparity has.
# Paddle's kernels take these parameters as C++ `float` attributes (paddle/phi/api/include/api.h: elu(float alpha),
# hardsigmoid(float slope, float offset), batch_norm(..., float epsilon, ...); pow's exponent Scalar arrives as a
# float too): in float64 they compute with the parameter rounded to float32.
FLOAT32_PARAMETERS = {"elu": ("alpha",), "hardsigmoid": ("alpha", "beta"), "hardswish": ("alpha", "beta"),
                      "batchnorm": ("alpha",), "pow": ("beta",)}


def _float32_parameter(spec: ConvSpec) -> bool:
    """A post-op parameter that Paddle rounds to float32 (FLOAT32_PARAMETERS) and float32 cannot hold exactly."""
    return any(float(np.float32(getattr(op, name))) != getattr(op, name)
               for op in spec.post_ops for name in FLOAT32_PARAMETERS.get(op.function, ()))


FLOAT32_PARAMETER_REASON = (
    "the kernel computes with the parameter rounded to float32 (its C++ attribute is `float`). Repro: "
    "import paddle; F = paddle.nn.functional; x = paddle.to_tensor([1.0], dtype='float64'); "
    "print(F.hardsigmoid(x, slope=0.16666667, offset=0.5).item())  # 0.6666666716337204, not 0.66666667; "
    "F.batch_norm(x.reshape([1, 1]), paddle.zeros([1], 'float64'), paddle.ones([1], 'float64'), training=False, "
    "epsilon=1e-5) gives 1/sqrt(1 + float32(1e-5))")
FLOAT32_PARAMETER_CONDITION = ("float64, a post-op parameter Paddle takes as a float32 attribute (elu alpha, "
                               "hardsigmoid and hardswish slope and offset, batchnorm eps, pow exponent) that float32 "
                               "cannot hold exactly")
DEVIATIONS = (
    Deviation(FLOAT32_PARAMETER_CONDITION, FLOAT32_PARAMETER_REASON, upstream="not reported yet",
              applies=_float32_parameter, dtypes=("float64",), tensors=("y", "dx", "dw", "db")),
    # The same error reaches the gradients of later operands that depend on the value (prelu's slopes, a binary
    # mul's src1), not those that do not (a sum's residual): not every operand gradient shows it.
    Deviation(FLOAT32_PARAMETER_CONDITION + ", before an operand's gradient",
              FLOAT32_PARAMETER_REASON + "; the operands' gradients after that step carry it where they depend on "
              "the value", upstream="not reported yet", applies=_float32_parameter, dtypes=("float64",), strict=False),
)

POST_OPS = ("relu", "clip", "elu", "gelu_erf", "gelu_tanh", "swish", "logistic", "tanh", "hardswish", "hardsigmoid",
            "mish", "soft_relu", "linear", "abs", "square", "sqrt", "exp", "log", "round", "pow", "sum", "binary_add",
            "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min", "prelu", "batchnorm")


def paddle_conv(*, stride, padding, dilation, groups, dtype, bias, post_ops=()):
    """paddle.nn.functional.conv{1,2,3}d on CPU tensors, channels-first, then the post-op chain as Paddle's own
    functional ops, and paddle.grad through all of it; step(x, w, b, dy, operands=(), quantization=None) ->
    (y, dx, dw, db[, {"dpost{k}": gradient}]). A negative pad (a crop) is a slice of x before the convolution:
    Paddle's padding must be >= 0."""
    import numpy as np
    import paddle

    functional = paddle.nn.functional
    rank = len(stride)
    conv = (functional.conv1d, functional.conv2d, functional.conv3d)[rank - 1]
    data_format = ("NCL", "NCHW", "NCDHW")[rank - 1]
    crops = any(min(pair) < 0 for pair in padding)
    crop = (slice(None), slice(None), *(slice(max(-before, 0), after if after < 0 else None)
                                        for before, after in padding))
    pads = [[0, 0], [0, 0], *([max(before, 0), max(after, 0)] for before, after in padding)]
    chain = [dict(step) for step in post_ops]
    differentiable = ("sum", "binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min",
                      "prelu")
    narrow = np.float32 if dtype in ("float32", "float16", "bfloat16") else np.float64

    def pytorch_hardswish(alpha, beta):  # F.hardswish is x * relu6(x + 3) / 6: alpha 1/6 in the working precision
        return beta == 0.5 and narrow(alpha) == narrow(1 / 6)

    binary = {"binary_add": paddle.add, "binary_sub": paddle.subtract, "binary_mul": paddle.multiply,
              "binary_div": paddle.divide, "binary_max": paddle.maximum, "binary_min": paddle.minimum}

    def tensor(array, gradient=True):  # a CPU tensor of `dtype`; bfloat16 enters as float32 (exact)
        source = np.ascontiguousarray(array.astype(np.float32) if dtype == "bfloat16" else array)
        return paddle.to_tensor(source, dtype=dtype, place=paddle.CPUPlace(), stop_gradient=not gradient)

    def numpy(t):
        return (t.astype("float32") if t.dtype == paddle.bfloat16 else t).numpy()

    def eltwise(v, kind, alpha, beta):
        if kind == "relu":
            return functional.relu(v) if alpha == 0 else functional.leaky_relu(v, negative_slope=alpha)
        if kind == "clip":
            return functional.relu6(v) if (alpha, beta) == (0, 6) else paddle.clip(v, min=alpha, max=beta)
        if kind == "swish":
            return functional.silu(v) if alpha == 1 else v * functional.sigmoid(paddle.scale(v, scale=alpha))
        if kind == "hardswish":
            return functional.hardswish(v) if pytorch_hardswish(alpha, beta) else v * functional.hardsigmoid(
                v, slope=alpha, offset=beta)
        simple = {"elu": lambda: functional.elu(v, alpha=alpha),
                  "gelu_erf": lambda: functional.gelu(v, approximate=False),
                  "gelu_tanh": lambda: functional.gelu(v, approximate=True),
                  "logistic": lambda: functional.sigmoid(v), "tanh": lambda: functional.tanh(v),
                  "hardsigmoid": lambda: functional.hardsigmoid(v, slope=alpha, offset=beta),
                  "mish": lambda: functional.mish(v), "soft_relu": lambda: functional.softplus(v, beta=alpha),
                  "linear": lambda: paddle.scale(v, scale=alpha, bias=beta), "abs": lambda: paddle.abs(v),
                  "square": lambda: paddle.square(v), "sqrt": lambda: paddle.sqrt(v), "exp": lambda: paddle.exp(v),
                  "log": lambda: paddle.log(v), "round": lambda: paddle.round(v),
                  "pow": lambda: paddle.scale(paddle.pow(v, beta), scale=alpha)}
        return simple[kind]()

    def apply(v, op, operand):
        kind = op["kind"]
        if operand is None:
            return eltwise(v, kind, op["alpha"], op["beta"])
        if kind == "sum":
            scaled = op["scale"] != 1 or op["zero_point"] != 0
            return v + (paddle.scale(operand, scale=op["scale"], bias=-op["scale"] * op["zero_point"]) if scaled
                        else operand)
        if kind == "batchnorm":  # inference: the running statistics, no gradient
            mean, var, gamma, beta = operand
            return functional.batch_norm(v, mean, var, gamma, beta, training=False, epsilon=op["alpha"],
                                         data_format=data_format)
        if kind == "prelu":  # Paddle's prelu takes one slope ([1]) or one per channel ([C])
            if operand.ndim == 1:
                return functional.prelu(v, operand, data_format=data_format)
            return paddle.where(v > 0, v, v * operand)
        return binary[kind](v, operand)

    def operand_tensor(op, operand):
        if op["kind"] == "batchnorm":
            return [tensor(row, gradient=False) for row in operand]
        mask = op["mask"]
        if op["kind"] == "prelu" and (mask == 0 or (mask == 2 and operand.shape[1] > 1)):
            operand = operand.reshape(-1)  # F.prelu's weight: [1] for one slope, [C] for one per channel
        return tensor(operand, gradient=op["kind"] in differentiable)

    def step(x, w, b, dy, operands=(), quantization=None):
        xt, wt, dyt = tensor(x), tensor(w), tensor(dy)
        bt = None if b is None else tensor(b)
        ot = [None if operand is None else operand_tensor(op, operand) for op, operand in zip(chain, operands)]
        y = conv(xt[crop] if crops else xt, wt, bt, stride=list(stride), padding=pads, dilation=list(dilation),
                 groups=groups, data_format=data_format)
        for op, operand in zip(chain, ot):
            y = apply(y, op, operand)
        trained = [k for k, op in enumerate(chain) if op["kind"] in differentiable]
        leaves = [t for t in (xt, wt, bt) if t is not None] + [ot[k] for k in trained]
        y, dx, dw, *rest = [numpy(t) for t in (y, *paddle.grad([y], leaves, grad_outputs=[dyt]))]
        db = rest.pop(0) if bt is not None else None
        if not trained:
            return y, dx, dw, db
        return y, dx, dw, db, {f"dpost{k}": g.reshape(np.shape(operands[k])) for k, g in zip(trained, rest)}

    return step


def _paddle() -> ModuleType:
    with warnings.catch_warnings():
        # paddle.utils.cpp_extension warns at import that ccache is missing; nothing here compiles C++.
        warnings.filterwarnings("ignore", message="No ccache found")
        return PADDLE.load()


@lru_cache(maxsize=256)
def _step(spec: ConvSpec) -> Callable[..., tuple]:
    _paddle()
    return PaddleBackend().program(spec).build()


# A tiny convolution per dtype: x (1, 2, 5, 5), w (2, 2, 3, 3).
PROBES = dtype_probes(2, in_channels=2, out_channels=2, input_size=(5, 5), kernel_size=(3, 3))


@cache
def _probed_limits() -> tuple[Limit, ...]:
    """One Limit per dtype Paddle has no CPU kernel for, with the first line of Paddle's message."""
    paddle = _paddle()
    return probed_limits(PROBES, PaddleBackend().run, (RuntimeError, NotImplementedError),
                         lambda error: f"Paddle {paddle.__version__} (CPU): {str(error).strip().splitlines()[0]}")


class PaddleBackend:
    """Dygraph convolution with autograd on the CPU, channels-first."""

    name = "paddle"
    # Measured (2026-12, 2-core machine): `convparity run -b paddle -g smoke --dtype float32 --compile-cache off`,
    # median `seconds` per case of results.csv 0.0008 (eager dispatch); per_gflop assumed.
    cost = BackendCost(0.0008, 0.05)
    post_ops = POST_OPS
    deviations = DEVIATIONS

    def availability(self) -> str | None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No ccache found")  # as in _paddle
            return PADDLE.missing()

    def version(self) -> str:
        paddle = _paddle()
        return f"{paddle.__version__} (commit {paddle.version.commit[:10]}, CPU)"

    @property
    def limits(self) -> tuple[Limit, ...]:
        """One Limit per dtype Paddle has no CPU kernel for; empty when paddle is not installed."""
        return (CONVOLUTION_ONLY,) + (() if self.availability() else _probed_limits())

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def program(self, spec: ConvSpec) -> Program:
        return Program(paddle_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy), and the
        gradients of the chain's operands where it has differentiable ones."""
        if extras is None:
            return _step(spec)(x, w, b, dy)
        return _step(spec)(x, w, b, dy, operands=extras.operands)


@hookimpl
def convparity_register_backends(register):
    register(PaddleBackend())
