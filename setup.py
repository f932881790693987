"""The one build step pyproject.toml cannot declare: record the git commit the package is built from.

`build_py` writes convparity/harness/_build.py into the build (never into the checkout) with COMMIT, the
checkout's HEAD ("" when it is built from no git checkout, e.g. from an sdist). run.json's
`harness_commit` reads it where convparity runs from an installed wheel (tox, pip install .), since a
local wheel build has no direct_url.json commit to read (convparity.harness.running.run_folder).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def checkout_commit() -> str:
    """HEAD of the checkout this file is in, or "" when there is none (or git is missing)."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else ""


class BuildWithCommit(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "convparity" / "harness" / "_build.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text('"""Written by convparity\'s setup.py when this package was built."""\n\n'
                          f"COMMIT = {checkout_commit()!r}\n", encoding="utf-8")


setup(cmdclass={"build_py": BuildWithCommit})
