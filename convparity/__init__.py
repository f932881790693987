"""convparity: does a framework's convolution (y, dx, dw, db) agree with a float64 reference?

The public API, for scripts and notebooks (plugin authors import convparity.plugin instead):

    import convparity

    run = convparity.sweep(backends=["torch", "jax"], grids=["smoke"], dtypes=["float32"], jobs=2)
    print(run.summary)
    spec = convparity.parse_descriptor("mb2ic3ih5oc4kh3", dtype="float32")
    result, rows = convparity.evaluate_case("torch", spec)
    model = convparity.cases_from_model("keras:ResNet50")   # every conv layer of a model, read in a worker

The names below are imported on first use (PEP 562), so `import convparity` itself loads nothing heavy.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Installed, harness/, plugins/ and reference_impl/ are folders of this package (the wheel maps them here). In a
# checkout they sit beside this folder: a process started in the checkout's root (`python -m convparity`, whose
# working folder comes first on the path) finds them there, so it runs the checkout's code instead of failing.
_HERE = Path(__file__).resolve().parent
if not (_HERE / "harness").is_dir() and (_HERE.parent / "harness" / "__init__.py").is_file():
    __path__.append(str(_HERE.parent))

from convparity.harness import __version__  # noqa: E402 - after the path is complete

_PUBLIC = {
    "DTYPES": "convparity.harness.vocabulary",
    "ConvSpec": "convparity.harness.cases.spec",
    "Case": "convparity.harness.cases.descriptor",
    "DescriptorError": "convparity.harness.cases.descriptor",
    "format_descriptor": "convparity.harness.cases.descriptor",
    "parse_case": "convparity.harness.cases.descriptor",
    "parse_descriptor": "convparity.harness.cases.descriptor",
    "ConvparityError": "convparity.harness.errors",
    "read_results": "convparity.harness.results",
    "sweep": "convparity.harness.api",
    "resume": "convparity.harness.api",
    "search": "convparity.harness.api",
    "resume_search": "convparity.harness.api",
    "triage": "convparity.harness.api",
    "merge": "convparity.harness.api",
    "evaluate_case": "convparity.harness.api",
    "cases_from_model": "convparity.harness.api",
    "Model": "convparity.harness.cases.models",
}

__all__ = [
    "DTYPES", "Case", "ConvSpec", "ConvparityError", "DescriptorError", "Model", "__version__", "cases_from_model",
    "evaluate_case",
    "format_descriptor", "merge", "parse_case", "parse_descriptor", "read_results", "resume", "resume_search",
    "search", "sweep", "triage",
]

if TYPE_CHECKING:
    from convparity.harness.api import (
        cases_from_model,
        evaluate_case,
        merge,
        resume,
        resume_search,
        search,
        sweep,
        triage,
    )
    from convparity.harness.cases.descriptor import (
        Case,
        DescriptorError,
        format_descriptor,
        parse_case,
        parse_descriptor,
    )
    from convparity.harness.cases.models import Model
    from convparity.harness.cases.spec import ConvSpec
    from convparity.harness.errors import ConvparityError
    from convparity.harness.results import read_results
    from convparity.harness.vocabulary import DTYPES


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'convparity' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
