"""Registering the framework backends imports no framework: only asking a backend about itself does."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = {"torch": "torch", "jax": "jax", "onnxruntime": "onnxruntime", "torch-inductor": "torch",
              "openvino": "openvino", "paddle": "paddle", "mlx": "mlx", "tinygrad": "tinygrad"}


@pytest.mark.parametrize(("backend", "module"), FRAMEWORKS.items())
def test_framework_is_imported_only_when_the_backend_is_asked(backend, module):
    pytest.importorskip(module)
    script = (
        "import sys\n"
        "from convparity.harness.backends.manager import PluginManager\n"
        f"backend = PluginManager({{'reference', {backend!r}}}).backends()[{backend!r}]\n"
        f"print({module!r} in sys.modules)\n"
        "assert backend.availability() is None\n"
        f"print({module!r} in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
