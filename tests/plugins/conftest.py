"""Framework tests: collected without importing any framework, and run one framework family per process.

A module of framework tests marks itself `pytestmark = pytest.mark.framework("torch")` and imports its
framework only inside tests and fixtures (the `framework_module` helper below). Then
`pytest --collect-only tests` imports no framework at all, whatever is installed, and:

- a test of a framework that is not installed is skipped, saying which extra installs it;
- a test of a framework family other than the first one this process imported is skipped too: some
  frameworks crash when imported after others (paddle after torch, tensorflow and jax segfaults), so
  each family's tests run in a process of their own (its tox environment: `tox -e NAME`).
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest

# marker name -> (module whose presence says it is installed, family, convparity extra)
FRAMEWORKS = {
    "torch": ("torch", "torch", "torch"),
    "torch-inductor": ("torch", "torch", "torch-inductor"),
    "tensorflow": ("tensorflow", "tensorflow", "tensorflow"),
    "keras": ("keras", "tensorflow", "keras"),
    "jax": ("jax", "jax", "jax"),
    "onnxruntime": ("onnxruntime", "onnxruntime", "onnxruntime"),
    "openvino": ("openvino", "openvino", "openvino"),
    "paddle": ("paddle", "paddle", "paddle"),
    "mlx": ("mlx", "mlx", "mlx"),
    "tinygrad": ("tinygrad", "tinygrad", "tinygrad"),
    "iree": ("iree.compiler", "iree", "iree"),
    "tvm": ("tvm", "tvm", "tvm"),
}
_FIRST_FAMILY: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "framework(name): the test needs this framework (see tests/plugins/conftest.py)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("framework")
    if marker is None:
        return
    module, family, extra = FRAMEWORKS[marker.args[0]]
    if not installed(module):
        pytest.skip(f"{module} is not installed (pip install 'convparity[{extra}]')")
    if _FIRST_FAMILY and _FIRST_FAMILY[0] != family:
        pytest.skip(f"this process already ran {_FIRST_FAMILY[0]} tests; {family} tests run in a process of their "
                    f"own (tox -e {extra}): some frameworks crash when imported after others")
    if not _FIRST_FAMILY:
        _FIRST_FAMILY.append(family)


def installed(module: str) -> bool:
    """Whether `module` imports here, looked up without importing it (a dotted name's parent first: find_spec
    of "iree.compiler" raises where "iree" is missing)."""
    parent = module.partition(".")[0]
    return importlib.util.find_spec(parent) is not None and importlib.util.find_spec(module) is not None


def framework_module(name: str):
    """The framework module `name` (imported now, inside a test: never at collection)."""
    return importlib.import_module(name)
