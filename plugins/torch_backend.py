"""Backends `torch`, `torch-channels_last` and `torch-cuda`: torch.nn.functional.conv{1,2,3}d and autograd.

All three share one code path and differ only in device and memory format:

- `torch`: CPU, contiguous (NCHW) tensors.
- `torch-channels_last`: CPU, input, weight and upstream gradient in `channels_last` (2-D) or
  `channels_last_3d` (3-D) memory format, which selects different kernels; 1-D convolutions have no
  such format and are unsupported.
- `torch-cuda`: the first CUDA device, with deterministic cuDNN, no benchmark autotuning and TF32 off
  for convolutions and matmuls, so float32 means IEEE float32. Unavailable without a GPU.

(`torch-inductor`, in plugins/torch_inductor_backend.py, compiles this module's `conv_function`.)

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
from functools import cache
from types import ModuleType

import numpy as np

from convparity.harness.backends.contract import Outputs, missing_framework
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import DeclaredLimits, Limit
from convparity.harness.cases.spec import ConvSpec
from convparity.plugin import Deviation, cpu_without

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


@cache
def _torch() -> ModuleType:
    import torch

    return torch


def split_padding(padding: tuple[tuple[int, int], ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(conv padding per dim, F.pad amounts) for per-dim (before, after) pairs.

    The conv takes the symmetric non-negative part s = max(min(before, after), 0); F.pad takes the
    rest, last dim first as (before, after) pairs, e.g. ((1, 2), (-1, 0)) -> ((1, 0), (-1, 0, 0, 1)).
    F.pad amounts are all zero when the padding is symmetric and non-negative.
    """
    symmetric = tuple(max(min(before, after), 0) for before, after in padding)
    explicit = tuple(
        amount
        for (before, after), s in reversed(list(zip(padding, symmetric, strict=True)))
        for amount in (before - s, after - s)
    )
    return symmetric, explicit


def conv_function(spec: ConvSpec, formatted: Callable | None = None) -> Callable:
    """forward(x, w, b) -> y for `spec`: F.pad by split_padding's explicit part, then F.conv{1,2,3}d.

    x (N, C, *in), w (O, C/groups, *k), b (O,) or None -> y (N, O, *out), as torch tensors.
    `formatted`, when given, puts the padded input in a memory format before the convolution.
    The function reads only its arguments and constants, so torch.compile can trace it whole.
    """
    functional = _torch().nn.functional
    conv = (functional.conv1d, functional.conv2d, functional.conv3d)[spec.rank - 1]
    symmetric, explicit = split_padding(spec.padding)

    def forward(x, w, b):
        padded = functional.pad(x, explicit) if any(explicit) else x
        return conv(padded if formatted is None else formatted(padded), w, b, stride=spec.stride, padding=symmetric,
                    dilation=spec.dilation, groups=spec.groups)

    return forward


@dataclass(frozen=True)
class TorchBackend(DeclaredLimits):
    """One torch configuration: `device` "cpu" or "cuda", `channels_last` memory format or not."""

    name: str
    device: str = "cpu"
    channels_last: bool = False

    @property
    def limits(self) -> tuple[Limit, ...]:
        return CHANNELS_LAST_LIMITS if self.channels_last else ()

    @property
    def deviations(self) -> tuple[Deviation, ...]:
        return DEVIATIONS if self.device == "cpu" else ()

    @property
    def resources(self) -> dict[str, float]:
        """On a Dask cluster, `torch-cuda` runs on workers that offer a GPU (`dask worker --resources GPU=1`)."""
        return {"GPU": 1} if self.device == "cuda" else {}

    def availability(self) -> str | None:
        missing = missing_framework(_torch, "torch", "torch")
        if missing or self.device == "cpu":
            return missing
        torch = _torch()
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            return f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, {built})"
        return None

    def version(self) -> str:
        torch = _torch()
        if self.device == "cpu":
            return torch.__version__
        return (
            f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
            f"{torch.cuda.get_device_name()})"
        )

    def run(
        self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray
    ) -> Outputs:
        """x (N, C, *in), w (O, C/groups, *k), b (O,) or None, dy (N, O, *out) -> y, dx, dw, db (NumPy).

        Transposed: w (C, O/groups, *k)."""
        torch = _torch()
        if self.device == "cuda":
            _ieee_deterministic_cuda()
        x_t, w_t, dy_t = (self._tensor(a, spec) for a in (x, w, dy))
        b_t = None if b is None else self._tensor(b, spec)
        leaves = [t for t in (x_t, w_t, b_t) if t is not None]
        for leaf in leaves:
            leaf.requires_grad_(True)
        y_t = self.forward(spec)(x_t, w_t, b_t)
        grads = [_numpy(g) for g in torch.autograd.grad(y_t, leaves, grad_outputs=dy_t)]
        dx, dw, db = grads if b is not None else (*grads, None)
        return _numpy(y_t), dx, dw, db

    def _transposed(self, spec: ConvSpec, x_t, w_t, b_t):
        """y (N, C_out, *out) of x (N, C_in, *in), w (C_in, C_out/groups, *k), b (C_out,) or None (see module)."""
        torch = _torch()
        functional = torch.nn.functional
        conv_transpose = (functional.conv_transpose1d, functional.conv_transpose2d,
                          functional.conv_transpose3d)[spec.rank - 1]
        symmetric, explicit = split_padding(spec.padding)
        extends = any(amount < 0 for amount in explicit)  # F.pad of y: the opposite sign of a pad
        y_t = conv_transpose(x_t, w_t, None if extends else b_t, stride=spec.stride, padding=symmetric,
                             output_padding=spec.output_padding, groups=spec.groups, dilation=spec.dilation)
        if any(explicit):
            y_t = functional.pad(y_t, tuple(-amount for amount in explicit))
        if extends and b_t is not None:
            y_t = y_t + b_t.reshape((1, -1) + (1,) * spec.rank)
        return y_t

    def forward(self, spec: ConvSpec) -> Callable:
        """The function y = forward(x, w, b) this backend runs for `spec`; autograd differentiates it."""
        if spec.transposed:
            return lambda x_t, w_t, b_t: self._transposed(spec, x_t, w_t, b_t)
        if not self.channels_last:
            return conv_function(spec)
        return conv_function(spec, lambda padded: self._formatted(padded, spec))

    def _tensor(self, array: np.ndarray, spec: ConvSpec):
        """The array as a torch tensor of spec.dtype on the device, in this backend's memory format."""
        torch = _torch()
        dtype = getattr(torch, spec.dtype)
        # torch.from_numpy cannot read ml_dtypes.bfloat16; float32 holds every bfloat16 value exactly.
        source = array.astype(np.float32) if spec.dtype == "bfloat16" else np.ascontiguousarray(array)
        return self._formatted(torch.from_numpy(source).to(device=self.device, dtype=dtype), spec)

    def _formatted(self, tensor, spec: ConvSpec):
        """`tensor` in channels-last memory format if this backend uses it and it is (N, C, *spatial)."""
        if not self.channels_last or tensor.dim() != spec.rank + 2:
            return tensor
        torch = _torch()
        memory_format = torch.channels_last_3d if spec.rank == 3 else torch.channels_last
        return tensor.contiguous(memory_format=memory_format)


def _numpy(tensor) -> np.ndarray:
    """The tensor as a NumPy array (moved to the CPU); bfloat16 as float32 holding the same values."""
    torch = _torch()
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


@cache
def _ieee_deterministic_cuda() -> None:
    """Once per process: deterministic cuDNN without autotuning, TF32 off for convs and matmuls.

    Matmuls (which torch may pick for some convolutions) also keep float16 and bfloat16 reductions
    in float32, the accumulation the comparison bound assumes.
    """
    torch = _torch()
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


BACKENDS = (
    TorchBackend("torch"),
    TorchBackend("torch-channels_last", channels_last=True),
    TorchBackend("torch-cuda", device="cuda"),
)


@hookimpl
def convparity_register_backends(register):
    for backend in BACKENDS:
        register(backend)
