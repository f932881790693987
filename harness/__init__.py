"""convparity: does a framework's convolution (y, dx, dw, db) agree with a float64 reference?

The public names below are imported on first use (PEP 562), so `from harness import Limit` in a
plugin loads the limits module alone, not NumPy-heavy evaluation or pandas-heavy reporting.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "DTYPES": "harness.cases.spec",
    "ConvSpec": "harness.cases.spec",
    "Case": "harness.cases.descriptor",
    "DescriptorError": "harness.cases.descriptor",
    "format_descriptor": "harness.cases.descriptor",
    "parse_case": "harness.cases.descriptor",
    "parse_descriptor": "harness.cases.descriptor",
    "Backend": "harness.backends.contract",
    "Unsupported": "harness.backends.limits",
    "Limit": "harness.backends.limits",
    "hookimpl": "harness.backends.hookspecs",
    "Deviation": "harness.backends.deviations",
    "read_results": "harness.results",
    "sweep": "harness.running.sweep",
    "resume": "harness.running.sweep",
    "evaluate_case": "harness.evaluation.verdict",
}

__all__ = [
    "DTYPES", "Backend", "Case", "ConvSpec", "DescriptorError", "Deviation", "Limit", "Unsupported",
    "evaluate_case", "format_descriptor", "hookimpl", "parse_case", "parse_descriptor", "read_results", "resume",
    "sweep",
]

if TYPE_CHECKING:
    from harness.backends.contract import Backend
    from harness.backends.deviations import Deviation
    from harness.backends.hookspecs import hookimpl
    from harness.backends.limits import Limit, Unsupported
    from harness.cases.descriptor import Case, DescriptorError, format_descriptor, parse_case, parse_descriptor
    from harness.cases.spec import DTYPES, ConvSpec
    from harness.evaluation.verdict import evaluate_case
    from harness.results import read_results
    from harness.running.sweep import resume, sweep


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
