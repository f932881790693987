"""Backend `jax`: `lax.conv_general_dilated` for y and `jax.vjp` of it for dx, dw and db (program `jax_conv`).

Float64 is enabled explicitly (`jax_enable_x64`) before JAX computes anything: without it JAX
silently computes float64 inputs in float32. The convolution runs at `Precision.HIGHEST`, so on
accelerators float32 is not computed in bfloat16 or TF32 passes. Each spec's forward and backward are
one jitted function, compiled on the spec's first run and reused when it comes back (the built program
is cached per spec). JAX takes per-dim (before, after) pads, negative ones (crops) included, and NumPy
arrays of ml_dtypes.bfloat16, so nothing is converted at the boundary.

Transposed convolutions are the fractionally strided convolution `lax.conv_transpose` computes:
`conv_general_dilated` of x dilated by the stride (`lhs_dilation`), with the kernel flipped and its
channel axes swapped (`transpose_kernel=True`), padded by (e - 1 - before, e - 1 - after +
output_padding) per dim for the effective kernel e. lax.conv_transpose takes no group count, so the
same call is made here directly, with `feature_group_count` and the kernel swapped group by group.

Post-op chains: every kind, in jax.nn / jnp after the convolution inside the same jitted function, so XLA fuses
them into the convolution's epilogue (batchnorm in flax's inference form, (v - mean) * (rsqrt(var + eps) gamma) +
beta); the gradients of a sum's residual, a binary's src1 and prelu's slopes come from the same jax.vjp.
8-bit floats: float8_e4m3fn and float8_e5m2 sources convolve with preferred_element_type=float32 (bit for bit the
float32 convolution of the upcast values), the bias and chain on that accumulator, then one cast to the destination
(the 8-bit type itself, or float32 / bfloat16 / float16 in SRC:SRC:DST); their gradients come from jax.vjp too.

Worker processes: XLA's CPU client sizes its thread pools by the cores, not OMP_NUM_THREADS, so a
one-thread worker is told so (`thread_environment`); JAX's persistent compilation cache goes to the
run's compile-cache folder (`cache_environment`); the seconds JAX spends tracing, lowering and compiling
are read from jax.monitoring (`compile_seconds`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache, partial
from pathlib import Path
from types import ModuleType

import numpy as np

from convparity.plugin import (
    BackendCost,
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

# Verified with jax 0.10 on CPU: every rank, stride, dilation, group count, negative padding and
# dtype of the spec runs, so JAX declares no limits.
LIMITS: tuple[Limit, ...] = ()
# Evidence: tests/plugins/test_jax.py::test_narrow_dtypes_agree_without_bias (no bias, no failure), and
# ::test_narrow_dtypes_round_the_bias (y = round(round(conv) + b); db within a narrow-dtype accumulation bound).


def crops_then_pads(pairs) -> bool:
    """A dim padded by (low, high) with low < 0 < high <= -low: what XLA:CPU's Eigen convolution mishandles."""
    return any(low < 0 < high <= -low for low, high in pairs)


def xla_pads(spec: ConvSpec, tensor: str) -> list[tuple[int, int]]:
    """Per dim, the (low, high) pads of the convolution XLA computes for `tensor`: the forward one (the spec's pads;
    for a transposed spec the stride-dilated convolution's, e - 1 - before and e - 1 - after + output_padding, e the
    effective kernel), and the ones its autodiff derives: dx of a convolution is a stride-dilated one (e - 1 -
    before, e - 1 - after + r, r the input left over by the stride), dw a correlation with (before, after - r); a
    transposed spec's dx is the convolution with (before, after - output_padding), its dw the forward's pads."""
    pairs = []
    for size, k, s, d, (before, after), extra in zip(spec.input_size, spec.kernel_size, spec.stride, spec.dilation,
                                                      spec.padding, spec.output_padding):
        span = (k - 1) * d
        if spec.transposed:
            dilated = (span - before, span - after + extra)
            pairs.append((before, after - extra) if tensor == "dx" else dilated)
        else:
            rest = (size + before + after - span - 1) % s
            pairs.append({"y": (before, after), "dx": (span - before, span - after + rest)}.get(
                tensor, (before, after - rest)))
    return pairs


def _crops_then_pads_for(tensor: str, spec: ConvSpec) -> bool:
    return crops_then_pads(xla_pads(spec, tensor))


# XLA:CPU (jaxlib 0.10.2) computes a float32/float16/bfloat16 convolution whose dim is padded by (low, high) with
# low < 0 < high <= -low on its Eigen path, which takes it for an unpadded one and reads past the rows it may use:
# the output holds neighbouring input or uninitialised memory (1e26 and the like). float64 and more than 16
# channels take other paths. Which shapes take the Eigen path depends on the channel counts, so the declarations
# are not strict. The convolutions concerned are every one XLA computes with such pads: y's and those autodiff
# derives for dx and dw (xla_pads). A search found the ones beyond y of a plain convolution and dx of a transposed
# one: deconv:g1mb2ic4iw3oc1ow2kw2sw1pw2dw0 (y read -7 for -4 on small integers), a 2-D one of the kind (y and dw),
# g1mb1ic1iw3oc13ow4kw2sw1pw2dw0 (dx); each is exact in float64.
# Evidence: tests/plugins/test_jax.py::test_xla_cpu_convolution_crops_then_pads_correctly (xfail, the bug alone)
# and ::test_crop_then_pad_deviation_explains_the_failures.
XLA_NEGATIVE_LOW_PADDING = "https://github.com/openxla/xla/issues/48713"
XLA_BUG = ("XLA:CPU's Eigen convolution reads outside its input when a dim is padded by low < 0 < high <= -low "
           "(float32, float16, bfloat16)")
NARROW = ("float32", "float16", "bfloat16")
DEVIATIONS = (
    Deviation(condition="bias, float16/bfloat16", dtypes=("float16", "bfloat16"), tensors=("y", "db"), bias=True,
              strict=False, reason="adds the bias after rounding the convolution to the narrow dtype, and "
              "reduces dy to db in that dtype", upstream="a precision choice, not reported"),
    *(Deviation(condition=f"the convolution XLA computes for {tensor} has a dim padded by low < 0 < high <= -low "
                "(xla_pads)", dtypes=NARROW, tensors=(tensor,), strict=False, versions=">=0.10.2", reason=XLA_BUG,
                upstream=XLA_NEGATIVE_LOW_PADDING, applies=partial(_crops_then_pads_for, tensor))
      for tensor in ("y", "dx", "dw")),
)


def jax_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None, post_ops=(), quantization=None):
    """y = lax.conv_general_dilated(x, w) + b at Precision.HIGHEST in NC(D)HW / OI(D)HW layouts (for a transposed
    convolution, with output_padding: the stride-dilated convolution lax.conv_transpose computes, with groups),
    then the post-op chain in jax.nn / jnp ops, and dx, dw, db and each differentiable operand's gradient from
    jax.vjp at dy, all in one jitted function (XLA fuses the chain into the convolution's epilogue).
    8-bit float sources (float8_e4m3fn, float8_e5m2) are convolved with preferred_element_type=float32 and the
    result, bias added, is cast to the destination's type (dtype "SRC:WEI:DST" or one 8-bit float).
    step(x, w, b, dy, operands=(), quantization=None) -> (y, dx, dw, db[, {"dpost{k}": gradient}])."""
    import jax
    import ml_dtypes
    import numpy as np

    jax.config.update("jax_enable_x64", True)  # else float64 inputs are computed in float32
    jnp, lax = jax.numpy, jax.lax
    rank = len(stride)
    spatial = "DHW"[-rank:]
    layouts = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    chain = tuple(dict(step) for step in post_ops)
    differentiable = ("sum", "binary_add", "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min",
                      "prelu")
    watched = [k for k, op in enumerate(chain) if op["kind"] in differentiable]
    destination = dtype.split(":")[-1]
    eight_bit = dtype.startswith("float8")  # 8-bit float sources: a float32 accumulator, cast to the destination
    names = {"float8_e4m3": ml_dtypes.float8_e4m3fn, "float8_e5m2": ml_dtypes.float8_e5m2,
             "bfloat16": ml_dtypes.bfloat16}
    result_type = np.dtype(names.get(destination, destination))

    def transposed_kernel(w):
        """w (C_in, C_out/groups, *k) -> (C_out, C_in/groups, *k), flipped in every spatial dim: the kernel of the
        stride-dilated convolution (lax.conv_transpose's transpose_kernel=True, group by group)."""
        c_in, c_out_per_group, *kernel = w.shape
        grouped = w.reshape((groups, c_in // groups, c_out_per_group, *kernel))
        swapped = grouped.swapaxes(1, 2).reshape((groups * c_out_per_group, c_in // groups, *kernel))
        return swapped[(slice(None), slice(None)) + (slice(None, None, -1),) * rank]

    def convolution(x, w, b):
        accumulate = {"preferred_element_type": jnp.float32} if eight_bit else {}
        if output_padding is None:
            y = lax.conv_general_dilated(x, w, window_strides=stride, padding=padding, rhs_dilation=dilation,
                                         feature_group_count=groups, dimension_numbers=layouts,
                                         precision=lax.Precision.HIGHEST, **accumulate)
        else:  # pads (e - 1 - before, e - 1 - after + output_padding) for the effective kernel e = (k - 1) d + 1
            pads = tuple(((k - 1) * d - before, (k - 1) * d - after + extra)
                         for k, d, (before, after), extra in zip(w.shape[2:], dilation, padding, output_padding))
            y = lax.conv_general_dilated(x, transposed_kernel(w), window_strides=(1,) * rank, padding=pads,
                                         lhs_dilation=stride, rhs_dilation=dilation, feature_group_count=groups,
                                         dimension_numbers=layouts, precision=lax.Precision.HIGHEST, **accumulate)
        return y if b is None else y + b.reshape((1, -1) + (1,) * rank)

    def channel(values):
        return values.reshape((1, -1) + (1,) * rank)

    def eltwise(kind, y, a, b):
        """One elementwise step in jax.nn's function for it, else in jnp."""
        if kind == "relu":
            return jax.nn.relu(y) if a == 0 else jax.nn.leaky_relu(y, negative_slope=a)
        if kind == "clip":
            return jax.nn.relu6(y) if (a, b) == (0, 6) else jnp.clip(y, a, b)
        if kind == "elu":
            return jax.nn.elu(y, alpha=a)
        if kind in ("gelu_erf", "gelu_tanh"):
            return jax.nn.gelu(y, approximate=kind == "gelu_tanh")
        if kind == "swish":
            return jax.nn.silu(y) if a == 1 else y * jax.nn.sigmoid(a * y)
        if kind in ("hardswish", "hardsigmoid"):
            gate = jnp.clip(a * y + b, 0, 1)
            return y * gate if kind == "hardswish" else gate
        if kind == "linear":
            return a * y + b
        if kind == "soft_relu":
            return jax.nn.softplus(a * y) / a
        if kind == "pow":
            return a * jnp.power(y, b)
        return {"logistic": jax.nn.sigmoid, "tanh": jnp.tanh, "mish": jax.nn.mish, "abs": jnp.abs,
                "square": jnp.square, "sqrt": jnp.sqrt, "exp": jnp.exp, "log": jnp.log, "round": jnp.round}[kind](y)

    def epilogue(y, operands):
        for op, other in zip(chain, operands):
            kind, a, b = op["kind"], op["alpha"], op["beta"]
            if kind == "sum":
                y = y + op["scale"] * (other - op["zero_point"])
            elif kind == "prelu":
                y = jnp.where(y > 0, y, y * other)
            elif kind == "batchnorm":  # as flax.linen.BatchNorm in inference: (y - mean) * (rsqrt(var + eps) gamma)
                mean, var, gamma, beta = other
                y = (y - channel(mean)) * channel(lax.rsqrt(var + a) * gamma) + channel(beta)
            elif kind.startswith("binary_"):
                y = {"binary_add": jnp.add, "binary_sub": jnp.subtract, "binary_mul": jnp.multiply,
                     "binary_div": jnp.divide, "binary_max": jnp.maximum, "binary_min": jnp.minimum}[kind](y, other)
            else:
                y = eltwise(kind, y, a, b)
        return y

    def forward(x, w, b, *differentiated, fixed):
        operands = list(fixed)
        for k, other in zip(watched, differentiated):
            operands[k] = other
        y = epilogue(convolution(x, w, b), operands)  # 8-bit float sources: on the float32 accumulator
        return y.astype(result_type) if eight_bit else y

    @jax.jit
    def forward_backward(x, w, b, dy, operands):
        fixed = tuple(None if k in watched else other for k, other in enumerate(operands))
        y, pullback = jax.vjp(lambda *a: forward(*a, fixed=fixed), x, w, b, *(operands[k] for k in watched))
        return (y, *pullback(dy))

    @jax.jit
    def inference(x, w, b, operands):
        return forward(x, w, b, fixed=operands)

    def step(x, w, b, dy, operands=(), quantization=None):
        operands = tuple(operands)
        if dy is None:
            return np.asarray(inference(x, w, b, operands)), None, None, None
        y, dx, dw, db, *gradients = (None if t is None else np.asarray(t)
                                     for t in forward_backward(x, w, b, dy, operands))
        if not watched:
            return y, dx, dw, db
        return y, dx, dw, db, {f"dpost{k}": g for k, g in zip(watched, gradients)}

    return step


# What JAX reports through jax.monitoring while it turns a function into an executable: tracing, lowering to
# MLIR, and XLA's compile (or, on a persistent-cache hit, loading the entry).
JAX_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                      "/jax/core/compile/backend_compile_duration")


class CompileClock:
    """Seconds this process has spent compiling with JAX, from jax.monitoring's events (listening from the moment
    jax is imported: nothing is compiled before)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def listen(self) -> None:
        from jax import monitoring

        monitoring.register_event_duration_secs_listener(self.event)

    def event(self, event: str, duration_secs: float, **_: str | int) -> None:
        if event in JAX_COMPILE_EVENTS:
            self.seconds += duration_secs


COMPILE_CLOCK = CompileClock()


def _configure(jax: ModuleType) -> None:
    jax.config.update("jax_enable_x64", True)  # before JAX computes anything (the program says so again)
    COMPILE_CLOCK.listen()


JAX = Framework("jax", "jax", configure=_configure)


def cache_environment(folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
    """JAX's persistent compilation cache in folder/jax-<version>, with the thresholds that keep small or quickly
    compiled programs out of it lowered to zero (every case here is small); a user's own cache directory (or
    JAX_ENABLE_COMPILATION_CACHE) wins over a folder, and their own thresholds stand; None turns it off."""
    version = installed_version("jax")
    if version is None:
        return {}
    if folder is None:
        return {"JAX_ENABLE_COMPILATION_CACHE": "false"}
    if "JAX_COMPILATION_CACHE_DIR" in current or "JAX_ENABLE_COMPILATION_CACHE" in current:
        return {}
    wanted = {"JAX_COMPILATION_CACHE_DIR": str(folder / f"jax-{version}"),
              "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
              "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return {name: value for name, value in wanted.items() if name not in current}


# The kinds the program computes (every kind convparity has; benchdnn's aliases resolve to these).
POST_OPS = ("relu", "clip", "elu", "gelu_erf", "gelu_tanh", "swish", "logistic", "tanh", "hardswish", "hardsigmoid",
            "mish", "soft_relu", "linear", "abs", "square", "sqrt", "exp", "log", "round", "pow", "sum", "binary_add",
            "binary_sub", "binary_mul", "binary_div", "binary_max", "binary_min", "prelu", "batchnorm")
# 8-bit floats: XLA:CPU convolves float8_e4m3fn and float8_e5m2 with preferred_element_type=float32 (bit for bit the
# float32 convolution of the upcast values; tests/plugins/test_jax.py), and the result is cast to the destination.
# lax.conv_general_dilated takes one dtype for both sources ("requires arguments to have the same dtypes"), so the
# mixed SRC:WEI:DST types are those with equal sources.
FLOAT8 = ("float8_e4m3", "float8_e5m2")
DATA_TYPES = (*FLOAT8, *(f"{source}:{source}:{destination}" for source in FLOAT8
                         for destination in ("float32", "bfloat16", "float16")))


@lru_cache(maxsize=256)
def built_step(spec: ConvSpec) -> Callable[..., tuple]:
    """The spec's step, built (and compiled on its first call) once per process."""
    return JaxBackend().program(spec).build()


class JaxBackend(DeclaredLimits):
    """Runs on JAX's default device (the CPU unless a jaxlib with an accelerator is installed)."""

    name = "jax"
    limits = LIMITS
    deviations = DEVIATIONS
    post_ops = POST_OPS
    data_types = DATA_TYPES
    # The median `seconds` per case of a 2-core run of the smoke and default grids in four dtypes (results.csv,
    # 2026-12, cold compile caches): nearly all of it compiling. 20 GFLOP/s on one core.
    cost = BackendCost(0.42, 0.05)

    def availability(self) -> str | None:
        return JAX.missing()

    def version(self) -> str:
        jax = JAX.load()
        import jaxlib

        return f"{jax.__version__} (jaxlib {jaxlib.__version__}, {jax.default_backend()})"

    def thread_environment(self, threads: int) -> dict[str, str]:
        """XLA's CPU client sizes its Eigen pool by the cores, not OMP_NUM_THREADS: one thread is asked for so."""
        return {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"} if threads == 1 else {}

    def cache_environment(self, folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
        return cache_environment(folder, current)

    def compile_seconds(self) -> float:
        return COMPILE_CLOCK.seconds

    def program(self, spec: ConvSpec) -> Program:
        return Program(jax_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy), and
        {"dpost{k}": gradient} of the chain's differentiable operands (extras.operands).

        Transposed: w (C, O/groups, *k)."""
        JAX.load()  # configured (float64, the compile clock) before the program first runs
        step = built_step(spec)
        if extras is None:
            return step(x, w, b, dy)
        return step(x, w, b, dy, operands=extras.operands)  # type: ignore[no-any-return]


@hookimpl
def convparity_register_backends(register):
    register(JaxBackend())
