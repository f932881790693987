"""How long grouping takes (convparity.harness.search.group.group_failures) as failures pile up: 50,000 failing
observations by default, beside as many passing ones.

    python benchmarks/group_speed.py                         # 50,000 failures, seed 0
    python benchmarks/group_speed.py --failures 5000 20000 50000

The observations are synthetic, as a long `search --minutes` on a fast failing backend leaves them: distinct
cases drawn from the search's own space (convparity.harness.search.space), on one backend with two causes
(y wrong when groups > 1; db wrong when transposed with a bias) and 3% of failures that no rule explains.
Drawing them is not timed; the grouping is, cold (every spec's features computed) and warm (the features
already known, as in a search's second and later groupings), in wall and CPU seconds (on a shared machine
the wall time includes waiting for a core, and OpenBLAS threads that spin after each product), and the
groups found are printed so that a faster grouping that finds other causes shows as such.
"""

from __future__ import annotations

import argparse
import random
import time

from convparity.harness.search import features
from convparity.harness.search.group import group_failures
from convparity.harness.search.observations import Observation
from convparity.harness.search.space import SpecSpace


def observations(failures: int, seed: int) -> list[Observation]:
    """`failures` failing observations and as many passing ones, on distinct cases."""
    rng = random.Random(seed)
    space = SpecSpace(("float64", "float32", "float16"))
    found: list[Observation] = []
    seen = set()
    failing = passing = 0
    while failing < failures or passing < failures:
        spec = space.draw(rng)
        if spec in seen:
            continue
        seen.add(spec)
        tensors = tuple(t for t, hit in (("y", spec.groups > 1), ("db", spec.transposed and spec.bias)) if hit)
        if not tensors and rng.random() < 0.03:
            tensors = ("y",)  # a failure no rule explains
        if tensors and failing < failures:
            found.append(Observation(spec, "b", "1", "fail", tensors, undeclared=tensors, err_ratio=7.0))
            failing += 1
        elif not tensors and passing < failures:
            found.append(Observation(spec, "b", "1", "pass", err_ratio=0.3))
            passing += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, nargs="+", default=[50_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| failing observations | all observations | cold: wall (s) | cold: CPU (s) | warm: wall (s) | "
          "warm: CPU (s) | groups |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for count in args.failures:
        drawn = observations(count, args.seed)
        features._rows.clear()
        times = []
        for _ in range(2):  # cold, then warm
            wall, cpu = time.perf_counter(), time.process_time()
            groups = group_failures(drawn)
            times += [time.perf_counter() - wall, time.process_time() - cpu]
        described = "; ".join(f"{' '.join(g.tensors)}: {g.rule.text} ({len(g.members)}, {g.misses} misses)"
                              for g in groups)
        print(f"| {count} | {len(drawn)} | {' | '.join(f'{t:.2f}' for t in times)} | {described} |", flush=True)


if __name__ == "__main__":
    main()
