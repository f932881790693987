"""Registering the framework backends, and asking them for their workers' variables, imports no framework: only
asking a backend about itself does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.plugins.conftest import installed

FRAMEWORKS = {"torch": "torch", "jax": "jax", "onnxruntime": "onnxruntime", "torch-inductor": "torch",
              "openvino": "openvino", "paddle": "paddle", "mlx": "mlx", "tinygrad": "tinygrad",
              "iree": "iree.compiler", "tvm": "tvm"}


@pytest.mark.parametrize(("backend", "module"), FRAMEWORKS.items())
def test_framework_is_imported_only_when_the_backend_is_asked(backend, module):
    # Looked up, not imported: this process may run another framework's tests (tests/plugins/conftest.py).
    if not installed(module):
        pytest.skip(f"{module} is not installed")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from convparity.harness.backends.manager import PluginManager\n"
        f"backend = PluginManager({{'reference', {backend!r}}}).backends()[{backend!r}]\n"
        "for member, arguments in (('thread_environment', (1,)), ('cache_environment', (Path('/nowhere'), {})),\n"
        "                          ('cache_environment', (None, {}))):\n"
        "    if getattr(backend, member, None) is not None:\n"
        "        getattr(backend, member)(*arguments)\n"
        f"print({module!r} in sys.modules)\n"
        "assert backend.availability() is None\n"
        f"print({module!r} in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]


def test_model_readers_import_no_framework_until_they_read():
    """Registering the model readers and asking which one claims a source imports no framework: only reading does
    (in a worker of the reader's own)."""
    script = (
        "import sys\n"
        "from convparity.harness.backends.manager import PluginManager\n"
        "readers = PluginManager().model_readers()\n"
        "claimed = {s: [n for n, r in readers.items() if r.claims(s)] for s in\n"
        "           ('keras:ResNet50', 'm.keras', 'm.onnx', 'torch:a.b:c', 'timm:x', 'torchvision:y')}\n"
        "print(sorted(readers), claimed)\n"
        "print([m for m in ('torch', 'onnx', 'keras', 'tensorflow') if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    claimed, imported = result.stdout.splitlines()
    assert claimed == ("['keras', 'onnx', 'torch'] {'keras:ResNet50': ['keras'], 'm.keras': ['keras'], "
                       "'m.onnx': ['onnx'], 'torch:a.b:c': ['torch'], 'timm:x': ['torch'], "
                       "'torchvision:y': ['torch']}")
    assert imported == "[]"
