"""NumPy's OpenBLAS threads spin after a GEMM and slow what runs next; how the runner avoids it.

After each multi-threaded GEMM, OpenBLAS keeps its threads busy-waiting for ~0.1 s (2^28 cycles) in
case another GEMM follows. A framework case that starts in that window finds a core taken. Measured
here, each setting in a fresh interpreter (OpenBLAS reads its variables when NumPy loads):

1. same process: the reference's GEMMs, then at once a torch conv forward + backward, against the
   same torch case after a 0.3 s pause (spin over);
2. separate processes, as the runner has them: a "reference" process runs the GEMMs and signals a
   "torch" process that runs its case at once, so the spin can only steal a core, not share a thread
   pool;
3. the reference's own cost per default-grid case under each setting: telling threads to sleep
   (OPENBLAS_THREAD_TIMEOUT=4) makes every GEMM wait for them to wake, one thread
   (OPENBLAS_NUM_THREADS=1, the runner's worker default) has neither cost.

    python benchmarks/blas_spin.py             # ~1 minute on 2 cores; 1 and 2 need torch
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SETTINGS = {
    "OpenBLAS default (spin)": {},
    "OPENBLAS_THREAD_TIMEOUT=4": {"OPENBLAS_THREAD_TIMEOUT": "4"},
    "OPENBLAS_NUM_THREADS=1": {"OPENBLAS_NUM_THREADS": "1"},
}
REPEATS = 25
PAUSE = 0.3


def _gemms() -> None:
    """The reference's work on a mid-size case: its GEMMs run multi-threaded unless told otherwise."""
    from convparity.harness.cases.descriptor import parse_case
    from convparity.harness.cases.inputs import make_inputs
    from convparity.harness.evaluation.verdict import reference

    spec = parse_case("mb8ic32ih48oc32kh3ph1", dtype="float32").spec
    reference(spec, make_inputs(spec, 0))


def _torch_case():
    import torch

    x = torch.randn(8, 32, 48, 48, requires_grad=True)
    w = torch.randn(32, 32, 3, 3, requires_grad=True)

    def run() -> float:
        start = time.perf_counter()
        y = torch.nn.functional.conv2d(x, w, padding=1)
        y.backward(torch.ones_like(y))
        return time.perf_counter() - start

    for _ in range(3):
        run()
    return run


def same_process() -> dict:
    run = _torch_case()
    right_after, after_pause = [], []
    for _ in range(REPEATS):
        _gemms()
        right_after.append(run())
        _gemms()
        time.sleep(PAUSE)
        after_pause.append(run())
    return {"right_after": statistics.median(right_after), "after_pause": statistics.median(after_pause)}


def torch_process() -> None:
    """Child: on each byte from stdin run the torch case at once; print the median time."""
    run = _torch_case()
    print("ready", flush=True)
    times = []
    while sys.stdin.buffer.read(1) == b"g":
        times.append(run())
    print(json.dumps(statistics.median(times)), flush=True)


def separate_processes(pause: float) -> float:
    """This process runs the GEMMs, then tells the torch process to run (after `pause`)."""
    child = subprocess.Popen([sys.executable, __file__, "--child", "torch-process"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    child.stdout.readline()
    for _ in range(REPEATS):
        _gemms()
        time.sleep(pause)
        child.stdin.write(b"g")
        child.stdin.flush()
        time.sleep(0.1)  # let the torch case finish before the next GEMMs
    child.stdin.write(b"q")
    child.stdin.close()
    return json.loads(child.stdout.readline())


def reference_cost() -> float:
    """Seconds of reference computation per case of the default grid (both dtypes), best of 3."""
    from convparity.harness.cases.builtin_grids import default
    from convparity.harness.cases.inputs import make_inputs
    from convparity.harness.cases.selection import expand
    from convparity.harness.evaluation.verdict import reference

    cases = [(c.spec, make_inputs(c.spec, 0)) for c in expand(default(), ("float64", "float32"))]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for spec, inputs in cases:
            reference(spec, inputs)
        best = min(best, (time.perf_counter() - start) / len(cases))
    return best


def child(mode: str) -> None:
    if mode == "torch-process":
        torch_process()
        return
    result = {"reference_per_case": reference_cost()}
    try:
        import torch  # noqa: F401
    except ImportError:
        print(json.dumps(result))
        return
    result.update(same_process())
    result["other_process_right_after"] = separate_processes(0.0)
    result["other_process_after_pause"] = separate_processes(PAUSE)
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    print(f"{os.cpu_count()} cores; torch case: conv2d 8x32x48x48, 32 3x3 filters, forward + backward; "
          f"medians of {REPEATS}")
    print(f"{'setting':28} {'torch after GEMMs':>18} {'after pause':>12} {'other process':>14} "
          f"{'after pause':>12} {'reference/case':>15}")
    for label, env in SETTINGS.items():
        output = subprocess.run([sys.executable, __file__, "--child", "measure"], env={**os.environ, **env},
                                capture_output=True, text=True, check=True).stdout
        r = json.loads(output.strip().splitlines()[-1])
        ms = {k: f"{v * 1e3:.2f} ms" for k, v in r.items()}
        print(f"{label:28} {ms.get('right_after', 'no torch'):>18} {ms.get('after_pause', ''):>12} "
              f"{ms.get('other_process_right_after', ''):>14} {ms.get('other_process_after_pause', ''):>12} "
              f"{ms['reference_per_case']:>15}")


if __name__ == "__main__":
    main()
