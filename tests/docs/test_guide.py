"""docs/writing-a-backend.md's quick start, run literally: the commands of its first console block, one by
one, in one shell, in a fresh folder and a fresh virtual environment.

One substitution: the guide's first line names where the reader's checkout of convparity is; here it is
this checkout. The commands need the package index for convparity's dependencies, so
the run itself is left to `tox -e new-backend` (which sets CONVPARITY_GUIDE_TEST=1); it prints how
long each step took and the time from `convparity new-backend` to a passing contract suite.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "writing-a-backend.md"
MARKER = "<!-- tests/docs/test_guide.py runs the commands of the next block"
CHECKOUT = "CONVPARITY=~/src/convparity"
INSTALL = 'pip install "$CONVPARITY[template]"'
BACKEND = "demo"


def guide_commands() -> list[str]:
    """The `$ ` lines of the console block after MARKER, without the prompt."""
    text = DOCS.read_text()
    block = re.search(r"```console\n(.*?)```", text[text.index(MARKER):], flags=re.DOTALL)
    assert block, f"{DOCS}: no console block after the marker"
    return [line[2:] for line in block[1].splitlines() if line.startswith("$ ")]


def step_of(commands: list[str], start: str) -> int:
    (index,) = [i for i, command in enumerate(commands) if start in command]
    return index


def test_the_quick_start_is_the_walk_this_test_takes():
    """What the slow test relies on: a fresh venv first, one install to substitute, the steps it checks."""
    commands = guide_commands()
    assert commands[0].startswith(CHECKOUT) and commands[1].startswith("python -m venv ")
    assert sum(INSTALL in command for command in commands) == 1
    for start in (f"convparity new-backend {BACKEND}", "pytest", "convparity backends", f"convparity run -b {BACKEND}"):
        step_of(commands, start)


@pytest.mark.skipif(not os.environ.get("CONVPARITY_GUIDE_TEST"),
                    reason="needs the package index and a few minutes: tox -e new-backend")
def test_quick_start_in_a_fresh_virtual_environment(tmp_path):
    commands = [command.replace(CHECKOUT, f"CONVPARITY={shlex.quote(str(ROOT))}") for command in guide_commands()]
    timeline = tmp_path / "timeline"
    script = ["set -euo pipefail"]
    for index, command in enumerate(commands):
        script += [f"echo {index} $(date +%s.%N) >> {timeline}",
                   f"{{ {command}\n}} > {tmp_path}/step-{index}.log 2>&1"]
    script.append(f"echo {len(commands)} $(date +%s.%N) >> {timeline}")
    work = tmp_path / "work"
    work.mkdir()
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("CONVPARITY_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "TOX"))}
    environment = {**keep, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
                   "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_PROGRESS_BAR": "off", "MPLBACKEND": "Agg"}
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=environment, capture_output=True,
                          text=True, timeout=900)
    marks = [float(line.split()[1]) for line in timeline.read_text().splitlines()]
    logs = [(tmp_path / f"step-{i}.log").read_text() if (tmp_path / f"step-{i}.log").exists() else ""
            for i in range(len(commands))]
    failed = len(marks) - 1
    assert done.returncode == 0, f"step {failed} `{commands[failed]}` failed:\n{logs[failed][-4000:]}\n{done.stderr}"

    new, tests = step_of(commands, "convparity new-backend"), step_of(commands, "pytest")
    print()
    for index, command in enumerate(commands):
        print(f"{marks[index + 1] - marks[index]:7.1f} s  $ {command}")
    print(f"{marks[tests + 1] - marks[new]:7.1f} s  from `convparity new-backend` to a passing contract suite")

    assert re.search(r"^=+ 101 passed", logs[tests], flags=re.MULTILINE), logs[tests][-3000:]
    assert re.search(rf"^{BACKEND} +0\.1\.0 \(numpy ", logs[step_of(commands, "convparity backends")],
                     flags=re.MULTILINE)
    (results,) = (work / f"convparity-{BACKEND}" / "reports").glob("*/results.csv")
    with results.open() as file:
        rows = list(csv.DictReader(file))
    assert {row["backend"] for row in rows} == {BACKEND} and len(rows) > 0
    assert {row["status"] for row in rows} == {"pass"}, [r for r in rows if r["status"] != "pass"][:3]
