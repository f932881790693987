"""The tidy results table: one row per (case, bias, dtype, backend, tensor).

Rows are appended to `results.csv` and flushed as each case finishes, so an interrupted run keeps
every finished row; `read_results` gives them back to pandas with the right dtypes.

A results.csv an older convparity wrote reads too: its header must name columns of COLUMNS, in COLUMNS'
order, with at least REQUIRED_COLUMNS; the columns added since (the speed columns, PERF_COLUMNS; the
post-op and quantization ones) read empty (NaN, 0 or ""). So runs from before a column existed can still
be reported and compared.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import ConvparityError

RESULTS_FILE = "results.csv"


def bias_word(bias: bool) -> str:
    """How bias is spelled in every flag, file and column: "on" or "off"."""
    return "on" if bias else "off"


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
    allclose: bool | None = None
    reduction: int = 0
    accumulation: str = ""
    message: str = ""
    deviation: str = ""
    # How x, w, b and dy were drawn when not the default (harness.cases.inputs.InputStyle's text: "saturating",
    # "weights:PATH"); a case drawn two ways is two cases.
    inputs: str = ""
    seconds: float = math.nan
    op: str = ""
    rank: int = 0
    batch: int = 0
    in_channels: int = 0
    out_channels: int = 0
    groups: int = 0
    input_size: str = ""
    kernel_size: str = ""
    stride: str = ""
    padding: str = ""
    output_padding: str = ""
    dilation: str = ""
    output_size: str = ""
    post_ops: str = ""
    quantization: str = ""
    steps: str = ""
    max_steps: int = 0
    rounding: str = ""
    repro: str = ""
    # Speed (`--perf`), only on `pass` rows of a case that passed on that backend: the backend's `run`
    # timed in its own worker after warm-up (harness.running.timing), and the compile share of the
    # case's first call (`seconds`) where the framework reports it.
    compile_seconds: float = math.nan
    perf_repeats: int = 0
    perf_min_s: float = math.nan
    perf_median_s: float = math.nan
    perf_spread: float = math.nan
    gflops: float = math.nan

    @staticmethod
    def spec_columns(spec: ConvSpec) -> dict:
        return {
            "case": spec.descriptor,
            "bias": spec.bias,
            "dtype": spec.dtype,
            "op": spec.op,
            "rank": spec.rank,
            "batch": spec.batch,
            "in_channels": spec.in_channels,
            "out_channels": spec.out_channels,
            "groups": spec.groups,
            "input_size": dims(spec.input_size),
            "kernel_size": dims(spec.kernel_size),
            "stride": dims(spec.stride),
            "padding": dims(spec.padding),
            "output_padding": dims(spec.output_padding),
            "dilation": dims(spec.dilation),
            "output_size": dims(spec.output_size),
            "post_ops": spec.attribute_options.partition(" ")[0].removeprefix("--attr-post-ops=")
            if spec.post_ops else "",
            "quantization": " ".join(word for word in spec.attribute_options.split()
                                     if not word.startswith("--attr-post-ops=")),
        }


COLUMNS = tuple(f.name for f in fields(Row))
PERF_COLUMNS = ("compile_seconds", "perf_repeats", "perf_min_s", "perf_median_s", "perf_spread", "gflops")
REQUIRED_COLUMNS = ("case", "name", "bias", "dtype", "backend", "backend_version", "tensor", "status", "err_ratio",
                    "message", "repro")
PANDAS_DTYPES = {
    **{f.name: "string" for f in fields(Row) if f.type == "str"},
    **{f.name: "float64" for f in fields(Row) if f.type == "float"},
    **{f.name: "int64" for f in fields(Row) if f.type == "int"},
    "bias": "bool",
    "allclose": "boolean",  # pandas' nullable boolean: <NA> where nothing was compared
}
KEY = ("case", "bias", "dtype", "backend", "tensor", "inputs")


def comparable_inputs(text: str) -> str:
    """The `inputs` column as two runs compare it: a model layer's weights by their model and file name (each run
    keeps its own copy, in its own folder), any other style as it is."""
    if not text.startswith("weights:"):
        return text
    return "weights:" + "/".join(Path(text.removeprefix("weights:")).parts[-2:])
# A spreadsheet executes a cell that starts with one of these (OWASP, "CSV injection"): such text
# cells are written with a leading apostrophe, as are cells starting with one, and read back without it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_cell(value: object) -> object:
    """A Row value as written to results.csv: bias on/off, allclose true/false, text made inert."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def text_cell(value: str) -> str:
    """A text cell as csv_cell wrote it, read back (its leading apostrophe, if any, dropped)."""
    return value[1:] if value.startswith("'") else value


class ResultsError(ConvparityError, ValueError):
    """A results.csv that cannot be read as this version writes it; the message names file and line."""


class CsvAppender:
    """Appends records to a CSV file whole or not at all: each batch is one write to the file, and a write
    that fails part-way (a full disk) is cut back off, so the file always ends with a whole record.
    The header is written when the file is new or empty. OSError propagates."""

    def __init__(self, path: Path, header: Iterable[str]) -> None:
        self.path = path
        self._descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if os.fstat(self._descriptor).st_size == 0:
            self._write([list(header)])

    def append(self, records: Iterable[Iterable[object]]) -> None:
        self._write(records)

    def _write(self, records: Iterable[Iterable[object]]) -> None:
        buffer = io.StringIO(newline="")
        csv.writer(buffer).writerows(records)
        data = buffer.getvalue().encode("utf-8", errors="surrogateescape")
        size = os.fstat(self._descriptor).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(self._descriptor, data[written:])
        except OSError:
            os.ftruncate(self._descriptor, size)
            raise

    def close(self) -> None:
        os.close(self._descriptor)


class ResultsWriter(CsvAppender):
    """Appends rows to DIR/results.csv, each batch (a case's rows) whole or not at all. A file an older version
    wrote (without the columns added since) is rewritten once with them first (`upgrade`), so every line has this
    version's columns."""

    def __init__(self, directory: Path) -> None:
        upgrade(directory / RESULTS_FILE)
        super().__init__(directory / RESULTS_FILE, COLUMNS)

    def write(self, rows: Iterable[Row]) -> None:
        self.append([bias_word(row.bias) if column == "bias" else csv_cell(getattr(row, column)) for column in COLUMNS]
                    for row in rows)


def upgrade(path: Path) -> None:
    """Rewrite a results.csv of an older version with this version's columns (those added since hold the Row's
    defaults), whole or not at all; a file already in this version's form, or none, is left as it is."""
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as file:
            header = next(csv.reader(file), None)
    except FileNotFoundError:
        return
    if header is None or tuple(header) == COLUMNS:
        return
    check_header(tuple(header), path)
    from convparity.harness.files import atomic_write

    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as file:
        rows = list(csv.DictReader(file))
    defaults = {f.name: csv_cell(f.default) for f in fields(Row) if f.name not in header}

    def write(out) -> None:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows([row[column] if column in row else defaults[column] for column in COLUMNS] for row in rows)

    atomic_write(path, write)


def check_header(present: tuple[str, ...], path: Path) -> None:
    """ResultsError unless `present` is this version's columns or an older version's: columns of COLUMNS, in its
    order, REQUIRED_COLUMNS among them."""
    unknown = [c for c in present if c not in COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    places = [COLUMNS.index(c) for c in present if c in COLUMNS]
    if unknown or missing or places != sorted(places):
        why = (f"unknown {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}" if missing
               else "in another order")
        raise ResultsError(f"{path} has other columns than this version of convparity writes ({why})")


def read_results(directory: str | Path):
    """results.csv as a pandas DataFrame with the documented column dtypes (bias and allclose as booleans).

    A damaged file (other columns, a cell that is not of its column's type) raises ResultsError naming
    the file and what is wrong.
    """
    import pandas as pd

    chunks = list(iter_results(directory))
    if not chunks:  # a header and no rows
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in PANDAS_DTYPES.items()})[list(COLUMNS)]
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def iter_results(directory: str | Path, chunk_rows: int | None = None):
    """results.csv as DataFrames of at most `chunk_rows` rows each (all of it at once for None), typed as
    `read_results` documents, so a report can read a run of any size in bounded memory."""
    import pandas as pd

    path = Path(directory) / RESULTS_FILE
    text_columns = [c for c, t in PANDAS_DTYPES.items() if t == "string"]
    converters = {"bias": _flag("bias", {"on": True, "off": False}),
                  "allclose": _flag("allclose", {"true": True, "false": False, "": None}),
                  **{c: text_cell for c in text_columns}}
    try:
        reader = pd.read_csv(path, dtype={c: t for c, t in PANDAS_DTYPES.items() if c not in converters},
                             converters=converters, keep_default_na=False, encoding="utf-8",
                             chunksize=chunk_rows or 1 << 62,
                             na_values={c: ["", "nan", "NaN"] for c, t in PANDAS_DTYPES.items() if t == "float64"})
        with reader:
            for frame in reader:
                yield _typed(frame, path, text_columns)
    except FileNotFoundError:
        raise ResultsError(f"{path} does not exist: the run wrote no rows yet") from None
    except OverflowError:
        raise ResultsError(f"{path} is damaged: a whole number too large for its column "
                           "(beyond 64-bit integers)") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ResultsError(f"{path} is damaged: {' '.join(str(error).split())}") from None


def _typed(frame, path: Path, text_columns: list[str]):
    present = tuple(frame.columns)
    check_header(present, path)
    if present != COLUMNS:  # written by an older convparity: the columns added since read empty
        defaults = {f.name: f.default for f in fields(Row)}
        for column in COLUMNS:
            if column not in present:
                frame[column] = _constant_column(defaults[column], PANDAS_DTYPES[column], frame.index)
        frame = frame[list(COLUMNS)]
    for column in text_columns:
        frame[column] = frame[column].astype("string")
    frame["bias"] = frame["bias"].astype(bool)
    frame["allclose"] = frame["allclose"].astype("boolean")
    return frame


def _constant_column(value: object, dtype: str, index):
    """A column of `value` in every row, of pandas dtype `dtype`."""
    import pandas as pd

    return pd.Series([value] * len(index), index=index, dtype=dtype)


def _flag(column: str, words: dict[str, bool | None]):
    def convert(text: str) -> bool | None:
        if text not in words:
            raise ValueError(f"column {column!r}: {text!r} is none of {', '.join(repr(w) for w in words)}")
        return words[text]

    return convert
