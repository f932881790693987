"""Speed of the NumPy reference's transposed convolution against PyTorch: forward + backward (y, dx, dw, db).

Times `convparity.reference_impl.conv_transpose_forward_backward` and PyTorch CPU float64 autograd
(`conv_transpose{1,2,3}d` + `backward`) side by side on decoder layers, both on one thread, and prints
per shape the median wall and CPU seconds, ref/torch, GFLOP/s, the largest relative difference of the results
and the reference's peak extra memory (tracemalloc), split into the outputs, the padded copies of dy
and y, and the rest. The rest holds the column buffer (at most the memory budget) and one dw-sized
GEMM result (reference_impl/im2col.py), which for decoder layers with many channels is as large.

    python benchmarks/transposed_speed.py             # ~1 minute on 2 cores
    python benchmarks/transposed_speed.py --quick     # 3 repeats, 0.2 s minimum: a smoke run

One thread: the script runs itself again with OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and
MKL_NUM_THREADS set to 1 (NumPy's BLAS reads them when it loads) and torch.set_num_threads(1). In that
command only it also unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which pin OpenBLAS to a kernel or
cache size chosen for another machine; the output says which were set. Nothing else is changed.

FLOPs are nominal: every input element times every tap and output channel of its group, one
multiply-add counted as 2, for each of y, dx and dw: 3 * 2 * N * C_in * (C_out / groups) * prod(in) * prod(k)
(products that a positive pad crops off are counted too).
"""

from __future__ import annotations

import os
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
UNSET_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MARKER = "CONVPARITY_TRANSPOSED_SPEED_CHILD"  # set in the command this script runs itself as
SMALL_ARRAYS = 64 * 2**10  # bytes of the rest allowed beyond the column buffer and the dw scratch


def rerun_with_one_thread() -> None:
    """Replace this process by the same command with one BLAS/OpenMP thread and without UNSET_VARIABLES."""
    if os.environ.get(MARKER) is not None:
        return
    removed = [f"{name}={os.environ[name]}" for name in UNSET_VARIABLES if name in os.environ]
    env = {name: value for name, value in os.environ.items() if name not in UNSET_VARIABLES}
    env |= {name: "1" for name in THREAD_VARIABLES} | {MARKER: " ".join(removed) or "-"}
    os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)


if __name__ == "__main__":
    rerun_with_one_thread()

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reference_speed.py, which puts the checkout on the path

from reference_speed import (  # noqa: E402
    MIB,
    blocked_medians,
    fmt,
    gemm_peak_flops,
    max_difference,
    peak_extra_bytes,
    print_load,
    print_steadiness,
    print_table,
)

from convparity.reference_impl import DEFAULT_MEMORY_BUDGET, conv_transpose_forward_backward  # noqa: E402
from convparity.reference_impl.geometry import TransposedGeometry, conv_transpose_geometry  # noqa: E402

Results = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Shape:
    """x (N, C_in, *input_size), w (C_in, C_out / groups, *kernel), the same stride, pad and output_padding per dim."""

    name: str
    batch: int
    in_channels: int
    out_channels: int
    input_size: tuple[int, ...]
    kernel: int
    stride: int
    pad: int
    output_padding: int = 0
    groups: int = 1

    @property
    def rank(self) -> int:
        return len(self.input_size)

    @property
    def options(self) -> dict[str, int]:
        return dict(stride=self.stride, padding=self.pad, output_padding=self.output_padding, groups=self.groups)

    @property
    def label(self) -> str:
        size = "x".join(map(str, self.input_size))
        extra = f" op{self.output_padding}" if self.output_padding else ""
        return (
            f"{self.batch}x{self.in_channels}x{size} -> {self.out_channels} k{self.kernel} s{self.stride} "
            f"p{self.pad}{extra}"
        )

    @property
    def flops(self) -> int:
        """Nominal multiply-adds (x2) of y, dx and dw."""
        products = self.in_channels * self.out_channels // self.groups * self.kernel**self.rank
        return 3 * 2 * self.batch * products * math.prod(self.input_size)


SHAPES = (
    Shape("DCGAN generator layer", batch=16, in_channels=512, out_channels=256, input_size=(8, 8),
          kernel=4, stride=2, pad=1),
    Shape("U-Net up-convolution", batch=4, in_channels=128, out_channels=64, input_size=(64, 64),
          kernel=2, stride=2, pad=0),
    Shape("3-D decoder layer", batch=2, in_channels=64, out_channels=32, input_size=(16, 16, 16),
          kernel=3, stride=2, pad=1, output_padding=1),
)  # fmt: skip


@dataclass(frozen=True)
class Inputs:
    x: np.ndarray  # (N, C_in, *in)
    w: np.ndarray  # (C_in, C_out / groups, *kernel)
    b: np.ndarray  # (C_out,)
    dy: np.ndarray  # (N, C_out, *out)
    geometry: TransposedGeometry


def make_inputs(shape: Shape, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((shape.batch, shape.in_channels) + shape.input_size)
    w = rng.standard_normal((shape.in_channels, shape.out_channels // shape.groups) + (shape.kernel,) * shape.rank)
    geometry = conv_transpose_geometry(x, w, dilation=1, **shape.options)
    dy = rng.standard_normal((shape.batch, shape.out_channels) + geometry.output_size)
    return Inputs(x, w, rng.standard_normal(shape.out_channels), dy, geometry)


def run_reference(shape: Shape, inputs: Inputs) -> Results:
    y, dx, dw, db = conv_transpose_forward_backward(inputs.x, inputs.w, inputs.b, inputs.dy, **shape.options)
    assert db is not None
    return y, dx, dw, db


def run_torch(torch: ModuleType, shape: Shape, inputs: Inputs) -> Results:
    """PyTorch autograd in float64: fresh leaf tensors sharing the NumPy buffers, one backward."""
    x, w, b = (torch.from_numpy(a).requires_grad_() for a in (inputs.x, inputs.w, inputs.b))
    conv_transpose = getattr(torch.nn.functional, f"conv_transpose{shape.rank}d")
    y = conv_transpose(x, w, b, **shape.options)
    y.backward(torch.from_numpy(inputs.dy))
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()


def outputs_bytes(inputs: Inputs) -> int:
    """y, dx, dw, db in float64."""
    return 8 * sum(a.size for a in (inputs.dy, inputs.x, inputs.w, inputs.b))


def padded_copies_bytes(geometry: TransposedGeometry) -> int:
    """dy padded for the adjoint convolution (when a pad is positive) and y in those padded coordinates
    (kept beside y when any pad is non-zero), float64."""
    adjoint = geometry.adjoint
    padded = 8 * adjoint.batch * adjoint.in_channels * math.prod(adjoint.padded_size)
    grows = any(lo > 0 or hi > 0 for lo, hi in adjoint.padding)
    moves = any(lo != 0 or hi != 0 for lo, hi in adjoint.padding)
    return padded * (int(grows) + int(moves))


def with_cpu_time(run: Callable[[], object], seconds: list[float]) -> Callable[[], object]:
    """`run`, appending the CPU time of each call (this process, all its threads) to `seconds`."""

    def timed() -> object:
        start = time.process_time()
        result = run()
        seconds.append(time.process_time() - start)
        return result

    return timed


@dataclass
class Measurement:
    shape: Shape
    reference_s: float
    reference_runs: int
    reference_cpu_s: float
    torch_s: float | None = None
    torch_runs: int | None = None
    torch_cpu_s: float | None = None
    torch_diff: float | None = None
    peak_bytes: int | None = None
    outputs_bytes: int = 0
    padded_bytes: int = 0
    dw_bytes: int = 0

    @property
    def ratio(self) -> float | None:
        return None if self.torch_s is None else self.reference_s / self.torch_s

    @property
    def cpu_ratio(self) -> float | None:
        return None if self.torch_cpu_s is None else self.reference_cpu_s / self.torch_cpu_s

    @property
    def rest_bytes(self) -> int | None:
        return None if self.peak_bytes is None else self.peak_bytes - self.outputs_bytes - self.padded_bytes


def measure(shape: Shape, torch: ModuleType | None, args: argparse.Namespace) -> Measurement:
    inputs = make_inputs(shape)
    cpu: dict[str, list[float]] = {"reference": [], "torch": []}
    contenders = {"reference": with_cpu_time(lambda: run_reference(shape, inputs), cpu["reference"])}
    if torch is not None:
        contenders["torch"] = with_cpu_time(lambda: run_torch(torch, shape, inputs), cpu["torch"])
    medians, counts = blocked_medians(contenders, args.repeats, args.min_seconds)
    cpu_medians = {name: statistics.median(seconds[1:]) for name, seconds in cpu.items() if seconds}  # no warm-up
    result = Measurement(
        shape, medians["reference"], counts["reference"], cpu_medians["reference"],
        medians.get("torch"), counts.get("torch"), cpu_medians.get("torch"),
        outputs_bytes=outputs_bytes(inputs), padded_bytes=padded_copies_bytes(inputs.geometry),
        dw_bytes=8 * inputs.w.size,
    )  # fmt: skip
    if torch is not None:
        result.torch_diff = max_difference(run_torch(torch, shape, inputs), run_reference(shape, inputs))
    if args.memory:
        result.peak_bytes = peak_extra_bytes(lambda: run_reference(shape, inputs))
    return result


def print_speed(measurements: Sequence[Measurement]) -> None:
    print("\nTransposed convolution, forward + backward (y, dx, dw, db), median wall time, one thread each")
    rows = []
    for m in measurements:
        rows.append([
            m.shape.name, m.shape.label, f"{m.shape.flops / 1e9:.2f}",
            f"{m.reference_s * 1e3:.1f}", str(m.reference_runs),
            fmt(None if m.torch_s is None else m.torch_s * 1e3, ".1f"), fmt(m.torch_runs, "d"), fmt(m.ratio, ".2f"),
            f"{m.shape.flops / m.reference_s / 1e9:.1f}",
            fmt(None if m.torch_s is None else m.shape.flops / m.torch_s / 1e9, ".1f"),
            f"{m.reference_cpu_s * 1e3:.1f}", fmt(None if m.torch_cpu_s is None else m.torch_cpu_s * 1e3, ".1f"),
            fmt(m.cpu_ratio, ".2f"), fmt(m.torch_diff, ".1e"),
        ])  # fmt: skip
    print_table(
        ["layer", "shape (N x C_in x in -> C_out, k, s, p, output_padding)", "GFLOP", "ref ms", "ref runs",
         "torch ms", "torch runs", "ref/torch", "ref GFLOP/s", "torch GFLOP/s", "ref CPU ms", "torch CPU ms",
         "CPU ref/torch", "|ref-torch|"],
        rows,
    )  # fmt: skip
    print("  ms: median wall time per call; CPU ms: median CPU time of the same calls, which other work on the")
    print("  machine inflates less than wall time (one thread each, so they agree on a quiet machine)")
    print("  |ref-torch|: largest difference over y, dx, dw, db, relative to that tensor's largest value")


def print_memory(measurements: Sequence[Measurement]) -> None:
    print(f"\nMemory: reference peak extra allocation (tracemalloc), budget {DEFAULT_MEMORY_BUDGET / MIB:.0f} MiB")
    rows = []
    for m in measurements:
        assert m.peak_bytes is not None and m.rest_bytes is not None
        bound = DEFAULT_MEMORY_BUDGET + m.dw_bytes
        rows.append([
            m.shape.name, f"{m.peak_bytes / MIB:.2f}", f"{m.outputs_bytes / MIB:.2f}", f"{m.padded_bytes / MIB:.2f}",
            f"{m.rest_bytes / MIB:.2f}", f"{bound / MIB:.2f}", "yes" if m.rest_bytes <= bound + SMALL_ARRAYS else "NO",
        ])  # fmt: skip
    print_table(
        ["layer", "peak MiB", "outputs MiB", "padded dy/y MiB", "rest MiB", "budget + dw MiB", "rest within"], rows
    )
    print("  rest = peak - outputs - padded copies: the column buffer of dy (<= budget), one dw-sized GEMM result")
    print(f"  and small arrays ({SMALL_ARRAYS // 2**10} KiB allowed); the outputs are not all allocated at the peak")


def print_machine(torch: ModuleType | None, peak_flops: float, gemm_size: int) -> None:
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"NumPy {np.__version__} with {blas.get('name', '?')} {blas.get('version', '')}")
    threads = " ".join(f"{name}={os.environ.get(name, '(unset)')}" for name in THREAD_VARIABLES)
    print(f"This command ran with {threads}")
    removed = os.environ.get(MARKER, "-")
    unset = ", ".join(UNSET_VARIABLES)
    if removed == "-":
        print(f"  and without {unset} (neither was set)")
    else:
        print(f"  and without {unset}: unset here for this command only (was {removed})")
    if torch is None:
        print("PyTorch: not installed or disabled; no torch column")
    else:
        torch.set_num_threads(1)
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread, float64 autograd on CPU")
    print(f"float64 GEMM peak, one thread: {peak_flops / 1e9:.1f} GFLOP/s (best np.matmul of {gemm_size}x{gemm_size})")
    print_load("at the start")


def import_torch(enabled: bool) -> ModuleType | None:
    if not enabled:
        return None
    try:
        import torch
    except ImportError:
        return None
    return torch


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per contender, at least (default 7)")
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="repeat fast shapes until this much time is timed (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="3 repeats, 0.2 s minimum")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the PyTorch comparison")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip tracemalloc")
    parser.add_argument("--gemm-size", type=int, default=2048, help="matrix size of the GEMM peak (default 2048)")
    args = parser.parse_args(argv)
    if min(args.repeats, args.gemm_size) < 1 or args.min_seconds < 0:
        parser.error("--repeats and --gemm-size must be positive, --min-seconds non-negative")
    if args.quick:
        args.repeats, args.min_seconds = 3, 0.2
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch = import_torch(args.torch)
    peak_flops = gemm_peak_flops(args.gemm_size, repeats=3)
    print_machine(torch, peak_flops, args.gemm_size)
    measurements = []
    for shape in SHAPES:
        measurements.append(measure(shape, torch, args))
        print(f"  measured {shape.label}", file=sys.stderr, flush=True)
    print_speed(measurements)
    if args.memory:
        print_memory(measurements)
    print_load("at the end")
    print_steadiness(peak_flops, gemm_peak_flops(args.gemm_size, repeats=3))


if __name__ == "__main__":
    main()
