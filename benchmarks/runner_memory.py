"""Peak RSS of the runner's own process (not its workers) for sweeps of 1k, 10k and 100k tiny cases.

Each size runs `convparity run -b reference --random N --dtype float32 -j 2` in a fresh process (tiny
random specs: the cost is the harness, not the arithmetic) and reads that process's peak resident set
(VmHWM in /proc/<pid>/status) at two moments: when the last row is written (the sweep) and at exit
(after the reports are written). Expected: flat in N, since cases are streamed, finished cases keep
nothing and the reports are aggregated in chunks.

    python benchmarks/runner_memory.py [--sizes 1000 10000 100000] [-j 2]

OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are left as they are: the numbers are memory, not speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = r"""
import json, os, sys, threading
from convparity.harness.running import sweep as sweep_module

def peak_kib():
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

measured = {}
original = sweep_module._close
def close_and_measure(*args, **kwargs):
    measured.setdefault("sweep_peak_kib", peak_kib())
    return original(*args, **kwargs)
sweep_module._close = close_and_measure
from convparity.harness.cli import main
code = main(sys.argv[1:])
measured["exit_peak_kib"] = peak_kib()
measured["code"] = code
print("MEASURED " + json.dumps(measured))
"""


def measure(size: int, jobs: int, folder: Path) -> dict:
    out = folder / f"run-{size}"
    command = [sys.executable, "-c", PROBE, "run", "-b", "reference", "--random", str(size), "--dtype", "float32",
               "-j", str(jobs), "-o", str(out), "--seed", "1"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    line = next((text for text in done.stdout.splitlines() if text.startswith("MEASURED ")), None)
    if line is None:
        raise SystemExit(f"size {size}: no measurement; stderr:\n{done.stderr[-2000:]}")
    measured = json.loads(line.removeprefix("MEASURED "))
    rows = sum(1 for _ in open(out / "results.csv")) - 1
    return {"cases": size, "rows": rows, "seconds": round(seconds, 1), **measured}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'cases':>7} {'rows':>7} {'seconds':>8} {'sweep peak MiB':>15} {'exit peak MiB':>14}")
        for size in args.sizes:
            m = measure(size, args.jobs, Path(folder))
            print(f"{m['cases']:>7} {m['rows']:>7} {m['seconds']:>8} {m['sweep_peak_kib'] / 1024:>15.1f} "
                  f"{m['exit_peak_kib'] / 1024:>14.1f}", flush=True)


if __name__ == "__main__":
    main()
