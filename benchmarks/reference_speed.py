"""Speed and memory of the NumPy reference: forward + backward (y, dx, dw, db) per 2-D conv shape.

Compares `convparity.reference_impl.conv_forward_backward` with PyTorch CPU float64 autograd (when installed)
and with the blog post's Python loops (tests/reference_impl/blog.py loads them; only where affordable),
and prints per shape: median seconds, the reference/torch ratio, GFLOP/s and the fraction of this
machine's float64 GEMM peak (a large np.matmul, best of a few), the naive/reference speed-up, and
the reference's peak extra memory (tracemalloc, which sees NumPy's allocations). A memory_budget
sweep on 8x64x56x56 justifies the default budget; the targets are checked at the end.

    python benchmarks/reference_speed.py            # everything (a few minutes on 2 cores)
    python benchmarks/reference_speed.py --quick    # fewer repeats, no sweep: a smoke run

Shapes are (N, C, H, W, O, kernel, stride, pad, groups), square kernel/stride/pad. FLOPs count one
multiply-add as 2 for each of forward, dx and dw: 3 * 2 * N * O * OH * OW * (C / groups) * k * k.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runs from a checkout, installed or not

from convparity.reference_impl import DEFAULT_MEMORY_BUDGET, conv_forward_backward  # noqa: E402
from tests.reference_impl.blog import load_blog_conv  # noqa: E402

MIB = 2**20
UNBOUNDED = 2**62
PAUSE = 0.3  # seconds between timed blocks, longer than OpenBLAS's and OpenMP's spin after work
BLOCKS = 2
STEADY = 0.15  # largest change of the GEMM peak between start and end of a run taken as a quiet machine
Results = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Shape:
    """x (N, C, H, W), w (O, C / groups, k, k), stride s and padding p in both dims."""

    batch: int
    channels: int
    height: int
    width: int
    out_channels: int
    kernel: int
    stride: int
    pad: int
    groups: int

    @property
    def label(self) -> str:
        return (
            f"{self.batch}x{self.channels}x{self.height}x{self.width} o{self.out_channels} "
            f"k{self.kernel} s{self.stride} p{self.pad} g{self.groups}"
        )

    @property
    def output_size(self) -> tuple[int, int]:
        """(OH, OW) = ((H + 2p - k) // s + 1, (W + 2p - k) // s + 1)."""
        return tuple((size + 2 * self.pad - self.kernel) // self.stride + 1 for size in (self.height, self.width))

    @property
    def flops(self) -> int:
        """Multiply-adds (x2) of forward, dx and dw."""
        terms = self.out_channels * math.prod(self.output_size) * self.channels // self.groups * self.kernel**2
        return 3 * 2 * self.batch * terms

    @property
    def loop_iterations(self) -> int:
        """Python loop iterations of the blog's scan matrix, forward and backward: 2 * N * OH * OW * C."""
        return 2 * self.batch * math.prod(self.output_size) * self.channels


SHAPES = (
    Shape(2, 3, 5, 7, 4, 3, 2, 0, 1),
    Shape(8, 16, 32, 32, 32, 3, 1, 1, 1),
    Shape(8, 64, 56, 56, 64, 3, 1, 1, 1),
    Shape(1, 256, 14, 14, 256, 3, 1, 1, 1),
    Shape(8, 32, 112, 112, 32, 1, 1, 0, 1),
    Shape(8, 32, 56, 56, 32, 3, 1, 1, 32),
    Shape(4, 3, 224, 224, 64, 7, 2, 3, 1),
)
NAIVE_TARGET_SHAPE = Shape(8, 16, 32, 32, 32, 3, 1, 1, 1)
SWEEP_SHAPE = Shape(8, 64, 56, 56, 64, 3, 1, 1, 1)
SWEEP_BUDGETS = (4 * MIB, 16 * MIB, 64 * MIB, UNBOUNDED)


@dataclass(frozen=True)
class Inputs:
    x: np.ndarray  # (N, C, H, W)
    w: np.ndarray  # (O, C / groups, k, k)
    b: np.ndarray  # (O,)
    dy: np.ndarray  # (N, O, OH, OW)


def make_inputs(shape: Shape, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    k = shape.kernel
    return Inputs(
        x=rng.standard_normal((shape.batch, shape.channels, shape.height, shape.width)),
        w=rng.standard_normal((shape.out_channels, shape.channels // shape.groups, k, k)),
        b=rng.standard_normal(shape.out_channels),
        dy=rng.standard_normal((shape.batch, shape.out_channels) + shape.output_size),
    )


def run_reference(shape: Shape, inputs: Inputs, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> Results:
    y, dx, dw, db = conv_forward_backward(
        inputs.x, inputs.w, inputs.b, inputs.dy,
        stride=shape.stride, padding=shape.pad, groups=shape.groups, memory_budget=memory_budget,
    )  # fmt: skip
    assert db is not None
    return y, dx, dw, db


def run_torch(torch: ModuleType, shape: Shape, inputs: Inputs) -> Results:
    """PyTorch autograd in float64: fresh leaf tensors sharing the NumPy buffers, one backward."""
    x, w, b = (torch.from_numpy(a).requires_grad_() for a in (inputs.x, inputs.w, inputs.b))
    y = torch.nn.functional.conv2d(x, w, b, stride=shape.stride, padding=shape.pad, groups=shape.groups)
    y.backward(torch.from_numpy(inputs.dy))
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


def run_naive(blog_conv: ModuleType, shape: Shape, inputs: Inputs) -> Results:
    """The blog's loops (stride only): the input is zero-padded before and dx cropped after."""
    p = shape.pad
    conv = blog_conv.Conv2d(stride=shape.stride, weight=inputs.w, bias=inputs.b)
    y = conv(np.pad(inputs.x, ((0, 0), (0, 0), (p, p), (p, p))))
    dx = conv.backward(inputs.dy)
    return y, dx[:, :, p : dx.shape[2] - p, p : dx.shape[3] - p], conv.dw, conv.db


def blocked_medians(
    runs: dict[str, Callable[[], object]], repeats: int, min_seconds: float
) -> tuple[dict[str, float], dict[str, int]]:
    """Median wall time of each run, and how many calls were timed for it.

    Each run is timed in its own blocks of back-to-back calls, after a pause: OpenBLAS and PyTorch's
    OpenMP threads keep spinning for ~0.1-0.2 s after their work and would slow the other library's
    next call. Blocks alternate (two per run) so a change in machine load hits every run alike.
    After one warm-up call each: max(repeats, enough calls for min_seconds of timing) calls, at most 200.
    """
    counts = {}
    for name, run in runs.items():
        time.sleep(PAUSE)
        start = time.perf_counter()
        run()
        counts[name] = max(repeats, min(200, math.ceil(min_seconds / max(time.perf_counter() - start, 1e-9))))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for block in range(BLOCKS):
        for name, run in runs.items():
            time.sleep(PAUSE)
            for _ in range(counts[name] * (block + 1) // BLOCKS - counts[name] * block // BLOCKS):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}, counts


def gemm_peak_flops(size: int, repeats: int) -> float:
    """Best FLOP/s of a (size x size) @ (size x size) float64 np.matmul."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((size, size)), rng.standard_normal((size, size))
    np.matmul(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def page_faults_per_call(run: Callable[[], object], calls: int = 5) -> float:
    """Median minor page faults of one call after a warm-up: fresh memory the OS must map.

    In a virtual machine a fault can cost tens of microseconds, so a run that keeps returning its
    buffers to the OS (glibc does for large blocks) pays for them again on every call.
    """
    run()
    faults = []
    for _ in range(calls):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        run()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return statistics.median(faults)


def peak_extra_bytes(run: Callable[[], object]) -> int:
    """Peak bytes allocated (and traced) during `run`, its results included, over what existed before."""
    tracemalloc.start()
    try:
        result = run()
        peak = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        tracemalloc.stop()
    return peak


def max_difference(got: Results, want: Results) -> float:
    """Largest |got - want| over y, dx, dw, db, relative to the largest |want| of the same tensor."""
    return max(float(np.max(abs(g - r)) / max(float(np.max(abs(r))), 1e-300)) for g, r in zip(got, want))


def padded_copies_bytes(shape: Shape) -> int:
    """The padded x and the padded dx, float64, when p > 0 (without padding x and dx serve as they are)."""
    padded = shape.batch * shape.channels * (shape.height + 2 * shape.pad) * (shape.width + 2 * shape.pad)
    return 2 * 8 * padded if shape.pad else 0


def outputs_bytes(shape: Shape) -> int:
    """y, dx, dw, db in float64."""
    y = shape.batch * shape.out_channels * math.prod(shape.output_size)
    dx = shape.batch * shape.channels * shape.height * shape.width
    dw = shape.out_channels * shape.channels // shape.groups * shape.kernel**2
    return 8 * (y + dx + dw + shape.out_channels)


@dataclass
class Measurement:
    shape: Shape
    reference_s: float
    reference_runs: int
    torch_s: float | None = None
    torch_diff: float | None = None
    naive_s: float | None = None
    naive_diff: float | None = None
    naive_note: str = ""
    peak_bytes: int | None = None
    reference_faults: float | None = None
    torch_faults: float | None = None

    @property
    def torch_ratio(self) -> float | None:
        return None if self.torch_s is None else self.reference_s / self.torch_s

    @property
    def scratch_bytes(self) -> int:
        """Peak extra memory less the outputs and the padded copies of x and dx: the per-tile scratch."""
        assert self.peak_bytes is not None
        return self.peak_bytes - outputs_bytes(self.shape) - padded_copies_bytes(self.shape)

    @property
    def naive_speedup(self) -> float | None:
        return None if self.naive_s is None else self.naive_s / self.reference_s


def naive_skip_reason(shape: Shape, naive_limit: int) -> str:
    if shape.groups != 1:
        return "skipped: the post has no groups"
    if shape.loop_iterations > naive_limit:
        return f"skipped: {shape.loop_iterations / 1e6:.1f}M Python loop iterations per pass"
    return ""


def measure(
    shape: Shape, torch: ModuleType | None, blog_conv: ModuleType | None, args: argparse.Namespace
) -> Measurement:
    inputs = make_inputs(shape)
    reference = run_reference(shape, inputs)
    contenders = {"reference": lambda: run_reference(shape, inputs)}
    if torch is not None:
        contenders["torch"] = lambda: run_torch(torch, shape, inputs)
    medians, counts = blocked_medians(contenders, args.repeats, args.min_seconds)
    result = Measurement(shape, medians["reference"], counts["reference"], torch_s=medians.get("torch"))
    result.reference_faults = page_faults_per_call(contenders["reference"])
    if torch is not None:
        result.torch_diff = max_difference(run_torch(torch, shape, inputs), reference)
        result.torch_faults = page_faults_per_call(contenders["torch"])
    result.naive_note = "skipped: --no-naive" if blog_conv is None else naive_skip_reason(shape, args.naive_limit)
    if blog_conv is not None and not result.naive_note:
        result.naive_diff = max_difference(run_naive(blog_conv, shape, inputs), reference)
        naive, naive_counts = blocked_medians(
            {"naive": lambda: run_naive(blog_conv, shape, inputs)}, args.naive_repeats, 0.0
        )
        result.naive_s, result.naive_note = naive["naive"], f"median of {naive_counts['naive']}"
    if args.memory:
        result.peak_bytes = peak_extra_bytes(lambda: run_reference(shape, inputs))
    return result


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for row in rows:
        print("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))))


def print_speed(measurements: Sequence[Measurement], peak_flops: float) -> None:
    print("\nSpeed: forward + backward (y, dx, dw, db), median wall time")
    rows = []
    for m in measurements:
        achieved = m.shape.flops / m.reference_s
        rows.append([
            m.shape.label, f"{m.shape.flops / 1e9:.3f}", f"{m.reference_s * 1e3:.2f}", str(m.reference_runs),
            fmt(None if m.torch_s is None else m.torch_s * 1e3, ".2f"), fmt(m.torch_ratio, ".2f"),
            f"{achieved / 1e9:.2f}", f"{achieved / peak_flops:.1%}",
            fmt(None if m.naive_s is None else m.naive_s * 1e3, ".1f"), fmt(m.naive_speedup, ".0f"),
            fmt(m.reference_faults, ".0f"), fmt(m.torch_faults, ".0f"),
            fmt(m.torch_diff, ".1e"), fmt(m.naive_diff, ".1e"),
        ])  # fmt: skip
    print_table(
        ["shape (N x C x H x W, O, k, s, p, g)", "GFLOP", "ref ms", "ref runs", "torch ms", "ref/torch",
         "ref GFLOP/s", "of peak", "naive ms", "naive/ref", "ref faults", "torch faults",
         "|ref-torch|", "|ref-naive|"],
        rows,
    )  # fmt: skip
    for m in measurements:
        if m.naive_s is None or m.naive_note.startswith("median"):
            print(f"  naive loops, {m.shape.label}: {m.naive_note}")
    print("  faults: minor page faults per call (median of 5), memory the OS maps afresh on every call")
    print("  |ref-x|: largest difference over y, dx, dw, db, relative to that tensor's largest value")


def print_memory(measurements: Sequence[Measurement]) -> None:
    print(f"\nMemory: reference peak extra allocation (tracemalloc), budget {DEFAULT_MEMORY_BUDGET / MIB:.0f} MiB")
    rows = []
    for m in measurements:
        assert m.peak_bytes is not None
        scratch = m.scratch_bytes
        rows.append([
            m.shape.label, f"{m.peak_bytes / MIB:.2f}", f"{outputs_bytes(m.shape) / MIB:.2f}",
            f"{padded_copies_bytes(m.shape) / MIB:.2f}", f"{scratch / MIB:.2f}",
            "yes" if scratch <= DEFAULT_MEMORY_BUDGET else "NO",
        ])  # fmt: skip
    print_table(["shape", "peak MiB", "outputs MiB", "padded x/dx MiB", "rest MiB", "rest <= budget"], rows)
    print("  rest = peak - outputs (y, dx, dw, db) - padded copies of x and dx; it holds the column buffer")


def print_budget_sweep(args: argparse.Namespace) -> None:
    inputs = make_inputs(SWEEP_SHAPE)
    print(f"\nmemory_budget sweep on {SWEEP_SHAPE.label}")
    runs = {budget: (lambda budget=budget: run_reference(SWEEP_SHAPE, inputs, budget)) for budget in SWEEP_BUDGETS}
    medians, counts = blocked_medians(runs, args.repeats, args.min_seconds)
    rows = []
    for budget, run in runs.items():
        name = "unbounded" if budget == UNBOUNDED else f"{budget // MIB} MiB"
        if budget == DEFAULT_MEMORY_BUDGET:
            name += " (default)"
        rows.append([name, f"{medians[budget] * 1e3:.1f}", str(counts[budget]), f"{peak_extra_bytes(run) / MIB:.1f}"])
    print_table(["budget", "median ms", "runs", "peak MiB"], rows)


def print_targets(measurements: Sequence[Measurement]) -> None:
    print("\nTargets")
    ratios = sorted((m.torch_ratio, m.shape.label) for m in measurements if m.torch_ratio is not None)
    if ratios:
        median_ratio, median_label = ratios[(len(ratios) - 1) // 2]
        worst_ratio, worst_label = ratios[-1]
        print_target(f"ref/torch <= 1.0 on the median shape ({median_label})", f"{median_ratio:.2f}", median_ratio <= 1)
        print_target(f"ref/torch <= 2.0 on every shape (worst: {worst_label})", f"{worst_ratio:.2f}", worst_ratio <= 2)
    else:
        print("  ref/torch: not measured (torch not installed or --no-torch)")
    naive = next((m.naive_speedup for m in measurements if m.shape == NAIVE_TARGET_SHAPE and m.naive_speedup), None)
    if naive is not None:
        print_target(f"naive/ref >= 50 on {NAIVE_TARGET_SHAPE.label}", f"{naive:.0f}", naive >= 50)
    else:
        print(f"  naive/ref on {NAIVE_TARGET_SHAPE.label}: not measured")
    if all(m.peak_bytes is not None for m in measurements):
        rest = max(m.scratch_bytes for m in measurements)
        print_target(
            "largest rest (peak - outputs - padded x/dx) <= budget",
            f"{rest / MIB:.2f} MiB",
            rest <= DEFAULT_MEMORY_BUDGET,
        )


def print_target(description: str, value: str, met: bool) -> None:
    print(f"  {description}: {value} -> {'met' if met else 'NOT MET'}")


def import_torch(enabled: bool) -> ModuleType | None:
    if not enabled:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def print_machine(torch: ModuleType | None, peak_flops: float, gemm_size: int) -> None:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"NumPy {np.__version__} with {blas.get('name', '?')} {blas.get('version', '')}")
    if torch is None:
        print("PyTorch: not installed or disabled; no torch column")
    else:
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, float64 autograd on CPU")
    print(f"float64 GEMM peak: {peak_flops / 1e9:.1f} GFLOP/s (best np.matmul of {gemm_size}x{gemm_size})")
    print_load("at the start")


def print_load(when: str) -> None:
    """Other work on the machine skews timings; the load average says how much there was."""
    print("load average (1, 5, 15 min) {}: {:.2f} {:.2f} {:.2f}".format(when, *os.getloadavg()))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement, at least (default 7)")
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="repeat fast shapes until this much time is timed (default 1)"
    )
    parser.add_argument(
        "--naive-repeats", type=int, default=5, help="timed runs of the blog's loops per shape (default 5)"
    )
    parser.add_argument("--quick", action="store_true", help="3 repeats, 0.2 s minimum, no budget sweep")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the PyTorch comparison")
    parser.add_argument("--no-naive", dest="naive", action="store_false", help="skip the blog's loops")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip tracemalloc and the sweep")
    parser.add_argument(
        "--naive-limit", type=int, default=2_000_000,
        help="run the blog's loops only below this many Python loop iterations per pass (default 2e6)",
    )  # fmt: skip
    parser.add_argument("--gemm-size", type=int, default=3072, help="matrix size of the GEMM peak (default 3072)")
    args = parser.parse_args(argv)
    if min(args.repeats, args.naive_repeats, args.gemm_size) < 1 or args.min_seconds < 0:
        parser.error("--repeats, --naive-repeats and --gemm-size must be positive, --min-seconds non-negative")
    if args.quick:
        args.repeats, args.naive_repeats, args.min_seconds = 3, 3, 0.2
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch = import_torch(args.torch)
    blog_conv = load_blog_conv() if args.naive else None
    peak_flops = gemm_peak_flops(args.gemm_size, repeats=3)
    print_machine(torch, peak_flops, args.gemm_size)
    measurements = []
    for shape in SHAPES:
        measurements.append(measure(shape, torch, blog_conv, args))
        print(f"  measured {shape.label}", file=sys.stderr, flush=True)
    print_speed(measurements, peak_flops)
    if args.memory:
        print_memory(measurements)
        if not args.quick:
            print_budget_sweep(args)
    print_targets(measurements)
    print_load("at the end")
    print_steadiness(peak_flops, gemm_peak_flops(args.gemm_size, repeats=3))


def print_steadiness(peak_at_start: float, peak_at_end: float) -> None:
    """The GEMM peak again: if it moved, the machine's capacity changed during the run."""
    change = peak_at_end / peak_at_start - 1
    print(f"float64 GEMM peak at the end: {peak_at_end / 1e9:.1f} GFLOP/s ({change:+.0%})")
    if abs(change) > STEADY:
        print(f"  WARNING: the GEMM peak moved by more than {STEADY:.0%}: other work shared the machine; rerun")


if __name__ == "__main__":
    main()
