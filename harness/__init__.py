"""convparity: does a framework's convolution (y, dx, dw, db) agree with a float64 reference?"""

from harness.backend import Backend, Unsupported
from harness.descriptor import Case, DescriptorError, format_descriptor, parse_case, parse_descriptor
from harness.hookspecs import hookimpl
from harness.spec import DTYPES, ConvSpec

__version__ = "0.1.0"

__all__ = [
    "DTYPES",
    "Backend",
    "Case",
    "ConvSpec",
    "DescriptorError",
    "Unsupported",
    "format_descriptor",
    "hookimpl",
    "parse_case",
    "parse_descriptor",
]
