"""How fast `convparity search` evaluates cases, at -j 1 and -j 2, how soon it has a settled finding, and
whether `--minutes` holds.

    python benchmarks/search_speed.py -b keras                     # default budget, seed 0, -j 1 then -j 2
    python benchmarks/search_speed.py -b torch -b reference --jobs 1 2 --budget 100
    python benchmarks/search_speed.py -b planted-groups --jobs 2 --minutes 2     # the time limit, on a fast
        # failing backend (with PYTHONPATH=. CONVPARITY_EXTRA_PLUGINS=tests.harness.search.planted_backends)

Each run is a whole search with real workers, its reports written (convparity.search), into a folder under
--out. Per run it prints: evaluations ((case, backend) pairs) per minute in each phase (explore, rerun,
shrink, values, check; the first explore round includes starting the workers and importing the
frameworks), the time from the start to the first settled finding, the search's own time, the wall time
with the reports written (what `--minutes` bounds, less the reports), and the groups found. Results agree
between -j values only up to the order of the draws: the explorer proposes 2 x jobs + 2 cases a round, so
the cases it proposes after the first lead differ.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from convparity.harness.api import search
from convparity.harness.search.evaluations import EvaluationCounts
from convparity.harness.search.search import DEFAULT_BUDGET

PHASES = ("explore", "rerun", "shrink", "values", "check")


def rate(counts: EvaluationCounts, phase: str) -> str:
    """Evaluations per minute in one phase, and how many."""
    seconds = counts.seconds.get(phase, 0.0)
    return f"{60 * counts.evaluations[phase] / seconds:.0f} ({counts.evaluations[phase]})" if seconds else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--backend", action="append", required=True)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--budget", type=int)
    limit.add_argument("--minutes", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", action="append")
    parser.add_argument("--out", help="folder for the runs (default: a temporary one, kept)")
    args = parser.parse_args()
    budget = args.budget if args.budget or args.minutes else DEFAULT_BUDGET
    root = Path(args.out or tempfile.mkdtemp(prefix="search-speed-"))
    print(f"backends {', '.join(args.backend)}; {f'{args.minutes} minutes' if args.minutes else f'budget {budget}'}; "
          f"seed {args.seed}; runs in {root}")
    print(f"| -j | {' | '.join(f'{p} /min' for p in PHASES)} | first settled finding | search | wall, reports "
          "written | groups |")
    print("|---:|" + "---:|" * (len(PHASES) + 3) + "---|")
    for jobs in args.jobs:
        start = time.perf_counter()
        result = search(args.backend, dtypes=args.dtype or ("float64", "float32"), budget=budget,
                        minutes=args.minutes, seed=args.seed, jobs=jobs, out=root / f"j{jobs}")
        wall = time.perf_counter() - start
        counts = result.counts
        first = "none" if math.isnan(result.first_finding_seconds) else f"{result.first_finding_seconds:.1f} s"
        groups = "; ".join(f"{f.group} {f.status}: {f.rule}" for f in result.findings) or "none"
        print(f"| {jobs} | {' | '.join(rate(counts, p) if p in counts.evaluations else '—' for p in PHASES)} | "
              f"{first} | {result.seconds:.0f} s | {wall:.0f} s | {groups} |", flush=True)
        minimal = [(f.minimal_case, f.minimal_dtype, f.minimal_bias, f.minimal_inputs) for f in result.findings]
        print(json.dumps({"jobs": jobs, "evaluations": counts.evaluations, "minimal": minimal, "wall": round(wall, 1)}))


if __name__ == "__main__":
    main()
