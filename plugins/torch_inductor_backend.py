"""Backend `torch-inductor`: the torch backend's forward compiled by torch.compile (Inductor, CPU).

Its program, `torch_inductor_conv`, compiles the forward of the torch backend's `torch_conv` (F.pad, then
F.conv{1,2,3}d), so the two backends differ only in the compiler. `torch.compile(..., fullgraph=True,
dynamic=False)` hands the whole forward to AOTAutograd, which derives the backward graph and compiles both
with Inductor: `torch.autograd.grad` then runs Inductor's generated code for dx, dw and db too. (Inductor
keeps the convolution itself as an extern call to ATen's kernel and generates the pad, bias and layout code
around it; a graph of extern calls alone, e.g. a symmetric pad and a bias, becomes Python with no C++ to
compile.) One compiled step per spec, cached and reused (torch_backend.built_step); its first call
compiles, later calls do not.

Dynamo keeps compiled graphs per code object, and every spec compiles the same `forward` code, so its
recompile limit is raised far above any grid and hitting it is an error instead of a silent fall back to
eager (process-wide settings, made once when the backend first loads torch, outside the program). A compile
failure (Inductor's C++ compiler missing or failing, a lowering error) raises as it is, so the case is an
`error` row with the compiler's message. Inductor compiles in this process (`compile_threads = 1` where the
runner gives a worker one thread), never in a pool that could die.

Compile cache: Inductor keeps its FX-graph, AOTAutograd and compiled-kernel caches under /tmp by default;
`cache_environment` moves them into the run's cache folder (`TORCHINDUCTOR_CACHE_DIR`) or turns them off
(`TORCHINDUCTOR_FORCE_DISABLE_CACHES=1`), leaving a cache the user steers to them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import numpy as np

from convparity.plugin import (
    CONVOLUTION_ONLY,
    BackendCost,
    ConvSpec,
    DeclaredLimits,
    Extras,
    Framework,
    Limit,
    Outputs,
    Program,
    hookimpl,
    installed_version,
    program_arguments,
)
from convparity.plugins.torch_backend import TORCH, TORCH_POST_OPS, built_step

# Far above any grid's spec count; dynamo counts recompiles of one code object against it.
RECOMPILE_LIMIT = 100_000
# Variables by which a user steers Inductor's caches already: a cache folder then leaves them alone.
USER_CACHE_VARIABLES = ("TORCHINDUCTOR_CACHE_DIR", "TORCHINDUCTOR_FORCE_DISABLE_CACHES",
                        "TORCH_COMPILE_FORCE_DISABLE_CACHES")


def _one_compile_per_spec(inductor: ModuleType) -> None:
    """Dynamo and Inductor set for one compile per spec, in this process (see the module docstring)."""
    from torch._dynamo import config as dynamo_config
    from torch._inductor import config as inductor_config

    dynamo_config.recompile_limit = RECOMPILE_LIMIT
    dynamo_config.accumulated_recompile_limit = RECOMPILE_LIMIT
    dynamo_config.fail_on_recompile_limit_hit = True
    if os.environ.get("OMP_NUM_THREADS") == "1":
        inductor_config.compile_threads = 1


INDUCTOR = Framework("torch._inductor", "torch-inductor", distribution="torch", configure=_one_compile_per_spec)


def torch_inductor_conv(*, stride, padding, dilation, groups, dtype, bias, post_ops=()):
    """F.pad, then torch.nn.functional.conv{1,2,3}d and the post-op chain (torch_backend.torch_conv's `epilogue`),
    compiled by torch.compile with Inductor (CPU) as one graph; the backward is the graph AOTAutograd derives,
    compiled by Inductor too, run by torch.autograd.grad.

    step(x, w, b, dy, operands=()) -> (y, dx, dw, db[, {"dpost{k}": gradient}]): NumPy arrays in, NumPy arrays
    out (bfloat16 ones as float32). padding is (before, after) per dim: the symmetric non-negative part goes to
    the conv's own padding, the rest (asymmetric, or negative: a crop) is an F.pad of x before it. The first step
    compiles.
    """
    import numpy as np
    import torch

    functional = torch.nn.functional
    conv = (functional.conv1d, functional.conv2d, functional.conv3d)[len(stride) - 1]
    # e.g. ((1, 2), (-1, 0)) -> conv padding (1, 0), F.pad amounts (-1, 0, 0, 1) (last dim first)
    symmetric = tuple(max(min(before, after), 0) for before, after in padding)
    explicit = tuple(amount for (before, after), s in reversed(list(zip(padding, symmetric)))
                     for amount in (before - s, after - s))

    # The chain, as torch_backend.torch_conv computes it (a test keeps the two the same).
    def cast(value):  # a number as the dtype computed holds it
        return torch.tensor(value, dtype=getattr(torch, dtype)).item()

    chain = tuple(dict(op) for op in post_ops)
    for op in chain:  # hardswish and hardsigmoid are F.hardswish and F.hardsigmoid where (alpha, beta), in the
        # dtype computed, are PyTorch's own (1/6, 1/2): benchdnn's 0.16666667 is 1/6 in float32, not in float64.
        op["pytorchs"] = (cast(op["alpha"]), cast(op["beta"])) == (cast(1 / 6), cast(0.5))
    # A sum's residual, a binary's src1 and prelu's slopes have gradients; batchnorm's statistics are constants.
    binary = {"binary_add": torch.add, "binary_sub": torch.sub, "binary_mul": torch.mul, "binary_div": torch.div,
              "binary_max": torch.maximum, "binary_min": torch.minimum}
    differentiable = tuple(k for k, op in enumerate(chain) if op["kind"] in ("sum", "prelu", *binary))
    unary = {"logistic": torch.sigmoid, "tanh": torch.tanh, "mish": functional.mish, "abs": torch.abs,
             "square": torch.square, "sqrt": torch.sqrt, "exp": torch.exp, "log": torch.log,
             "round": torch.round}  # torch.round: half to even

    def epilogue(v, operands):
        """The chain after the convolution, left to right, the way a PyTorch model writes it."""
        for op, r in zip(chain, operands):
            kind, a, b = op["kind"], op["alpha"], op["beta"]
            if kind in unary:
                v = unary[kind](v)
            elif kind == "relu":
                v = functional.relu(v) if a == 0 else functional.leaky_relu(v, a)
            elif kind == "clip":
                v = functional.relu6(v) if (a, b) == (0, 6) else functional.hardtanh(v, a, b)
            elif kind == "elu":
                v = functional.elu(v, a)
            elif kind in ("gelu_erf", "gelu_tanh"):
                v = functional.gelu(v, approximate="none" if kind == "gelu_erf" else "tanh")
            elif kind == "swish":
                v = functional.silu(v) if a == 1 else v * torch.sigmoid(a * v)
            elif kind == "hardswish":
                v = functional.hardswish(v) if op["pytorchs"] else v * torch.clamp(a * v + b, 0, 1)
            elif kind == "hardsigmoid":
                v = functional.hardsigmoid(v) if op["pytorchs"] else torch.clamp(a * v + b, 0, 1)
            elif kind == "soft_relu":
                v = functional.softplus(v, beta=a)
            elif kind == "linear":
                v = a * v + b
            elif kind == "pow":
                v = a * torch.pow(v, b)
            elif kind == "sum":
                v = torch.add(v, r - op["zero_point"] if op["zero_point"] else r, alpha=op["scale"])
            elif kind in binary:
                v = binary[kind](v, r)
            elif kind == "prelu":
                # F.prelu takes one slope or one per channel; slopes along other dims are torch.where's.
                per_channel = r.numel() == 1 or r.numel() == r.shape[1] == v.shape[1]
                v = functional.prelu(v, r.reshape(-1)) if per_channel else torch.where(v > 0, v, v * r)
            elif kind == "batchnorm":
                mean, var, gamma, beta = r
                v = functional.batch_norm(v, mean, var, gamma, beta, training=False, eps=a)
            else:
                raise ValueError(f"post-op {kind!r} is not one torch_conv computes")
        return v

    def forward(x, w, b, operands):
        padded = functional.pad(x, explicit) if any(explicit) else x
        return epilogue(conv(padded, w, b, stride=stride, padding=symmetric, dilation=dilation, groups=groups),
                        operands)

    compiled = torch.compile(forward, backend="inductor", fullgraph=True, dynamic=False)

    def tensor(array):
        # torch.from_numpy cannot read ml_dtypes' bfloat16; float32 holds every bfloat16 value exactly.
        source = array.astype(np.float32) if array.dtype.name == "bfloat16" else np.ascontiguousarray(array)
        return torch.from_numpy(source).to(dtype=getattr(torch, dtype))

    def numpy(tensor):
        tensor = tensor.detach()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()

    def step(x, w, b, dy, operands=(), quantization=None):
        x_t, w_t, dy_t = tensor(x), tensor(w), tensor(dy)
        b_t = None if b is None else tensor(b)
        operands_t = [None if r is None else tensor(r) for r in operands]
        leaves = [t.requires_grad_(True) for t in (x_t, w_t, b_t) if t is not None]
        leaves += [operands_t[k].requires_grad_(True) for k in differentiable]
        y_t = compiled(x_t, w_t, b_t, operands_t)
        grads = [numpy(g) for g in torch.autograd.grad(y_t, leaves, grad_outputs=dy_t, allow_unused=True,
                                                       materialize_grads=True)]
        grads, operand_grads = grads[:len(grads) - len(differentiable)], grads[len(grads) - len(differentiable):]
        dx, dw, db = grads if b is not None else (*grads, None)
        if not differentiable:
            return numpy(y_t), dx, dw, db
        return numpy(y_t), dx, dw, db, {f"dpost{k}": g for k, g in zip(differentiable, operand_grads)}

    return step


def cxx_compiler_problem() -> str | None:
    """Why Inductor cannot compile C++ here (its own InvalidCxxCompiler message), or None."""
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler as error:
        return f"Inductor has no C++ compiler: {error}"
    return None


class TorchInductorBackend(DeclaredLimits):
    """torch on the CPU whose forward (and so backward) is compiled by Inductor."""

    name = "torch-inductor"
    limits: tuple[Limit, ...] = (CONVOLUTION_ONLY,)
    # torch's chain, compiled with the convolution into one graph: Inductor fuses the elementwise steps.
    post_ops = TORCH_POST_OPS
    # Measured (2026-12, torch 2.13.0, gcc 12, a 2-core machine shared with other jobs, load 5-9): the median of
    # the `seconds` column of results.csv, one value per case, of `convparity run -b torch-inductor -g smoke
    # --dtype float32 --compile-cache off`: 3.25 s and 3.60 s in two runs, 3.5 s over both (48 cases; 0.16 s
    # to 15 s, nearly all of it compiling). per_gflop: 20 GFLOP/s, as torch (ATen's kernel does the arithmetic).
    cost = BackendCost(3.5, 0.05)

    def availability(self) -> str | None:
        return INDUCTOR.missing() or cxx_compiler_problem()

    def version(self) -> str:
        from torch._inductor import cpp_builder

        return f"{TORCH.load().__version__} (Inductor, CPU, C++ compiler {cpp_builder.get_cpp_compiler()})"

    def cache_environment(self, folder: Path | None, current: Mapping[str, str]) -> dict[str, str]:
        """Inductor's caches in `folder`/torch-inductor-VERSION, or off for None; nothing without torch, and
        nothing for a folder where the user steers the caches already (USER_CACHE_VARIABLES)."""
        version = installed_version("torch")
        if version is None:
            return {}
        if folder is None:
            return {"TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}
        if any(name in current for name in USER_CACHE_VARIABLES):
            return {}
        return {"TORCHINDUCTOR_CACHE_DIR": str(folder / f"{self.name}-{version}")}

    def program(self, spec: ConvSpec) -> Program:
        return Program(torch_inductor_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """As the torch backend; the first run of a spec compiles its step, later ones reuse it."""
        INDUCTOR.load()  # dynamo's and Inductor's settings before anything compiles
        if extras is None or not spec.post_ops:
            return built_step(self, spec)(x, w, b, dy)
        return built_step(self, spec)(x, w, b, dy, operands=extras.operands)


@hookimpl
def convparity_register_backends(register):
    register(TorchInductorBackend())
