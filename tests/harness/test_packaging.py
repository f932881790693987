"""What is installed: one top-level package, `convparity`, mapped from the repository's harness/, plugins/ and
reference_impl/ folders; every package folder listed in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def configuration() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed():
    mapping = configuration()["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            if "project" in relative.parts:  # the plugin template's files are data
                continue
            found.add(".".join([package, *relative.parts]))
    assert sorted(configuration()["packages"]) == sorted(found)


@pytest.mark.slow
def test_the_wheel_installs_convparity_alone(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("convparity-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"convparity", wheel.name.split("-py")[0] + ".dist-info"}
    assert "convparity/harness/running/worker.py" in names and "convparity/plugins/torch_backend.py" in names
    assert "convparity/py.typed" in names and "convparity/harness/plugin_template/copier.yml" in names
    assert "convparity/harness/cases/batch_files/onednn/harness_conv_regression_general" in names
    assert "convparity/harness/cases/batch_files/onednn/LICENSE" in names
    # the build records the commit it was built from (run.json's harness_commit reads it when installed)
    built = zipfile.ZipFile(wheel).read("convparity/harness/_build.py").decode()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert f"COMMIT = {head!r}" in built and len(head) == 40


def test_an_installed_package_reports_the_commit_its_build_recorded(monkeypatch):
    import types

    from convparity.harness.running import run_folder

    monkeypatch.setitem(sys.modules, "convparity.harness._build", types.SimpleNamespace(COMMIT="a" * 40))
    assert run_folder._built_commit() == "a" * 40
    monkeypatch.setitem(sys.modules, "convparity.harness._build", types.SimpleNamespace(COMMIT=""))
    assert run_folder._built_commit() == ""  # then the metadata: an editable install from a folder records none
