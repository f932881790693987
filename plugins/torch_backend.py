"""Backends `torch`, `torch-channels_last` and `torch-cuda`: torch.nn.functional.conv{1,2,3}d and autograd.

All three run one program, `torch_conv`, and differ only in device and memory format:

- `torch`: CPU, contiguous (NCHW) tensors.
- `torch-channels_last`: CPU, input, weight and upstream gradient in `channels_last` (2-D) or
  `channels_last_3d` (3-D) memory format, which selects different kernels; 1-D convolutions have no
  such format and are unsupported.
- `torch-cuda`: the first CUDA device, with deterministic cuDNN, no benchmark autotuning and TF32 off
  for convolutions and matmuls, so float32 means IEEE float32. Unavailable without a GPU.

(`torch-inductor`, in plugins/torch_inductor_backend.py, compiles the same forward with torch.compile.)

Padding: the symmetric, non-negative part of each dim's (before, after) pair goes to the conv's own
`padding`; any remainder (asymmetric or negative, i.e. a crop) is an explicit `F.pad` before it, so
autograd carries dx through both. torch is imported only when a backend is first asked about it.

Transposed convolutions run torch.nn.functional.conv_transpose{1,2,3}d with the spec's stride,
dilation, groups and output_padding (torch's own rule, the spec's) and the symmetric non-negative part
of the pads as `padding`; the rest of each pair is an `F.pad` of y after it: negative amounts crop the
output (asymmetric pads), positive ones add the positions a negative pad asks for, which hold the bias
alone, so then the bias is added after the F.pad instead of inside the transposed convolution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from convparity.plugin import (
    BackendCost,
    ConvSpec,
    Deviation,
    Extras,
    Framework,
    Limit,
    Outputs,
    Program,
    cpu_without,
    first_limit,
    hookimpl,
    program_arguments,
)

TORCH = Framework("torch", "torch")

# The post-op kinds torch_conv computes after the convolution (benchdnn's aliases resolve to these).
TORCH_POST_OPS = (
    "relu", "clip", "elu", "gelu_erf", "gelu_tanh", "swish", "logistic", "tanh", "hardswish", "hardsigmoid", "mish",
    "soft_relu", "linear", "abs", "square", "sqrt", "exp", "log", "round", "pow", "sum", "binary_add", "binary_sub",
    "binary_mul", "binary_div", "binary_max", "binary_min", "prelu", "batchnorm",
)

# torch.Tensor.to(memory_format=torch.channels_last) on a 3-D (N, C, W) tensor raises
# "required rank 4 tensor to use channels_last format": there is no channels-last format for 1-D convs.
CHANNELS_LAST_LIMITS = (
    Limit(
        condition="rank 1 (3-D tensors)",
        reason="torch has no channels-last memory format for 3-D tensors "
        "(RuntimeError: required rank 4 tensor to use channels_last format)",
        applies=lambda spec: spec.rank == 1,
    ),
)

# Measured with torch alone (tests/plugins/test_torch_float16.py): on a CPU without native float16
# arithmetic, torch's float16 convolution backward lands beyond the float32-accumulation bound (dx err_ratio
# up to ~160 on the smoke grid, dw and sometimes db too) and within the float16-accumulation one: it
# accumulates in float16. Not strict: small reductions stay within the bound. The CPU backends only.
DEVIATIONS = (
    Deviation("float16, CPU", "the float16 backward accumulates in float16: dx, dw and db exceed the bound of "
              "float32 accumulation, within that of float16 accumulation",
              upstream="docs/upstream/torch-cpu-float16-backward.md (not reported yet)",
              dtypes=("float16",), tensors=("dx", "dw", "db"), strict=False,
              platform=cpu_without("avx512_fp16", "amx_fp16")),
)


def torch_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None, device="cpu",
               channels_last=False, post_ops=()):
    """torch.nn.functional.conv{1,2,3}d (conv_transpose{1,2,3}d when output_padding is given), then the post-op
    chain as torch.nn.functional ops, and torch.autograd.grad, on `device`, in channels-last memory format if asked.

    step(x, w, b, dy, operands=()) -> (y, dx, dw, db[, {"dpost{k}": gradient}]): NumPy arrays in, NumPy arrays
    out (bfloat16 ones as float32). padding is (before, after) per dim: the symmetric non-negative part goes to the
    conv's own padding, the rest (asymmetric, or negative: a crop) is an F.pad of x before a convolution, of y
    after a transposed one. post_ops: per step (("kind", k), ("alpha", a), ...) as convparity.plugin's
    post_op_arguments gives them; operands[k] is step k's operand (None for an elementwise step), and the
    gradients of a sum's residual, a binary's src1 and prelu's slopes come back as "dpost{k}".
    """
    import numpy as np
    import torch

    functional = torch.nn.functional
    rank = len(stride)
    if device == "cuda":
        # Deterministic cuDNN without autotuning; IEEE float32 (no TF32) in convolutions and matmuls, and
        # float32 reductions for float16 and bfloat16 matmuls (which torch may pick for some convolutions).
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
        if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
            # torch >= 2.9: the legacy allow_tf32 flags must not be mixed with these.
            torch.backends.cudnn.conv.fp32_precision = "ieee"
            torch.backends.cuda.matmul.fp32_precision = "ieee"
        else:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False

    # e.g. ((1, 2), (-1, 0)) -> conv padding (1, 0), F.pad amounts (-1, 0, 0, 1) (last dim first)
    symmetric = tuple(max(min(before, after), 0) for before, after in padding)
    explicit = tuple(amount for (before, after), s in reversed(list(zip(padding, symmetric)))
                     for amount in (before - s, after - s))

    def formatted(tensor):
        """(N, C, *spatial) tensors in channels-last memory format, if asked."""
        if not channels_last or tensor.dim() != rank + 2:
            return tensor
        return tensor.contiguous(memory_format=torch.channels_last_3d if rank == 3 else torch.channels_last)

    def tensor(array):
        # torch.from_numpy cannot read ml_dtypes' bfloat16; float32 holds every bfloat16 value exactly.
        source = array.astype(np.float32) if array.dtype.name == "bfloat16" else np.ascontiguousarray(array)
        return formatted(torch.from_numpy(source).to(device=device, dtype=getattr(torch, dtype)))

    if output_padding is None:
        conv = (functional.conv1d, functional.conv2d, functional.conv3d)[rank - 1]

        def forward(x, w, b):
            padded = functional.pad(x, explicit) if any(explicit) else x
            return conv(formatted(padded), w, b, stride=stride, padding=symmetric, dilation=dilation, groups=groups)
    else:
        conv_transpose = (functional.conv_transpose1d, functional.conv_transpose2d,
                          functional.conv_transpose3d)[rank - 1]
        extends = any(amount < 0 for amount in explicit)  # F.pad of y: the opposite sign of a pad

        def forward(x, w, b):
            y = conv_transpose(x, w, None if extends else b, stride=stride, padding=symmetric,
                               output_padding=output_padding, groups=groups, dilation=dilation)
            if any(explicit):
                y = functional.pad(y, tuple(-amount for amount in explicit))
            if extends and b is not None:
                y = y + b.reshape((1, -1) + (1,) * rank)
            return y

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

    def numpy(tensor):
        tensor = tensor.detach().cpu()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()

    def step(x, w, b, dy, operands=(), quantization=None):
        x_t, w_t = tensor(x), tensor(w)
        b_t = None if b is None else tensor(b)
        operands_t = [None if r is None else tensor(r) for r in operands]
        if dy is None:  # no gradients asked for
            with torch.no_grad():
                return numpy(epilogue(forward(x_t, w_t, b_t), operands_t)), None, None, None
        leaves = [t.requires_grad_(True) for t in (x_t, w_t, b_t) if t is not None]
        leaves += [operands_t[k].requires_grad_(True) for k in differentiable]
        y_t = epilogue(forward(x_t, w_t, b_t), operands_t)
        grads = [numpy(g) for g in torch.autograd.grad(y_t, leaves, grad_outputs=tensor(dy), allow_unused=True,
                                                       materialize_grads=True)]
        grads, operand_grads = grads[:len(grads) - len(differentiable)], grads[len(grads) - len(differentiable):]
        dx, dw, db = grads if b is not None else (*grads, None)
        if not differentiable:
            return numpy(y_t), dx, dw, db
        return numpy(y_t), dx, dw, db, {f"dpost{k}": g for k, g in zip(differentiable, operand_grads)}

    return step


@lru_cache(maxsize=1024)
def built_step(backend, spec: ConvSpec) -> Callable:
    """`backend.program(spec)` built, once per backend and spec in this process (for torch-inductor, the build
    is the compile)."""
    return backend.program(spec).build()


@dataclass(frozen=True)
class TorchBackend:
    """One torch configuration: `device` "cpu" or "cuda", `channels_last` memory format or not."""

    name: str
    device: str = "cpu"
    channels_last: bool = False
    # The figures of the core's former cost table: fixed is the median `seconds` per case of a 2-core run of
    # the smoke and default grids in four dtypes (2026-12): torch 4 ms, torch-channels_last 2 ms (BACKENDS);
    # per_gflop a round 20 GFLOP/s for a CPU core; torch-cuda: torch's fixed cost, 1000 GFLOP/s.
    cost: BackendCost = BackendCost(0.004, 0.05)
    # Every kind of convparity's chains: torch.nn.functional has each of them (torch_conv's `epilogue`).
    post_ops: tuple[str, ...] = TORCH_POST_OPS

    @property
    def limits(self) -> tuple[Limit, ...]:
        return CHANNELS_LAST_LIMITS if self.channels_last else ()

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    @property
    def deviations(self) -> tuple[Deviation, ...]:
        return DEVIATIONS if self.device == "cpu" else ()

    @property
    def resources(self) -> dict[str, float]:
        """On a Dask cluster, `torch-cuda` runs on workers that offer a GPU (`dask worker --resources GPU=1`)."""
        return {"GPU": 1} if self.device == "cuda" else {}

    def availability(self) -> str | None:
        missing = TORCH.missing()
        if missing or self.device == "cpu":
            return missing
        torch = TORCH.load()
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            return f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, {built})"
        return None

    def version(self) -> str:
        torch = TORCH.load()
        if self.device == "cpu":
            return torch.__version__
        return (
            f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
            f"{torch.cuda.get_device_name()})"
        )

    def program(self, spec: ConvSpec) -> Program:
        return Program(torch_conv, program_arguments(spec, device=self.device, channels_last=self.channels_last))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy), and
        {"dpost{k}": gradient} for a chain with differentiable operands (extras.operands).

        Transposed: w (C, O/groups, *k). bfloat16 arrays are read as float32 (which torch.from_numpy can) by
        the program itself, which must run alone."""
        if extras is None or not spec.post_ops:
            return built_step(self, spec)(x, w, b, dy)
        return built_step(self, spec)(x, w, b, dy, operands=extras.operands)


BACKENDS = (
    TorchBackend("torch"),
    TorchBackend("torch-channels_last", channels_last=True, cost=BackendCost(0.002, 0.05)),
    TorchBackend("torch-cuda", device="cuda", cost=BackendCost(0.004, 0.001)),
)


@hookimpl
def convparity_register_backends(register):
    for backend in BACKENDS:
        register(backend)
