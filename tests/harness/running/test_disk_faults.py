"""Full and read-only disks: at start, mid-sweep and while the reports are written.

Each gives one line naming the path and the OS error, exit 2, no partial or temporary file, and, when rows
exist, the resume command that completes the run once space is freed. Real tmpfs mounts where this
process may mount (root on Linux, as here and in CI); a patched writer everywhere.
"""

from __future__ import annotations

import errno
from pathlib import Path

from convparity.harness.backends.manager import get_manager
from convparity.harness.cli import main
from convparity.harness.results import read_results
from convparity.harness.running import run_folder

SMOKE = ["run", "-b", "reference", "-g", "smoke", "--dtype", "float32"]


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convparity: error: "), lines
    return lines[0]


def no_temporary_files(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def fill(point: Path, leave: int) -> Path:
    """Fill the mount until about `leave` bytes are free (tmpfs counts whole 4 KiB pages)."""
    filler = point / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError:
            pass
    size = filler.stat().st_size
    with filler.open("r+b") as file:
        file.truncate(max(size - leave, 0))
    return filler


def test_full_disk_at_start_leaves_an_empty_folder(tmpfs, capsys):
    point = tmpfs(64 * 1024)
    fill(point, 0)
    out = point / "run"
    assert main([*SMOKE, "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and str(out) in line
    assert not out.exists() or not list(out.iterdir())  # neither a run nor in the way of the next one


def test_read_only_disk_at_start(tmpfs, capsys):
    point = tmpfs(64 * 1024, read_only=True)
    assert main([*SMOKE, "-o", str(point / "run")]) == 2
    assert "Read-only file system" in one_error_line(capsys)


def test_full_disk_mid_sweep_keeps_rows_and_resumes_once_freed(tmpfs, capsys):
    point = tmpfs(2 * 1024 * 1024)  # room for the report once the filler is gone
    filler = fill(point, 24 * 1024)  # room for run.json, cases.csv and some rows, not all
    out = point / "run"
    assert main([*SMOKE, "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and f"continue with: convparity run --resume {out}" in line
    assert run_folder.read_record(out).status == "interrupted"
    kept = len(read_results(out))
    assert kept > 0
    no_temporary_files(out)
    filler.unlink()
    assert main(["run", "--resume", str(out)]) == 0
    rows = read_results(out)
    smoke = get_manager().grids()["smoke"].cases()
    assert len(rows) == sum(4 if case.spec.bias else 3 for case in smoke)
    assert not rows.duplicated(["case", "bias", "backend", "tensor"]).any()
    assert run_folder.read_record(out).status == "finished"


def test_full_disk_while_writing_the_report(tmp_path, monkeypatch, capsys):
    real = run_folder.atomic_write

    def full_for_the_page(path, write):
        if path.name == "report.html":
            def fail(file):
                file.write("<!DOCTYPE html>")
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real(path, fail)
        return real(path, write)

    monkeypatch.setattr("convparity.harness.reporting.html_report.atomic_write", full_for_the_page)
    out = tmp_path / "run"
    assert main([*SMOKE, "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert f"cannot write {out / 'report.html'}: No space left on device" in line
    assert not (out / "report.html").exists() and (out / "summary.md").is_file()
    no_temporary_files(out)
