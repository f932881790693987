"""Backend `tvm`: one Apache TVM Relax module per spec, compiled by `tvm.compile` for target "llvm" and run by the
Relax virtual machine on the CPU.

The program, `tvm_conv`, builds the module with `relax.BlockBuilder`: `relax.op.nn.conv{1,2,3}d` (or
`conv{1,2,3}d_transpose`, whose kernel layout IOW is the canonical (C, O/groups, *k)) with the spec's strides,
(befores..., afters...) padding (negative pads crop), dilation and groups, the bias as a reshape and an add,
then the post-op chain as Relax's own ops where it has one (`nn.relu`, `nn.leakyrelu`, `clip`, `nn.gelu`,
`nn.gelu_tanh`, `nn.silu`, `nn.softplus`, `nn.prelu`, `nn.batch_norm`, `sigmoid`, `tanh`, ...; elu, hardswish,
hardsigmoid, mish, linear and the binary kinds composed of elementwise ops), in the convolution's function, so the
default CPU pipeline's FuseOps/FuseTIR fuse the chain into the convolution's kernel; batch_norm is first
decomposed for inference (`relax.transform.DecomposeOpsForInference`, as TVM's own tuning pipeline does), else
TVM keeps it as a kernel of its own.

The module has two functions. forward(x, w, [b], operands...) -> y is the inference program, y's source.
main(x, w, [b], dy, operands...) -> (sum(y * dy), y) is what `relax.transform.Gradient` differentiates (a
scalar only; d/dy of that sum is dy, so the result is the vector-Jacobian product): its `main_adjoint` gives
the gradients of x, w, b and of the operands that have one. Where Gradient refuses the module (TVM 0.27
registers gradients for conv2d only among the convolutions, none for leakyrelu, clip, gelu, softplus, square,
round, prelu and others, and refuses bfloat16) the program computes y alone: its gradient rows read
`unsupported` (forward only), and the step's `gradient_refusal` holds TVM's words. Where Gradient does not
refuse, its conv2d gradient of a dilated convolution gives dx the wrong shape (a declared deviation).

TVM computes each op in the spec's dtype: float16 and bfloat16 convolutions and sums accumulate in that dtype
(declared as `accumulation`, the evidence in tests/plugins/test_tvm.py).

The spec's shapes are part of the program's arguments: building the step builds the module and compiles it
(`tvm.compile`, LLVM in this process, under a second on an idle core); the step only runs. Relax keeps no compile cache,
so the backend has no `cache_environment`; `compile_seconds` is the time building steps took in this process.
Workers get TVM's thread-pool size, `TVM_NUM_THREADS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache, lru_cache

import numpy as np

from convparity.plugin import (
    POST_OP_KINDS,
    BackendCost,
    BuildClock,
    ConvSpec,
    DeclaredLimits,
    Deviation,
    Extras,
    Framework,
    Limit,
    Outputs,
    Program,
    hookimpl,
    installed_version,
    program_arguments,
)

TVM = Framework("tvm", "tvm", distribution="apache-tvm")

# Relax's conv2d gradient (conv2d_grad in python/tvm/relax/op/_op_gradient.py) sizes dx's transposed convolution
# with the kernel's size where the dilated extent (k - 1) * d + 1 belongs, so its output_padding comes out
# (k - 1) * (d - 1) too large: Gradient refuses the module when that reaches the stride ("Conv2dTranspose
# expects the output padding less than the strides"; the gradient rows then read unsupported), and otherwise
# returns a dx of shape in + (k - 1) * (d - 1). dw and db are right. The same bug torch.nn.grad had
# (pytorch/pytorch#16012). Evidence: tests/plugins/test_tvm.py::test_dilated_conv2d_dx_has_the_wrong_shape.
DILATED_CONV2D_GRADIENT = ("relax.transform.Gradient's conv2d gradient ignores the dilation when it sizes dx: "
                           "dx has (k - 1) * (d - 1) extra positions per dim (conv2d_grad in relax/op/"
                           "_op_gradient.py uses the kernel size for the dilated extent)")
DEVIATIONS = (
    Deviation(condition="conv2d with dilation > 1 (its gradient)", tensors=("dx",), reason=DILATED_CONV2D_GRADIENT,
              applies=lambda spec: spec.rank == 2 and not spec.transposed and any(d > 1 for d in spec.dilation),
              upstream="not reported upstream yet (found by convparity); the same bug as pytorch/pytorch#16012 in "
                       "torch.nn.grad", versions=">=0.27"),
)


def tvm_conv(*, stride, padding, dilation, groups, dtype, bias, x_shape, w_shape, output_padding=None, post_ops=(),
             target="llvm"):
    """A Relax module of the spec (convolution, bias, post-op chain) compiled by tvm.compile for `target` and run by
    relax.VirtualMachine on the CPU; the gradients from relax.transform.Gradient where TVM derives them.

    step(x, w, b, dy, operands=(), quantization=None) -> (y, dx, dw, db[, {"dpost{k}": gradient}]), the gradients
    None where Gradient refuses the module (step.gradient_refusal says why). x_shape and w_shape fix the module's
    types: building the step compiles it.
    """
    import numpy as np
    import tvm
    from tvm import relax

    rank = len(stride)
    transposed = output_padding is not None
    chain = [dict(step) for step in post_ops]
    out_channels = w_shape[1] * groups if transposed else w_shape[0]
    extents = [(k - 1) * d + 1 for k, d in zip(w_shape[2:], dilation)]
    if transposed:
        out_size = [(i - 1) * s - low - high + e + extra for i, s, (low, high), e, extra
                    in zip(x_shape[2:], stride, padding, extents, output_padding)]
    else:
        out_size = [(i + low + high - e) // s + 1
                    for i, (low, high), e, s in zip(x_shape[2:], padding, extents, stride)]
    y_shape = (x_shape[0], out_channels, *out_size)
    binary = {"binary_add": relax.op.add, "binary_sub": relax.op.subtract, "binary_mul": relax.op.multiply,
              "binary_div": relax.op.divide, "binary_max": relax.op.maximum, "binary_min": relax.op.minimum}
    differentiable_operands = ("sum", "prelu", *binary)

    def operand_shapes(step):
        """The shapes of a step's parameters: its operand, batchnorm's four rows, none for an eltwise step."""
        kind, mask = step["kind"], step["mask"]
        if kind == "sum":
            return [y_shape]
        if kind == "batchnorm":
            return [(out_channels,)] * 4
        if kind in binary or kind == "prelu":
            return [tuple(n if mask >> dim & 1 else 1 for dim, n in enumerate(y_shape))]
        return []

    def build(differentiate):
        builder = relax.BlockBuilder()

        def tensor(name, shape):
            return relax.Var(name, relax.TensorType(tuple(shape), dtype))

        def constant(number):
            if dtype == "bfloat16":  # relax.const reads bfloat16 from a NumPy array of ml_dtypes' type only
                import ml_dtypes

                return relax.const(np.array(number, dtype=ml_dtypes.bfloat16), dtype)
            return relax.const(number, dtype)

        def emit(expression):  # one binding per call: Gradient needs the module in this normal form
            return builder.emit(expression)

        def scaled(value, number):
            return value if number == 1 else emit(relax.op.multiply(value, constant(number)))

        def plus(value, number):
            return value if number == 0 else emit(relax.op.add(value, constant(number)))

        def eltwise(kind, v, a, b):
            if kind == "relu":
                return emit(relax.op.nn.relu(v)) if a == 0 else emit(relax.op.nn.leakyrelu(v, a))
            if kind == "clip":
                return emit(relax.op.clip(v, a, b))
            if kind == "elu":
                negative = scaled(emit(relax.op.subtract(emit(relax.op.exp(v)), constant(1.0))), a)
                return emit(relax.op.where(emit(relax.op.greater(v, constant(0.0))), v, negative))
            if kind == "gelu_erf":
                return emit(relax.op.nn.gelu(v))
            if kind == "gelu_tanh":
                return emit(relax.op.nn.gelu_tanh(v))
            if kind == "swish":
                return emit(relax.op.nn.silu(v)) if a == 1 else \
                    emit(relax.op.multiply(v, emit(relax.op.sigmoid(scaled(v, a)))))
            if kind == "logistic":
                return emit(relax.op.sigmoid(v))
            if kind == "tanh":
                return emit(relax.op.tanh(v))
            if kind in ("hardsigmoid", "hardswish"):
                gate = emit(relax.op.clip(plus(scaled(v, a), b), 0.0, 1.0))
                return gate if kind == "hardsigmoid" else emit(relax.op.multiply(v, gate))
            if kind == "mish":
                return emit(relax.op.multiply(v, emit(relax.op.tanh(emit(relax.op.nn.softplus(v))))))
            if kind == "soft_relu":
                return emit(relax.op.nn.softplus(v, beta=a))
            if kind == "linear":
                return plus(scaled(v, a), b)
            if kind == "pow":
                return scaled(emit(relax.op.power(v, constant(b))), a)
            unary = {"abs": relax.op.abs, "square": relax.op.square, "sqrt": relax.op.sqrt, "exp": relax.op.exp,
                     "log": relax.op.log, "round": relax.op.round}
            return emit(unary[kind](v))

        def apply(step, v, parameters):
            kind = step["kind"]
            if kind == "sum":
                residual = parameters[0]
                if step["zero_point"]:
                    residual = emit(relax.op.subtract(residual, constant(step["zero_point"])))
                return emit(relax.op.add(v, scaled(residual, step["scale"])))
            if kind in binary:
                return emit(binary[kind](v, parameters[0]))
            if kind == "prelu":
                slopes = parameters[0]
                if step["mask"] in (0, 2):  # one slope, or one per channel: nn.prelu's alpha along axis 1
                    slopes = emit(relax.op.broadcast_to(emit(relax.op.reshape(slopes, (-1,))), (out_channels,)))
                    return emit(relax.op.nn.prelu(v, slopes, axis=1))
                negative = emit(relax.op.multiply(v, slopes))
                return emit(relax.op.where(emit(relax.op.greater(v, constant(0.0))), v, negative))
            if kind == "batchnorm":
                mean, var, gamma, beta = parameters
                normalized = emit(relax.op.nn.batch_norm(v, gamma, beta, mean, var, axis=1, epsilon=step["alpha"],
                                                         training=False))
                return emit(relax.TupleGetItem(normalized, 0))
            return eltwise(kind, v, step["alpha"], step["beta"])

        def define(name, backward):
            """forward(x, w, [b], operands...) -> y; main(x, w, [b], dy, operands...) -> (sum(y * dy), y), the
            function Gradient differentiates. Returns the parameters Gradient differentiates main by."""
            x = tensor("x", x_shape)
            w = tensor("w", w_shape)
            b = tensor("b", (out_channels,)) if bias else None
            dy = tensor("dy", y_shape) if backward else None
            step_parameters = [[tensor(f"post{k}_{j}", shape) for j, shape in enumerate(operand_shapes(step))]
                               for k, step in enumerate(chain)]
            parameters = [x, w] + ([b] if bias else []) + ([dy] if backward else []) + \
                [p for ps in step_parameters for p in ps]
            with builder.function(name, parameters):
                with builder.dataflow():
                    pads = tuple(low for low, _ in padding) + tuple(high for _, high in padding)
                    if transposed:
                        convolve = (relax.op.nn.conv1d_transpose, relax.op.nn.conv2d_transpose,
                                    relax.op.nn.conv3d_transpose)[rank - 1]
                        v = emit(convolve(x, w, strides=stride, padding=pads, output_padding=output_padding,
                                          dilation=dilation, groups=groups))
                    else:
                        convolve = (relax.op.nn.conv1d, relax.op.nn.conv2d, relax.op.nn.conv3d)[rank - 1]
                        v = emit(convolve(x, w, strides=stride, padding=pads, dilation=dilation, groups=groups))
                    if bias:
                        v = emit(relax.op.add(v, emit(relax.op.reshape(b, (1, out_channels) + (1,) * rank))))
                    for step, ps in zip(chain, step_parameters):
                        v = apply(step, v, ps)
                    if backward:
                        loss = builder.emit_output(relax.op.sum(emit(relax.op.multiply(v, dy))))
                        y = builder.emit_output(v)
                        output = relax.Tuple([loss, y])  # Gradient's target: the first element, a scalar
                    else:
                        output = builder.emit_output(v)
                builder.emit_func_output(output)
            return [x, w] + ([b] if bias else []) + [ps[0] for step, ps in zip(chain, step_parameters)
                                                      if step["kind"] in differentiable_operands]

        define("forward", backward=False)
        if not differentiate:
            return relax.transform.DecomposeOpsForInference()(builder.get())
        wanted = define("main", backward=True)
        module = relax.transform.DecomposeOpsForInference()(builder.get())
        return relax.transform.Gradient("main", require_grads=wanted, target_index=0)(module)

    with_gradients = [k for k, step in enumerate(chain) if step["kind"] in differentiable_operands]
    refusal = None
    try:
        module = build(differentiate=True)
    except (tvm.error.InternalError, ValueError) as error:  # what Gradient says when it cannot differentiate
        refusal = " ".join(f"{type(error).__name__}: {error}".split())
        module = build(differentiate=False)
    executable = tvm.compile(module, target=tvm.target.Target(target))
    device = tvm.cpu()
    machine = relax.VirtualMachine(executable, device)

    def step(x, w, b, dy, operands=(), quantization=None):
        parameters = []
        for kind_step, operand in zip(chain, operands):
            if kind_step["kind"] == "batchnorm":
                parameters += list(operand)  # rows mean, var, gamma, beta
            elif operand is not None:
                parameters.append(operand)
        head = [tvm.runtime.tensor(np.ascontiguousarray(a), device) for a in [x, w] + ([b] if bias else [])]
        tail = [tvm.runtime.tensor(np.ascontiguousarray(a), device) for a in parameters]
        y = machine["forward"](*head, *tail).numpy()
        if refusal is not None:
            return y, None, None, None
        _, gradients = machine["main_adjoint"](*head, tvm.runtime.tensor(np.ascontiguousarray(dy), device), *tail)
        gradients = [g.numpy() for g in gradients]
        dx, dw = gradients[:2]
        db = gradients[2] if bias else None
        if not with_gradients:
            return y, dx, dw, db
        return y, dx, dw, db, {f"dpost{k}": g for k, g in zip(with_gradients, gradients[2 + bool(bias):])}

    step.gradient_refusal = refusal
    step.module = module
    return step


COMPILE_CLOCK = BuildClock()  # building the Relax module, Gradient and tvm.compile


@lru_cache(maxsize=64)
def built_step(spec: ConvSpec) -> Callable[..., tuple]:
    """The spec's step, compiled once per process (the last 64 kept)."""
    return COMPILE_CLOCK.timed(TvmBackend().program(spec).build)


def output_padding_beyond_stride(spec: ConvSpec) -> bool:
    return spec.transposed and any(extra >= s for extra, s in zip(spec.output_padding, spec.stride))


def bfloat16_prelu(spec: ConvSpec) -> bool:
    """A bfloat16 spec with a prelu the program gives nn.prelu (one slope, or one per channel)."""
    return spec.dtype == "bfloat16" and any(op.function == "prelu" and op.mask in (0, 2) for op in spec.post_ops)


def _tiny(dtype: str = "float32", post_ops: tuple = (), **geometry) -> dict:
    """The arguments of tvm_conv for a 1-channel 1-D convolution of x (1, 1, 4) and w (1, 1, 3), changed by
    `geometry`."""
    arguments = dict(stride=(1,), padding=((0, 0),), dilation=(1,), groups=1, dtype=dtype, bias=False,
                     x_shape=(1, 1, 4), w_shape=(1, 1, 3), post_ops=post_ops)
    return {**arguments, **geometry}


# One tiny module per feature Relax may refuse to build: (condition, the specs it covers, tvm_conv's arguments).
PROBES = (
    # PyTorch's rule allows output_padding below the stride or the dilation; Relax's conv*_transpose below the stride.
    ("transposed, output_padding at or above the stride", output_padding_beyond_stride,
     _tiny(dilation=(3,), output_padding=(2,))),
    ("bfloat16, a prelu post-op (one slope or one per channel: nn.prelu)", bfloat16_prelu,
     _tiny("bfloat16", ((("kind", "prelu"), ("alpha", 0.0), ("beta", 0.0), ("scale", 1.0), ("zero_point", 0),
                         ("mask", 2)),))),
)


@cache
def _probed_limits() -> tuple[Limit, ...]:
    """A Limit, in Relax's words, for each probe whose module TVM refuses to build (once per process)."""
    tvm = TVM.load()
    limits = []
    for condition, applies, arguments in PROBES:
        try:
            tvm_conv(**arguments)
        except (tvm.error.InternalError, ValueError, TypeError) as error:
            limits.append(Limit(condition, " ".join(str(error).split()), applies))
    return tuple(limits)


class TvmBackend(DeclaredLimits):
    """Apache TVM Relax, target llvm, on the CPU."""

    name = "tvm"
    deviations = DEVIATIONS
    post_ops = POST_OP_KINDS
    # Relax computes a float16 or bfloat16 convolution and sum in that dtype (its out_dtype left unset, as the
    # frontends leave it). Evidence: tests/plugins/test_tvm.py::test_narrow_dtypes_accumulate_in_themselves.
    accumulation = {"float16": "float16", "bfloat16": "bfloat16"}
    # Measured (2026-12, 2-core machine shared with other jobs, load average 12-18): `convparity run -b iree -b tvm
    # -g smoke -g epilogues --dtype float32 -j 2`, the median `seconds` per case of results.csv: 2.4 s over 138
    # cases (4.1 s on the smoke grid alone), nearly all of it building and compiling (run.json: 461 of 463 s).
    # per_gflop: the default "llvm" pipeline leaves the kernels unscheduled, about 5 GFLOP/s in float32 (float16 is
    # emulated and far slower).
    cost = BackendCost(2.4, 0.3)

    @property
    def limits(self) -> tuple[Limit, ...]:
        """What Relax refuses to build, in its own words (probed once per process); none when TVM is missing."""
        return () if self.availability() else _probed_limits()

    def availability(self) -> str | None:
        return TVM.missing()

    def version(self) -> str:
        return f"{installed_version('apache-tvm')} (Relax, target llvm, CPU)"

    def thread_environment(self, threads: int) -> Mapping[str, str]:
        """TVM's runtime thread pool takes TVM_NUM_THREADS (default: the cores)."""
        return {"TVM_NUM_THREADS": str(threads)}

    def compile_seconds(self) -> float:
        return COMPILE_CLOCK.seconds

    def program(self, spec: ConvSpec) -> Program:
        return Program(tvm_conv, program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray,
            extras: Extras | None = None) -> Outputs:
        step = built_step(spec)
        if extras is None:
            return step(x, w, b, dy)
        return step(x, w, b, dy, operands=extras.operands)


@hookimpl
def convparity_register_backends(register):
    register(TvmBackend())
