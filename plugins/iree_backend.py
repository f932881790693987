"""Backend `iree`: one StableHLO module per spec, compiled by IREE for its llvm-cpu target and run by its runtime.

The program, `iree_conv`, writes the spec as a StableHLO module of two functions, compiles it with
`iree.compiler.compile_str` (input type stablehlo, target backend llvm-cpu, the host CPU) and runs it with
`iree.runtime` on the local-task driver:

- forward(x, w, [b], operands...) -> y: `stablehlo.convolution` with the spec's stride, (before, after) pads
  (negative ones crop), rhs dilation and feature groups; a transposed convolution is the lhs-dilated
  convolution with the kernel flipped and its channel axes swapped group by group (what
  `jax.lax.conv_transpose` lowers to); the bias a `broadcast_in_dim` and an `add`; then the post-op chain,
  each kind as StableHLO's own ops (`stablehlo.logistic`, `chlo.erf`, `stablehlo.batch_norm_inference`,
  `stablehlo.round_nearest_even`, ...). This is the inference program, and IREE fuses the bias and the whole
  chain into the convolution's dispatch (tests/plugins/test_iree.py checks it).
- backward(x, w, [b], dy, operands...) -> (dx, dw, [db], operand gradients...): IREE has no automatic
  differentiation, so the backward pass is written with the same ops, as `jax.vjp` writes it: the forward
  pass again, dy pulled back through the chain (each kind's derivative, with the reference's one-sided values
  at kinks), then dx = the lhs-dilated convolution with the flipped, group-swapped kernel, dw = a convolution
  with `batch_group_count = groups` (window stride = dilation, rhs dilation = stride), db = a
  `stablehlo.reduce`; a sum's, binary's or prelu's operand gradient is the pulled-back gradient times the
  step's derivative with respect to the operand, summed over the dims the operand is broadcast along.

Every op computes in the spec's dtype, as a StableHLO program in that dtype does; float64 stays float64 only
with `--iree-input-demote-f64-to-f32=false` (IREE's input pipeline demotes f64 to f32 by default, and the
runtime then refuses float64 inputs). IREE's llvm-cpu code accumulates a float16 or bfloat16 convolution and
reduction in that dtype (declared as `accumulation`). What iree-compile refuses is probed: a float16 batchnorm
whose eps underflows float16.

The spec's shapes are part of the program's arguments: building the step compiles (iree-compile, a
subprocess, about a second on an idle core); the step then only runs. IREE keeps no compile cache, so the
backend has no `cache_environment`; `compile_seconds` is the time building steps took in this process, which is
the compiler's time. Its runtime threads are set for a worker by `IREE_PY_RUNTIME_FLAGS`
(`--task_topology_group_count`), read when iree.runtime is imported.
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

IREE_COMPILER = Framework("iree.compiler", "iree", distribution="iree-base-compiler")
IREE_RUNTIME = Framework("iree.runtime", "iree", distribution="iree-base-runtime")
# The flags every program is compiled with (iree_conv's own defaults; listed for the version line and the tests).
COMPILE_FLAGS = ("--iree-llvmcpu-target-cpu=host", "--iree-input-demote-f64-to-f32=false")

# Verified with IREE 3.13 (llvm-cpu): every rank, stride, dilation, group count, negative pad, transposed
# convolution (output_padding at or above the stride included) and the four float dtypes compile and run,
# forward and backward (tests/plugins/test_iree.py runs the extra and transposed specs; the contract suite the
# smoke grid), and every post-op kind. What iree-compile refuses is probed (`probed_limits`).


def tiny_half_epsilon(spec: ConvSpec) -> bool:
    """A float16 spec with a batchnorm whose eps float16 holds only as an inexact subnormal (below 2**-14)."""
    return spec.dtype == "float16" and any(
        op.function == "batchnorm" and abs(op.alpha) < 2.0**-14 and float(np.float16(op.alpha)) != op.alpha
        for op in spec.post_ops)


def compiler_says(error: Exception) -> str:
    """iree-compile's diagnostics in one line: each distinct warning and error, without the op's text."""
    said: list[str] = []
    for line in str(error).splitlines():
        for marker in ("error: ", "warning: "):
            if marker in line:
                entry = marker + line.split(marker, 1)[1].split(": %", 1)[0].strip()
                if entry not in said:
                    said.append(entry)
    return "iree-compile: " + ("; ".join(said) if said else " ".join(str(error).split()))


def double_tanh(spec: ConvSpec) -> bool:
    """A float64 spec whose chain computes tanh (tanh, gelu_tanh, mish: stablehlo.tanh, forward or backward)."""
    return spec.dtype == "float64" and any(op.function in TANH_KINDS for op in spec.post_ops)


TANH_KINDS = ("tanh", "gelu_tanh", "mish")


def _tiny(dtype: str, kind: str, alpha: float = 0.0) -> dict:
    """The arguments of iree_conv for a 1-channel, 2-wide convolution in `dtype` followed by one post-op."""
    return dict(stride=(1,), padding=((0, 0),), dilation=(1,), groups=1, dtype=dtype, bias=False, x_shape=(1, 1, 2),
                w_shape=(1, 1, 1), post_ops=((("kind", kind), ("alpha", alpha), ("beta", 0.0), ("scale", 1.0),
                                              ("zero_point", 0), ("mask", 0)),))


# One tiny program per feature iree-compile may refuse: (condition, the specs it covers, the program's arguments).
PROBES = (
    ("float16, a batchnorm whose eps underflows float16 (an inexact subnormal, e.g. 1e-5)", tiny_half_epsilon,
     _tiny("float16", "batchnorm", 1e-5)),
    # llvm-cpu lowers f64 tanh to a libm call its embedded linker has no definition for (f32 has an approximation);
    # the same kind of failure as iree-org/iree#20165 (math.log10, math.trunc), not reported for tanh yet.
    ("float64, a tanh, gelu_tanh or mish post-op", double_tanh, _tiny("float64", "tanh")),
)


@cache
def probed_limits() -> tuple[Limit, ...]:
    """A Limit, in iree-compile's words, for each probe it refuses to compile (once per process)."""
    refused = IREE_COMPILER.load().CompilerToolError
    limits = []
    for condition, applies, arguments in PROBES:
        try:
            iree_conv(**arguments)
        except refused as error:
            limits.append(Limit(condition, compiler_says(error), applies))
    return tuple(limits)


def iree_conv(*, stride, padding, dilation, groups, dtype, bias, x_shape, w_shape, output_padding=None, post_ops=(),
              flags=("--iree-llvmcpu-target-cpu=host", "--iree-input-demote-f64-to-f32=false")):
    """One StableHLO function for the spec (convolution, bias, post-op chain, and their gradients by hand in the
    same ops), compiled by iree.compiler for llvm-cpu and loaded into iree.runtime (local-task).

    step(x, w, b, dy, operands=(), quantization=None) -> (y, dx, dw, db[, {"dpost{k}": gradient}]); arrays of
    the spec's dtype in and out (bfloat16 as ml_dtypes.bfloat16). x_shape and w_shape fix the program's types:
    building the step compiles it.
    """
    import math

    import iree.compiler
    import iree.runtime
    import numpy as np

    element = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}[dtype]
    rank = len(stride)
    transposed = output_padding is not None
    chain = [dict(step) for step in post_ops]
    lines = []
    parameters = []

    def type_of(value):
        name, shape, kind = value
        return "tensor<" + "".join(f"{size}x" for size in shape) + kind + ">"

    def emit(text, shape, kind=element):
        value = (f"%v{len(lines)}", tuple(shape), kind)
        lines.append(f"    {value[0]} = {text}")
        return value

    def parameter(shape):
        value = (f"%arg{len(parameters)}", tuple(shape), element)
        parameters.append(value)
        return value

    def op(name, *operands, shape=None, kind=None, attributes=""):
        """A StableHLO (or CHLO) op in generic form; the result has the first operand's shape unless given."""
        result = (None, operands[0][1] if shape is None else tuple(shape), kind or operands[0][2])
        text = (f'"{name}"({", ".join(o[0] for o in operands)}){attributes} : '
                f'({", ".join(type_of(o) for o in operands)}) -> {type_of(result)}')
        return emit(text, result[1], result[2])

    def ints(values):
        return "array<i64" + (": " + ", ".join(str(int(v)) for v in values) if len(values) else "") + ">"

    def constant(number, shape):
        literal = f"{float(number):.17e}"
        return emit(f'"stablehlo.constant"() {{value = dense<{literal}> : {type_of((None, shape, element))}}} : '
                    f"() -> {type_of((None, shape, element))}", shape)

    def like(number, value):
        return constant(number, value[1])

    def add(a, b):
        return op("stablehlo.add", a, b)

    def subtract(a, b):
        return op("stablehlo.subtract", a, b)

    def multiply(a, b):
        return op("stablehlo.multiply", a, b)

    def divide(a, b):
        return op("stablehlo.divide", a, b)

    def scaled(value, number):
        return value if number == 1 else multiply(value, like(number, value))

    def compare(direction, a, b):
        return op("stablehlo.compare", a, b, kind="i1",
                  attributes=f" {{comparison_direction = #stablehlo<comparison_direction {direction}>}}")

    def select(predicate, a, b):
        return op("stablehlo.select", predicate, a, b, shape=a[1], kind=a[2])

    def both(a, b):
        return op("stablehlo.and", a, b)

    def clamp(low, value, high):
        return op("stablehlo.clamp", constant(low, ()), value, constant(high, ()), shape=value[1], kind=element)

    def broadcast(value, shape, dimensions):
        return op("stablehlo.broadcast_in_dim", value, shape=shape,
                  attributes=f" {{broadcast_dimensions = {ints(dimensions)}}}")

    def reshape(value, shape):
        return op("stablehlo.reshape", value, shape=shape)

    def transpose(value, permutation):
        return op("stablehlo.transpose", value, shape=[value[1][p] for p in permutation],
                  attributes=f" {{permutation = {ints(permutation)}}}")

    def reverse(value, dimensions):
        return op("stablehlo.reverse", value, attributes=f" {{dimensions = {ints(dimensions)}}}")

    def reduce_sum(value, dimensions):
        zero = constant(0.0, ())
        scalar = type_of(zero)
        shape = [size for dim, size in enumerate(value[1]) if dim not in dimensions]
        result = (None, shape, element)
        body = (f'({{\n    ^bb0(%lhs: {scalar}, %rhs: {scalar}):\n'
                f'      %sum = "stablehlo.add"(%lhs, %rhs) : ({scalar}, {scalar}) -> {scalar}\n'
                f'      "stablehlo.return"(%sum) : ({scalar}) -> ()\n    }})')
        return emit(f'"stablehlo.reduce"({value[0]}, {zero[0]}) {body} {{dimensions = {ints(dimensions)}}} : '
                    f"({type_of(value)}, {scalar}) -> {type_of(result)}", shape)

    def to_shape(value, shape):
        """A gradient of y's shape summed over the dims where `shape` has 1 (the adjoint of a broadcast)."""
        dimensions = [dim for dim, (size, full) in enumerate(zip(shape, value[1])) if size == 1 and full != 1]
        return reshape(reduce_sum(value, dimensions), shape) if dimensions else value

    def channels(vector, like_value):
        """(O,) along dim 1 of like_value."""
        return broadcast(vector, like_value[1], [1])

    def convolution(lhs, rhs, shape, *, numbers, window_strides, pads, lhs_dilation, rhs_dilation,
                    feature_groups=1, batch_groups=1):
        spatial = ", ".join(str(dim) for dim in range(rank))
        lhs_n, rhs_n, out_n = (f"[{a}, {b}, {spatial}]" for a, b in numbers)
        window = (f"stride = [{', '.join(map(str, window_strides))}], "
                  f"pad = [{', '.join(f'[{low}, {high}]' for low, high in pads)}], "
                  f"lhs_dilate = [{', '.join(map(str, lhs_dilation))}], "
                  f"rhs_dilate = [{', '.join(map(str, rhs_dilation))}]")
        result = (None, shape, element)
        return emit(f"stablehlo.convolution({lhs[0]}, {rhs[0]}) dim_numbers = {lhs_n}x{rhs_n}->{out_n}, "
                    f"window = {{{window}}} {{batch_group_count = {batch_groups} : i64, "
                    f"feature_group_count = {feature_groups} : i64}} : "
                    f"({type_of(lhs)}, {type_of(rhs)}) -> {type_of(result)}", shape)

    # -- the convolution and its two gradients, for the geometry of a plain convolution ----------------------
    # For a transposed spec the geometry is that of the convolution it is the data gradient of: that
    # convolution maps y's size to x's with w (C, O/groups, *k) as its kernel, pads (before, after -
    # output_padding).
    pads = [(before, after - (output_padding[d] if transposed else 0)) for d, (before, after) in enumerate(padding)]
    extents = [(k - 1) * d + 1 for k, d in zip(w_shape[2:], dilation)]

    def conv_forward(inp, kernel):
        """(N, C, *in) * (O, C/groups, *k) -> (N, O, *out)."""
        out = [(i + low + high - e) // s + 1 for i, (low, high), e, s in zip(inp[1][2:], pads, extents, stride)]
        return convolution(inp, kernel, (inp[1][0], kernel[1][0], *out), numbers=("bf", "oi", "bf"),
                           window_strides=stride, pads=pads, lhs_dilation=[1] * rank, rhs_dilation=dilation,
                           feature_groups=groups)

    def conv_input_gradient(grad, kernel, size):
        """The data gradient of conv_forward at grad (N, O, *out), for an input of spatial `size`."""
        out_channels, per_group, *kernel_size = kernel[1]
        swapped = reshape(kernel, (groups, out_channels // groups, per_group, *kernel_size))
        swapped = transpose(swapped, (0, 2, 1, *range(3, 3 + rank)))
        swapped = reshape(swapped, (per_group * groups, out_channels // groups, *kernel_size))
        flipped = reverse(swapped, list(range(2, 2 + rank)))
        input_pads = []
        for i, o, (low, high), e, s in zip(size, grad[1][2:], pads, extents, stride):
            unused = i + low + high - ((o - 1) * s + e)  # padded positions past the last window
            input_pads.append((e - 1 - low, e - 1 - high + unused))
        return convolution(grad, flipped, (grad[1][0], per_group * groups, *size), numbers=("bf", "oi", "bf"),
                           window_strides=[1] * rank, pads=input_pads, lhs_dilation=stride, rhs_dilation=dilation,
                           feature_groups=groups)

    def conv_weight_gradient(inp, grad):
        """The weight gradient (O, C/groups, *k) of conv_forward(inp, .) at grad (N, O, *out)."""
        kernel_pads = []
        for i, o, (low, high), e, s in zip(inp[1][2:], grad[1][2:], pads, extents, stride):
            unused = i + low + high - ((o - 1) * s + e)
            kernel_pads.append((low, high - unused))
        shape = (grad[1][1], inp[1][1] // groups, *w_shape[2:])
        return convolution(inp, grad, shape, numbers=("fb", "io", "fb"), window_strides=dilation, pads=kernel_pads,
                           lhs_dilation=[1] * rank, rhs_dilation=stride, batch_groups=groups)

    # -- the post-op chain: each kind forward, and its derivative --------------------------------------------
    def erf(value):
        return op("chlo.erf", value)

    def softplus(value):
        """log(1 + exp(v)) as max(v, 0) + log1p(exp(-|v|)), which does not overflow."""
        tail = op("stablehlo.log_plus_one", op("stablehlo.exponential", op("stablehlo.negate", op("stablehlo.abs",
                                                                                                  value))))
        return add(op("stablehlo.maximum", value, like(0.0, value)), tail)

    def inside(value, low, high):
        """low < value < high, elementwise."""
        return both(compare("GT", value, like(low, value)), compare("LT", value, like(high, value)))

    def normal_density(value):
        return scaled(op("stablehlo.exponential", multiply(multiply(value, value), like(-0.5, value))),
                      1 / math.sqrt(2 * math.pi))

    def normal_cdf(value):
        return multiply(add(erf(scaled(value, 1 / math.sqrt(2))), like(1.0, value)), like(0.5, value))

    def tanh_gelu_inner(value):
        cubic = multiply(multiply(value, value), like(0.044715, value))
        return scaled(multiply(value, add(cubic, like(1.0, value))), math.sqrt(2 / math.pi))

    def eltwise(kind, v, a, b):
        """f(v) for benchdnn's eltwise kind with parameters alpha a, beta b."""
        if kind == "relu":
            if a == 0:
                return op("stablehlo.maximum", v, like(0.0, v))
            return select(compare("GT", v, like(0.0, v)), v, scaled(v, a))
        if kind == "clip":
            return clamp(a, v, b)
        if kind == "elu":
            return select(compare("GT", v, like(0.0, v)), v, scaled(op("stablehlo.exponential_minus_one", v), a))
        if kind == "gelu_erf":
            return multiply(v, normal_cdf(v))
        if kind == "gelu_tanh":
            half = add(op("stablehlo.tanh", tanh_gelu_inner(v)), like(1.0, v))
            return multiply(scaled(v, 0.5), half)
        if kind == "swish":
            return multiply(v, op("stablehlo.logistic", scaled(v, a)))
        if kind == "logistic":
            return op("stablehlo.logistic", v)
        if kind == "tanh":
            return op("stablehlo.tanh", v)
        if kind == "hardsigmoid":
            return clamp(0.0, add(scaled(v, a), like(b, v)), 1.0)
        if kind == "hardswish":
            return multiply(v, clamp(0.0, add(scaled(v, a), like(b, v)), 1.0))
        if kind == "mish":
            return multiply(v, op("stablehlo.tanh", softplus(v)))
        if kind == "soft_relu":
            return scaled(softplus(scaled(v, a)), 1 / a)
        if kind == "linear":
            return add(scaled(v, a), like(b, v))
        if kind == "abs":
            return op("stablehlo.abs", v)
        if kind == "square":
            return multiply(v, v)
        if kind == "sqrt":
            return op("stablehlo.sqrt", v)
        if kind == "exp":
            return op("stablehlo.exponential", v)
        if kind == "log":
            return op("stablehlo.log", v)
        if kind == "round":
            return op("stablehlo.round_nearest_even", v)
        if kind == "pow":
            return scaled(op("stablehlo.power", v, like(b, v)), a)
        raise ValueError(f"post-op {kind}: not an eltwise kind")

    def eltwise_derivative(kind, v, a, b):
        """f'(v), with the reference's one-sided values at the kinks (relu'(0) = alpha, clip' 1 on (lo, hi])."""
        one, zero = like(1.0, v), like(0.0, v)
        if kind == "relu":
            return select(compare("GT", v, zero), one, like(a, v))
        if kind == "clip":
            return select(both(compare("GT", v, like(a, v)), compare("LE", v, like(b, v))), one, zero)
        if kind == "elu":
            return select(compare("GT", v, zero), one, scaled(op("stablehlo.exponential", v), a))
        if kind == "gelu_erf":
            return add(normal_cdf(v), multiply(v, normal_density(v)))
        if kind == "gelu_tanh":
            t = op("stablehlo.tanh", tanh_gelu_inner(v))
            inner_slope = scaled(add(scaled(multiply(v, v), 3 * 0.044715), one), math.sqrt(2 / math.pi))
            return add(scaled(add(t, one), 0.5),
                       multiply(scaled(v, 0.5), multiply(subtract(one, multiply(t, t)), inner_slope)))
        if kind in ("swish", "logistic", "soft_relu"):
            s = op("stablehlo.logistic", scaled(v, 1.0 if kind == "logistic" else a))
            if kind == "soft_relu":
                return s
            slope = multiply(s, subtract(one, s))
            return slope if kind == "logistic" else add(s, multiply(scaled(v, a), slope))
        if kind == "tanh":
            t = op("stablehlo.tanh", v)
            return subtract(one, multiply(t, t))
        if kind in ("hardsigmoid", "hardswish"):
            inner = add(scaled(v, a), like(b, v))
            slope = select(inside(inner, 0.0, 1.0), like(a, v), zero)
            if kind == "hardsigmoid":
                return slope
            return add(clamp(0.0, inner, 1.0), multiply(v, slope))
        if kind == "mish":
            t = op("stablehlo.tanh", softplus(v))
            return add(t, multiply(multiply(v, subtract(one, multiply(t, t))), op("stablehlo.logistic", v)))
        if kind == "linear":
            return like(a, v)
        if kind == "abs":
            return op("stablehlo.sign", v)
        if kind == "square":
            return scaled(v, 2.0)
        if kind == "sqrt":
            return divide(like(0.5, v), op("stablehlo.sqrt", v))
        if kind == "exp":
            return op("stablehlo.exponential", v)
        if kind == "log":
            return divide(one, v)
        if kind == "round":
            return zero
        if kind == "pow":
            return scaled(op("stablehlo.power", v, like(b - 1, v)), a * b)
        raise ValueError(f"post-op {kind}: not an eltwise kind")

    binary_ops = {"binary_add": "stablehlo.add", "binary_sub": "stablehlo.subtract", "binary_mul": "stablehlo.multiply",
                  "binary_div": "stablehlo.divide", "binary_max": "stablehlo.maximum",
                  "binary_min": "stablehlo.minimum"}

    def batchnorm_multiplier(rows, eps):
        """gamma / sqrt(var + eps), (O,)."""
        return divide(rows[2], op("stablehlo.sqrt", add(rows[1], like(eps, rows[1]))))

    def apply(step, v, operand):
        """One post-op forward: (its output, what its backward needs)."""
        kind = step["kind"]
        if kind in binary_ops:
            other = broadcast(operand, v[1], list(range(len(v[1]))))
            return op(binary_ops[kind], v, other), other
        if kind == "sum":
            residual = operand
            if step["zero_point"]:
                residual = subtract(residual, like(step["zero_point"], residual))
            return add(v, scaled(residual, step["scale"])), None
        if kind == "prelu":
            slopes = broadcast(operand, v[1], list(range(len(v[1]))))
            return select(compare("GT", v, like(0.0, v)), v, multiply(v, slopes)), slopes
        if kind == "batchnorm":
            rows = [reshape(op("stablehlo.slice", operand, shape=(1, operand[1][1]),
                               attributes=f" {{start_indices = {ints([r, 0])}, limit_indices = "
                                          f"{ints([r + 1, operand[1][1]])}, strides = {ints([1, 1])}}}"),
                            (operand[1][1],)) for r in range(4)]
            normalized = op("stablehlo.batch_norm_inference", v, rows[2], rows[3], rows[0], rows[1],
                            attributes=f" {{epsilon = {float(step['alpha']):.9e} : f32, feature_index = 1 : i64}}")
            return normalized, rows
        return eltwise(kind, v, step["alpha"], step["beta"]), None

    def pull_back(step, v, operand, saved, g):
        """(the gradient entering the step from below, the operand's gradient or None) for g leaving it."""
        kind = step["kind"]
        zero = like(0.0, v)
        if kind == "sum":
            return g, scaled(g, step["scale"])
        if kind in binary_ops:
            other = saved
            if kind == "binary_add":
                return g, to_shape(g, operand[1])
            if kind == "binary_sub":
                return g, to_shape(op("stablehlo.negate", g), operand[1])
            if kind == "binary_mul":
                return multiply(g, other), to_shape(multiply(g, v), operand[1])
            if kind == "binary_div":
                quotient = divide(v, multiply(other, other))
                return divide(g, other), to_shape(op("stablehlo.negate", multiply(g, quotient)), operand[1])
            wins = compare("GE" if kind == "binary_max" else "LE", v, other)  # v wins ties, as the reference
            return select(wins, g, zero), to_shape(select(wins, zero, g), operand[1])
        if kind == "prelu":
            positive = compare("GT", v, zero)
            return (select(positive, g, multiply(g, saved)),
                    to_shape(select(positive, zero, multiply(g, v)), operand[1]))
        if kind == "batchnorm":
            return multiply(g, channels(batchnorm_multiplier(saved, float(step["alpha"])), v)), None
        return multiply(g, eltwise_derivative(kind, v, step["alpha"], step["beta"])), None

    # -- the module: forward (what inference runs, the chain fused into the convolution) and backward ---------
    batch, size = x_shape[0], tuple(x_shape[2:])
    if transposed:
        out_size = tuple((i - 1) * s - low - high + e + extra for i, s, (low, high), e, extra
                         in zip(size, stride, padding, extents, output_padding))
        y_shape = (batch, w_shape[1] * groups, *out_size)
    else:
        y_shape = (batch, w_shape[0], *((i + low + high - e) // s + 1 for i, (low, high), e, s
                                        in zip(size, padding, extents, stride)))
    operand_shapes = []
    for step in chain:
        kind, mask = step["kind"], step["mask"]
        if kind == "sum":
            operand_shapes.append(y_shape)
        elif kind == "batchnorm":
            operand_shapes.append((4, y_shape[1]))
        elif kind in binary_ops or kind == "prelu":
            operand_shapes.append(tuple(n if mask >> dim & 1 else 1 for dim, n in enumerate(y_shape)))
        else:
            operand_shapes.append(None)

    def function(name, backward):
        """forward(x, w, [b], operands...) -> y; backward(x, w, [b], dy, operands...) -> (dx, dw, [db], operand
        gradients...), which computes the forward pass again for what the chain's derivatives need."""
        lines.clear()
        parameters.clear()
        x = parameter(x_shape)
        w = parameter(w_shape)
        b = parameter((y_shape[1],)) if bias else None
        dy = parameter(y_shape) if backward else None
        operands = [None if shape is None else parameter(shape) for shape in operand_shapes]
        v = conv_input_gradient(x, w, out_size) if transposed else conv_forward(x, w)
        if b is not None:
            v = add(v, channels(b, v))
        entering, saved = [], []
        for step, operand in zip(chain, operands):
            entering.append(v)
            v, keep = apply(step, v, operand)
            saved.append(keep)
        results = [v]
        if backward:
            g = dy
            operand_gradients = {}
            for k in reversed(range(len(chain))):
                g, operand_gradient = pull_back(chain[k], entering[k], operands[k], saved[k], g)
                if operand_gradient is not None:
                    operand_gradients[k] = operand_gradient
            if transposed:
                results = [conv_forward(g, w), conv_weight_gradient(g, x)]
            else:
                results = [conv_input_gradient(g, w, size), conv_weight_gradient(x, g)]
            if b is not None:
                results.append(reduce_sum(g, [0, *range(2, 2 + rank)]))
            results += [operand_gradients[k] for k in sorted(operand_gradients)]
        signature = ", ".join(f"{p[0]}: {type_of(p)}" for p in parameters)
        returned = ", ".join(type_of(r) for r in results)
        return (f"func.func @{name}({signature}) -> ({returned}) {{\n" + "\n".join(lines) +
                f"\n    return {', '.join(r[0] for r in results)} : {returned}\n}}\n")

    text = function("forward", backward=False) + function("backward", backward=True)
    binary = iree.compiler.compile_str(text, target_backends=["llvm-cpu"], input_type="stablehlo",
                                       extra_args=list(flags))
    context = iree.runtime.SystemContext(config=iree.runtime.Config("local-task"))
    module = iree.runtime.VmModule.copy_buffer(context.instance, binary)
    context.add_vm_module(module)
    functions = context.modules[module.name]
    gradient_names = [f"dpost{k}" for k, step in enumerate(chain)
                      if step["kind"] in ("sum", "prelu", *binary_ops)]

    def call(function, *arrays):
        """The function's results as NumPy arrays of their own, copied while IREE's device arrays live: a NumPy view
        of a result's mapped memory outlives the mapping (seen for a result that passes an input through, as a
        chain ending in a sum passes dy as the residual's gradient; compare iree-org/iree#23792)."""
        results = function(*(np.ascontiguousarray(a) for a in arrays))
        return [r.to_host().copy() for r in (results if isinstance(results, (tuple, list)) else [results])]

    def step(x, w, b, dy, operands=(), quantization=None):
        given = [o for o in operands if o is not None]
        head = [x, w] + ([b] if bias else [])
        (y,) = call(functions["forward"], *head, *given)
        gradients = call(functions["backward"], *head, dy, *given)
        dx, dw = gradients[:2]
        db = gradients[2] if bias else None
        if not gradient_names:
            return y, dx, dw, db
        return y, dx, dw, db, dict(zip(gradient_names, gradients[2 + bool(bias):]))

    step.text = text
    return step


COMPILE_CLOCK = BuildClock()  # iree-compile is nearly all of it


@lru_cache(maxsize=64)
def built_step(spec: ConvSpec) -> Callable[..., tuple]:
    """The spec's step, compiled once per process (the last 64 kept)."""
    return COMPILE_CLOCK.timed(IreeBackend().program(spec).build)


# StableHLO's batch_norm_inference takes eps as an f32 attribute whatever the data type, so a float64 program adds
# eps rounded to float32 (1e-5 becomes 9.99999974737875e-06): y errs by about 1e-14 relative, tens of times a
# float64 bound, and a nonlinear step after the batchnorm carries it into dx, dw and db. Not strict: against a long
# reduction's bound it can pass. Evidence: tests/plugins/test_iree.py::test_float64_batchnorm_adds_a_float32_eps.
DEVIATIONS = (
    Deviation(condition="float64, a batchnorm post-op", dtypes=("float64",), strict=False,
              applies=lambda spec: any(op.function == "batchnorm" for op in spec.post_ops),
              reason="stablehlo.batch_norm_inference's epsilon is an f32 attribute: a float64 batchnorm adds eps "
                     "rounded to float32",
              upstream="the StableHLO spec (batch_norm_inference: epsilon of type f32), "
                       "https://github.com/openxla/stablehlo/blob/main/docs/spec.md#batch_norm_inference"),
)


class IreeBackend(DeclaredLimits):
    """IREE's llvm-cpu target on the host CPU, through StableHLO."""

    name = "iree"
    deviations = DEVIATIONS
    post_ops = POST_OP_KINDS
    # float16 and bfloat16 programs (f16 x f16 -> f16, as a StableHLO program in that dtype is) accumulate in that
    # dtype on llvm-cpu: IREE does what the op's types say (iree-org/iree#19347, nod-ai/AMD-SHARK-Studio#2090).
    # Evidence: tests/plugins/test_iree.py::test_narrow_dtypes_accumulate_in_themselves.
    accumulation = {"float16": "float16", "bfloat16": "bfloat16"}
    # Measured (2026-12, 2-core machine shared with other jobs, load average 12-18): `convparity run -b iree -b tvm
    # -g smoke -g epilogues --dtype float32 -j 2`, the median `seconds` per case of results.csv: 2.97 s over 138
    # cases (4.7 s on the smoke grid alone), nearly all of it iree-compile (run.json: 451 s of 451 s compiling).
    # per_gflop: IREE's default llvm-cpu convolution code ran a float32 forward at about 3 GFLOP/s.
    cost = BackendCost(3.0, 0.3)

    @property
    def limits(self) -> tuple[Limit, ...]:
        """What iree-compile refuses, in its words (probed once per process); none when IREE is missing."""
        return () if self.availability() else probed_limits()

    def availability(self) -> str | None:
        return IREE_COMPILER.missing() or IREE_RUNTIME.missing()

    def version(self) -> str:
        return (f"{installed_version('iree-base-compiler')} (iree-base-runtime {installed_version('iree-base-runtime')}"
                ", llvm-cpu, host CPU, StableHLO)")

    def thread_environment(self, threads: int) -> Mapping[str, str]:
        """The local-task driver makes a worker thread per core unless told otherwise."""
        return {"IREE_PY_RUNTIME_FLAGS": f"--task_topology_group_count={threads}"}

    def compile_seconds(self) -> float:
        return COMPILE_CLOCK.seconds

    def program(self, spec: ConvSpec) -> Program:
        return Program(iree_conv, program_arguments(spec, x_shape=spec.x_shape, w_shape=spec.w_shape))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray,
            extras: Extras | None = None) -> Outputs:
        step = built_step(spec)
        if extras is None:
            return step(x, w, b, dy)
        return step(x, w, b, dy, operands=extras.operands)


@hookimpl
def convparity_register_backends(register):
    register(IreeBackend())
