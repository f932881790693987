"""`convparity new-backend`: the rendered package, its backend against the reference, its own contract
suite run as generated, and every bad argument as one line naming it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from convparity.harness import cli
from convparity.harness.plugin_template.render import TemplateError, backend_name, framework_module, new_backend
from convparity.harness.vocabulary import DTYPES
from tests.plugins.backend_checks import EXTRA_SPECS, disagreements

ROOT = Path(__file__).resolve().parents[3]
GENERATED_FILES = {
    "pyproject.toml", "README.md", "tox.ini", ".gitignore", ".github/workflows/tests.yml", "tests/test_backend.py",
    "convparity_demo/__init__.py", "convparity_demo/backend.py", "convparity_demo/declarations.py",
    "convparity_demo/numpy_conv.py",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return new_backend("demo", tmp_path_factory.mktemp("generated") / "convparity-demo")


@pytest.fixture(scope="module")
def demo_backend(demo):
    """The generated backend, imported from the rendered folder (not installed)."""
    sys.path.insert(0, str(demo))
    try:
        module = importlib.import_module("convparity_demo.backend")
        yield module.DemoBackend()
    finally:
        sys.path.remove(str(demo))
        for name in [m for m in sys.modules if m.split(".")[0] == "convparity_demo"]:
            del sys.modules[name]


def test_renders_a_package_with_the_entry_point(demo):
    assert {str(p.relative_to(demo)) for p in demo.rglob("*") if p.is_file()} == GENERATED_FILES
    project = tomllib.loads((demo / "pyproject.toml").read_text())["project"]
    assert project["name"] == "convparity-demo"
    assert project["entry-points"]["convparity"] == {"demo": "convparity_demo.backend"}
    assert project["dependencies"][0].startswith("convparity>=")
    assert "{{" not in "".join(p.read_text() for p in demo.rglob("*") if p.is_file())


def test_generated_backend_agrees_with_the_reference_where_the_smoke_grid_does_not_reach(demo_backend):
    """Crops on either side, one-sided pads with stride and dilation, grouped 3-D, depthwise without bias."""
    for dtype in DTYPES:
        assert disagreements(demo_backend, EXTRA_SPECS, dtype) == []


def test_generated_contract_suite_passes_as_generated(demo):
    """The package's own tests, registered by import path (CONVPARITY_EXTRA_PLUGINS) instead of installing it."""
    environment = {**os.environ, "CONVPARITY_EXTRA_PLUGINS": "convparity_demo.backend",
                   "CONVPARITY_PLUGINS": "reference", "PYTHONPATH": os.pathsep.join([str(ROOT), str(demo)])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=demo, env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # 5 contract checks (its program runs alone) + 24 smoke cases x 4 dtypes, every one a pass
    assert "101 passed" in done.stdout.splitlines()[-1], done.stdout[-2000:]


def test_framework_is_a_dependency_and_its_absence_a_reason(tmp_path):
    path = new_backend("no-fw", tmp_path / "pkg", framework="convparity-no-such-framework")
    project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    assert "convparity-no-such-framework" in project["dependencies"]
    sys.path.insert(0, str(path))
    try:
        backend = importlib.import_module("convparity_no_fw.backend").NoFwBackend()
        assert backend.availability().startswith(
            "convparity-no-such-framework is not installed (pip install convparity-no-such-framework)")
    finally:
        sys.path.remove(str(path))
        for name in [m for m in sys.modules if m.split(".")[0] == "convparity_no_fw"]:
            del sys.modules[name]


@pytest.mark.parametrize(("distribution", "module"), [("PyYAML", "yaml"), ("pluggy", "pluggy"),
                                                      ("not-installed-here", "not_installed_here")])
def test_framework_import_name_comes_from_its_metadata(distribution, module):
    assert framework_module(distribution) == module


@pytest.mark.parametrize(("given", "normalised"), [("demo", "demo"), ("My_Conv", "my-conv"), ("a.b__c", "a-b-c"),
                                                   ("convparity-x2", "x2")])
def test_names_are_normalised_as_package_indexes_compare_them(given, normalised):
    assert backend_name(given) == normalised


@pytest.mark.parametrize("bad", ["", "2d", "-x", "conv!", "my conv", "ünï", "convparity-"])
def test_bad_name_names_the_field(bad):
    with pytest.raises(TemplateError, match="^NAME .* is not a backend name"):
        backend_name(bad)


def test_an_empty_target_folder_is_used_a_non_empty_one_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert (new_backend("demo", tmp_path / "empty") / "pyproject.toml").is_file()
    with pytest.raises(TemplateError, match=r"^--dir .* exists and is not an empty folder"):
        new_backend("demo", tmp_path / "empty")
    (tmp_path / "file").write_text("")
    with pytest.raises(TemplateError, match=r"^--dir "):
        new_backend("demo", tmp_path / "file")


def test_a_registered_name_is_refused(tmp_path):
    with pytest.raises(TemplateError, match="^NAME 'reference': a backend of that name is already registered"):
        new_backend("reference", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_without_copier_it_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "copier", None)  # makes `import copier` raise ImportError
    with pytest.raises(TemplateError, match=r"^convparity new-backend needs Copier: pip install 'convparity\[template"):
        new_backend("demo", tmp_path / "x")


def test_cli_creates_the_package_and_says_what_next(tmp_path, capsys):
    assert cli.main(["new-backend", "My_Conv", "--dir", str(tmp_path / "pkg")]) == 0
    assert (tmp_path / "pkg" / "convparity_my_conv" / "backend.py").is_file()
    assert f"pip install -e '{tmp_path / 'pkg'}[test]'" in capsys.readouterr().out


@pytest.mark.parametrize(("arguments", "field"), [(["bad name"], "NAME"), (["x", "--framework", "a b"], "--framework")])
def test_cli_bad_arguments_are_one_line_naming_the_field(tmp_path, capsys, arguments, field):
    assert cli.main(["new-backend", *arguments, "--dir", str(tmp_path / "pkg")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"convparity: error: {field} ") and error.count("\n") == 1
    assert not (tmp_path / "pkg").exists()
