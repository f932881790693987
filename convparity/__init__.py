"""convparity: does a framework's convolution (y, dx, dw, db) agree with a float64 reference?

The public names below are imported on first use (PEP 562), so `from convparity import Limit` in a
plugin loads the limits module alone, not NumPy-heavy evaluation or pandas-heavy reporting.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "DTYPES": "convparity.harness.cases.spec",
    "ConvSpec": "convparity.harness.cases.spec",
    "Case": "convparity.harness.cases.descriptor",
    "DescriptorError": "convparity.harness.cases.descriptor",
    "format_descriptor": "convparity.harness.cases.descriptor",
    "parse_case": "convparity.harness.cases.descriptor",
    "parse_descriptor": "convparity.harness.cases.descriptor",
    "Backend": "convparity.harness.backends.contract",
    "Unsupported": "convparity.harness.backends.limits",
    "Limit": "convparity.harness.backends.limits",
    "hookimpl": "convparity.harness.backends.hookspecs",
    "Deviation": "convparity.harness.backends.deviations",
    "read_results": "convparity.harness.results",
    "sweep": "convparity.harness.running.sweep",
    "resume": "convparity.harness.running.sweep",
    "evaluate_case": "convparity.harness.evaluation.verdict",
}

__all__ = [
    "DTYPES", "Backend", "Case", "ConvSpec", "DescriptorError", "Deviation", "Limit", "Unsupported",
    "evaluate_case", "format_descriptor", "hookimpl", "parse_case", "parse_descriptor", "read_results", "resume",
    "sweep",
]

if TYPE_CHECKING:
    from convparity.harness.backends.contract import Backend
    from convparity.harness.backends.deviations import Deviation
    from convparity.harness.backends.hookspecs import hookimpl
    from convparity.harness.backends.limits import Limit, Unsupported
    from convparity.harness.cases.descriptor import (
        Case,
        DescriptorError,
        format_descriptor,
        parse_case,
        parse_descriptor,
    )
    from convparity.harness.cases.spec import DTYPES, ConvSpec
    from convparity.harness.evaluation.verdict import evaluate_case
    from convparity.harness.results import read_results
    from convparity.harness.running.sweep import resume, sweep


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'convparity' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
