"""Everything a convparity backend plugin uses, in one module: the only one of convparity a plugin imports.

    from convparity.plugin import ConvSpec, DeclaredLimits, Framework, Outputs, hookimpl

    class MyBackend(DeclaredLimits):
        name = "mylib"
        ...

    @hookimpl
    def convparity_register_backends(register):
        register(MyBackend())

A model reader (`--model SOURCE`) registers with `convparity_register_model_readers` and returns a `Model` of
`ModelLayer`s, each a `ConvSpec` with its epilogue as `PostOp`s and its `Quantization` (see
convparity.harness.backends.model_readers); it raises `ModelReadError` for input it cannot read.

The contract itself (every member, required and optional) is documented in
convparity.harness.backends.contract and docs/writing-a-backend.md; the built-in plugins in
convparity.plugins use this module and nothing else of the harness. `BackendContract`, the pytest
suite every backend's tests reuse, is imported on first use (it needs pytest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convparity.harness.backends.contract import Backend, Outputs
from convparity.harness.backends.deviations import Deviation, Platform, PlatformRule, cpu_with, cpu_without
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.backends.limits import CONVOLUTION_ONLY, DeclaredLimits, Limit, Unsupported, first_limit
from convparity.harness.backends.plugin_kit import (
    BuildClock,
    Framework,
    Probe,
    dtype_probes,
    installed_version,
    post_op_arguments,
    probed_limits,
    program_arguments,
    tiny_spec,
    widened,
)
from convparity.harness.backends.program import BackendCost, Program
from convparity.harness.cases.attributes import PER_CHANNEL, Quantization
from convparity.harness.cases.descriptor import parse_case
from convparity.harness.cases.inputs import Extras
from convparity.harness.cases.models import Model, ModelLayer, ModelReadError, ReadOptions, write_weights
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DATA_TYPES, DTYPES, UNIT_ROUNDOFF, DType, numpy_dtype
from convparity.reference_impl.post_ops import KINDS as POST_OP_KINDS
from convparity.reference_impl.post_ops import PostOp
from convparity.reference_impl.quantized import ROUNDING_MODES

if TYPE_CHECKING:
    from convparity.harness.testing.contract_suite import BackendContract

__all__ = [
    "CONVOLUTION_ONLY", "DATA_TYPES", "DTYPES", "PER_CHANNEL", "POST_OP_KINDS", "ROUNDING_MODES", "UNIT_ROUNDOFF",
    "Backend", "BackendContract", "BackendCost", "BuildClock", "ConvSpec", "DType", "DeclaredLimits", "Deviation",
    "Extras", "Framework", "Limit", "Model", "ModelLayer", "ModelReadError", "Outputs", "Platform", "PlatformRule",
    "PostOp", "Probe", "Program", "Quantization", "ReadOptions", "Unsupported", "cpu_with", "cpu_without",
    "dtype_probes", "first_limit", "hookimpl", "installed_version", "numpy_dtype", "parse_case", "post_op_arguments",
    "probed_limits", "program_arguments", "tiny_spec", "widened", "write_weights",
]


def __getattr__(name: str) -> Any:
    if name == "BackendContract":
        from convparity.harness.testing.contract_suite import BackendContract

        return BackendContract
    raise AttributeError(f"module 'convparity.plugin' has no attribute {name!r}")
