"""The tidy results table: one row per (case, bias, dtype, backend, tensor).

Rows are appended to `results.csv` and flushed as each case finishes, so an interrupted run keeps
every finished row; `read_results` gives them back to pandas with the right dtypes.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from harness.cases.spec import ConvSpec

STATUSES = ("pass", "fail", "unsupported", "error", "crash", "timeout", "unavailable")
BAD_STATUSES = ("fail", "error", "crash", "timeout")
TENSORS = ("y", "dx", "dw", "db")
RESULTS_FILE = "results.csv"


def dims(values: Iterable) -> str:
    """(5, 7) -> "5x7"; ((1, 2), (0, 0)) -> "1:2x0:0"."""
    return "x".join(":".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in values)


@dataclass
class Row:
    """One tensor of one case on one backend. Spec columns are flattened to strings like "5x7"."""

    case: str
    name: str
    bias: bool
    dtype: str
    backend: str
    backend_version: str
    tensor: str
    status: str
    err_ratio: float = math.nan
    max_abs_err: float = math.nan
    max_rel_err: float = math.nan
    worst_index: str = ""
    worst_value: float = math.nan
    worst_reference: float = math.nan
    allclose: str = ""
    reduction: int = 0
    message: str = ""
    seconds: float = math.nan
    rank: int = 0
    batch: int = 0
    in_channels: int = 0
    out_channels: int = 0
    groups: int = 0
    input_size: str = ""
    kernel_size: str = ""
    stride: str = ""
    padding: str = ""
    dilation: str = ""
    output_size: str = ""
    repro: str = ""

    @staticmethod
    def spec_columns(spec: ConvSpec) -> dict:
        return {
            "case": spec.descriptor,
            "bias": spec.bias,
            "dtype": spec.dtype,
            "rank": spec.rank,
            "batch": spec.batch,
            "in_channels": spec.in_channels,
            "out_channels": spec.out_channels,
            "groups": spec.groups,
            "input_size": dims(spec.input_size),
            "kernel_size": dims(spec.kernel_size),
            "stride": dims(spec.stride),
            "padding": dims(spec.padding),
            "dilation": dims(spec.dilation),
            "output_size": dims(spec.output_size),
        }


COLUMNS = tuple(f.name for f in fields(Row))
PANDAS_DTYPES = {
    **{f.name: "string" for f in fields(Row) if f.type == "str"},
    **{f.name: "float64" for f in fields(Row) if f.type == "float"},
    **{f.name: "int64" for f in fields(Row) if f.type == "int"},
    "bias": "bool",
}
KEY = ("case", "bias", "dtype", "backend", "tensor")


class ResultsWriter:
    """Appends rows to DIR/results.csv, writing the header once and flushing after every batch."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / RESULTS_FILE
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = self.path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS)
        if new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self._writer.writerow({column: getattr(row, column) for column in COLUMNS})  # asdict deep-copies
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_results(directory: str | Path):
    """results.csv as a pandas DataFrame with the documented column dtypes."""
    import pandas as pd

    frame = pd.read_csv(Path(directory) / RESULTS_FILE, dtype=PANDAS_DTYPES, keep_default_na=False,
                        na_values={c: ["", "nan", "NaN"] for c, t in PANDAS_DTYPES.items() if t == "float64"})
    return frame
