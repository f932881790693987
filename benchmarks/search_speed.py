"""How fast `convparity search` evaluates cases, at -j 1 and -j 2, and how soon it has a shrunk finding.

    python benchmarks/search_speed.py -b keras                     # default budget, seed 0, -j 1 then -j 2
    python benchmarks/search_speed.py -b torch -b reference --jobs 1 2 --budget 100

Each run is a whole search with real workers (convparity.harness.search.search), written to a folder under
--out. Per run it prints: evaluations ((case, backend) pairs) per minute in each phase (explore,
shrink, check; the first explore round includes starting the workers and importing the frameworks),
the time from the start to the first shrunk finding, and the groups found. Results agree between
-j values only up to the order of the draws: the explorer proposes 2 x jobs + 2 cases a round, so
the cases it proposes after the first lead differ.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from convparity.harness.search.evaluations import EvaluationCounts
from convparity.harness.search.search import DEFAULT_BUDGET, search


def rate(counts: EvaluationCounts, phase: str) -> str:
    """Evaluations per minute in one phase, and how many."""
    seconds = counts.seconds.get(phase, 0.0)
    return f"{60 * counts.evaluations[phase] / seconds:.0f} ({counts.evaluations[phase]})" if seconds else "—"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--backend", action="append", required=True)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", action="append")
    parser.add_argument("--out", help="folder for the runs (default: a temporary one, kept)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="search-speed-"))
    print(f"backends {', '.join(args.backend)}; budget {args.budget}; seed {args.seed}; runs in {root}")
    print("| -j | explore /min | shrink /min | check /min | all /min | first shrunk finding | total | groups |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for jobs in args.jobs:
        result = search(args.backend, dtypes=args.dtype or ("float64", "float32"), budget=args.budget,
                        seed=args.seed, jobs=jobs, out=root / f"j{jobs}")
        counts = result.counts

        total = sum(counts.seconds.values())
        first = "none" if math.isnan(result.first_finding_seconds) else f"{result.first_finding_seconds:.1f} s"
        groups = "; ".join(f"{f.group} {'known' if f.known else 'new'}: {f.rule}" for f in result.findings) or "none"
        print(f"| {jobs} | {rate(counts, 'explore')} | {rate(counts, 'shrink')} | {rate(counts, 'check')} | "
              f"{60 * counts.total / total:.0f} | {first} | {result.seconds:.0f} s | {groups} |", flush=True)
        minimal = [(f.minimal_case, f.minimal_dtype, f.minimal_bias) for f in result.findings]
        print(json.dumps({"jobs": jobs, "evaluations": counts.evaluations, "minimal": minimal}))


if __name__ == "__main__":
    main()
