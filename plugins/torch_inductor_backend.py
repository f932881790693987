"""Backend `torch-inductor`: the torch backend's forward compiled by torch.compile (Inductor, CPU).

The function compiled is convparity.plugins.torch_backend's `conv_function(spec)` (F.pad, then F.conv{1,2,3}d), so
the two backends differ only in the compiler. `torch.compile(..., fullgraph=True, dynamic=False)` hands
the whole forward to AOTAutograd, which derives the backward graph and compiles both with Inductor:
`torch.autograd.grad` then runs Inductor's generated code for dx, dw and db too. (Inductor keeps the
convolution itself as an extern call to ATen's kernel and generates the pad, bias and layout code around
it; a graph of extern calls alone, e.g. a symmetric pad and a bias, becomes Python with no C++ to
compile.) One compiled function per spec, cached and reused; its first call compiles, later calls do not.

Dynamo keeps compiled graphs per code object, and every spec compiles the same `forward` code, so its
recompile limit is raised far above any grid and hitting it is an error instead of a silent fall back to
eager. A compile failure (Inductor's C++ compiler missing or failing, a lowering error) raises as it is,
so the case is an `error` row with the compiler's message. Inductor compiles in this process
(`compile_threads = 1` where the runner gives a worker one thread), never in a pool that could die.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import CONVOLUTION_ONLY, Limit
from convparity.harness.cases.spec import ConvSpec
from convparity.plugins.torch_backend import TorchBackend, _torch, conv_function

# Far above any grid's spec count; dynamo counts recompiles of one code object against it.
RECOMPILE_LIMIT = 100_000


@cache
def _configured_torch():
    """torch with dynamo and Inductor set for one compile per spec (see the module docstring)."""
    torch = _torch()
    from torch._dynamo import config as dynamo_config
    from torch._inductor import config as inductor_config

    dynamo_config.recompile_limit = RECOMPILE_LIMIT
    dynamo_config.accumulated_recompile_limit = RECOMPILE_LIMIT
    dynamo_config.fail_on_recompile_limit_hit = True
    if os.environ.get("OMP_NUM_THREADS") == "1":
        inductor_config.compile_threads = 1
    return torch


@lru_cache(maxsize=1024)
def compiled_forward(spec: ConvSpec) -> Callable:
    """conv_function(spec) compiled by Inductor; compilation happens at its first call."""
    torch = _configured_torch()
    return torch.compile(conv_function(spec), backend="inductor", fullgraph=True, dynamic=False)


def cxx_compiler_problem() -> str | None:
    """Why Inductor cannot compile C++ here (its own InvalidCxxCompiler message), or None."""
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler as error:
        return f"Inductor has no C++ compiler: {error}"
    return None


@dataclass(frozen=True)
class TorchInductorBackend(TorchBackend):
    """TorchBackend on the CPU whose forward (and so backward) is compiled by Inductor."""

    @property
    def limits(self) -> tuple[Limit, ...]:
        return (CONVOLUTION_ONLY,)

    def availability(self) -> str | None:
        return super().availability() or cxx_compiler_problem()

    def version(self) -> str:
        from torch._inductor import cpp_builder

        return f"{_torch().__version__} (Inductor, CPU, C++ compiler {cpp_builder.get_cpp_compiler()})"

    def forward(self, spec: ConvSpec) -> Callable:
        return compiled_forward(spec)


@hookimpl
def convparity_register_backends(register):
    register(TorchInductorBackend("torch-inductor"))
