"""How long `convparity backends` takes, start to exit, and that it prints one line per backend and nothing else.

    python benchmarks/backends_speed.py --repeat 3

Runs the command --repeat times in fresh processes (the backends are those the environment registers:
CONVPARITY_PLUGINS / CONVPARITY_EXTRA_PLUGINS as set) and prints each wall time, the median, the load
average before each, and the number of lines printed per backend.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeat):
        load = os.getloadavg()[0]
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "convparity", "backends"], capture_output=True, text=True,
                              timeout=900, check=True)
        times.append(time.perf_counter() - start)
        lines = done.stdout.splitlines()
        print(f"{times[-1]:6.1f} s  (load average {load:.1f})  {len(lines)} lines on stdout, "
              f"{len(done.stderr.splitlines())} on stderr")
    print(f"median {statistics.median(times):.1f} s over {len(times)} runs")


if __name__ == "__main__":
    main()
