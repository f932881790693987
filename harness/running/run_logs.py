"""A run folder's logs, appended as the run goes: cases.csv (the cases drawn so far) and results.csv (the rows).

cases.csv is appended before each case runs (one line per case x dtype, in order); results.csv gets the
rows of the cases finished (harness.results). A resume reads both: it removes what an interruption cut
(a last line without its end, a case with some but not all of its tensor rows, a repeated row, reported),
and draws the rest of the selection. Every file is read as a stream, in bounded memory.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from convparity.harness.cases.descriptor import Case, DescriptorError, format_descriptor, parse_case
from convparity.harness.files import RunFolderError, atomic_write, os_error
from convparity.harness.results import (
    COLUMNS,
    RESULTS_FILE,
    CsvAppender,
    ResultsError,
    bias_word,
    check_header,
    csv_cell,
    text_cell,
    upgrade,
)
from convparity.harness.vocabulary import check_dtype

CASES_FILE = "cases.csv"
CASE_COLUMNS = ("descriptor", "bias", "dtype", "name", "tensors")


class CaseLog(CsvAppender):
    """Appends each case (with its dtype and compared tensors) to cases.csv before it runs."""

    def __init__(self, directory: Path) -> None:
        try:
            super().__init__(directory / CASES_FILE, CASE_COLUMNS)
        except OSError as error:
            raise os_error(directory / CASES_FILE, error) from None

    def log(self, case: Case) -> None:
        spec = case.spec
        try:
            self.append([(csv_cell(format_descriptor(spec)), bias_word(spec.bias), spec.dtype, csv_cell(case.name),
                          " ".join(case.tensors))])
        except OSError as error:
            raise os_error(self.path, error) from None


def read_cases(directory: Path) -> Iterator[Case]:
    """The cases logged in cases.csv, in order, as a stream: each with its dtype, bias and tensors. A cut
    last line is removed from the file first; a damaged line is a RunFolderError naming it."""
    path = directory / CASES_FILE
    if not path.is_file():
        return iter(())
    _drop_cut_tail(path, CASE_COLUMNS)
    return _parse_cases(path)


def _parse_cases(path: Path) -> Iterator[Case]:
    for number, (_, fields) in enumerate(_csv_records(path), start=1):
        if number == 1:
            continue
        if len(fields) != len(CASE_COLUMNS):
            raise RunFolderError(f"{path}:{number}: expected {len(CASE_COLUMNS)} fields, got {len(fields)}")
        descriptor, bias, dtype, name, tensors = fields
        descriptor, name = text_cell(descriptor), text_cell(name)
        if bias not in ("on", "off"):
            raise RunFolderError(f"{path}:{number}: bias must be on/off")
        try:
            check_dtype(dtype)
            case = parse_case(descriptor, dtype=dtype, bias=bias == "on")
            yield Case(case.spec, name, tensors=tuple(tensors.split()))
        except (DescriptorError, ValueError) as error:
            raise RunFolderError(f"{path}:{number}: {error}") from None


def count_cases(directory: Path) -> int:
    """How many cases cases.csv logs (read as a stream)."""
    path = directory / CASES_FILE
    return max(sum(1 for _ in _csv_records(path)) - 1, 0) if path.is_file() else 0


# -- results.csv: readied for appending ------------------------------------------------------------------

@dataclass(frozen=True)
class Repair:
    """What readying results.csv for a resume found: the (case, bias, dtype, backend, inputs) keys done, and
    how many rows it dropped as cut or incomplete, or as duplicates of rows before them."""

    done: set[tuple[str, bool, str, str, str]]
    dropped_incomplete: int
    dropped_duplicates: int


def repair_results(directory: Path, compared: Callable[[str, bool, str], int] | None = None) -> Repair:
    """Make results.csv fit to append to after an interruption; read and rewritten as a stream.

    A run killed mid-write can leave a cut last line, or some but not all tensor rows of a
    (case, bias, dtype, backend); a second writer (before runs were locked) may have written rows twice.
    Cut and incomplete groups are removed, a repeated row keeps its first copy, and the file is
    rewritten only then. Done means every tensor the case compares has its row: `compared(case, bias,
    dtype)` says how many (default: 4 with a bias, 3 without).
    """
    path = directory / RESULTS_FILE
    if not path.is_file():
        return Repair(set(), 0, 0)
    _drop_cut_tail(path, None)
    upgrade(path)  # an older version's columns: rewritten once with this version's
    expected = compared or (lambda case, bias, dtype: 4 if bias else 3)
    key_columns = [COLUMNS.index(c) for c in ("case", "bias", "dtype", "backend", "inputs")]
    tensor_column = COLUMNS.index("tensor")
    seen: dict[tuple[str, ...], set[str]] = {}
    duplicates = malformed = 0
    for number, (_, fields) in enumerate(_csv_records(path), start=1):
        if number == 1:
            continue
        if len(fields) != len(COLUMNS):
            malformed += 1
            continue
        tensors = seen.setdefault(tuple(text_cell(fields[i]) for i in key_columns), set())
        if fields[tensor_column] in tensors:
            duplicates += 1
        tensors.add(fields[tensor_column])
    complete = {key for key, tensors in seen.items() if len(tensors) >= expected(key[0], key[1] == "on", key[2])}
    dropped = 0
    if duplicates or malformed or len(complete) < len(seen):
        written: set[tuple[str, ...]] = set()

        def keep(file) -> None:
            nonlocal dropped
            for number, (raw, fields) in enumerate(_csv_records(path), start=1):
                whole = len(fields) == len(COLUMNS)
                full = tuple(text_cell(fields[i]) for i in key_columns) + (fields[tensor_column],) if whole else ()
                if number == 1 or (whole and full[:-1] in complete and full not in written):
                    file.write(raw)
                    written.add(full)
                elif not whole or full[:-1] not in complete:
                    dropped += 1

        atomic_write(path, keep)
    done = {(case, bias == "on", dtype, backend, inputs) for case, bias, dtype, backend, inputs in complete}
    return Repair(done, dropped, duplicates)


def _drop_cut_tail(path: Path, header: tuple[str, ...] | None) -> None:
    """Remove what an interruption cut from the end of an appended CSV file: a last record without its line
    break (or with a quoted field left open). Other columns than `header` are a RunFolderError (None: results.csv,
    whose older versions' columns `results.check_header` accepts)."""
    whole_end, first = 0, None
    for raw, fields in _csv_records(path, whole_only=False):
        if first is None:
            first = fields
        if not raw.endswith(("\n", "\r")) or not fields:
            break
        whole_end += len(raw.encode("utf-8", errors="surrogateescape"))
    if first is not None and whole_end and header is None:
        try:
            check_header(tuple(first), path)
        except ResultsError as error:
            raise RunFolderError(f"{error}; cannot resume it") from None
    elif header is not None and first is not None and whole_end and tuple(first) != header:
        raise RunFolderError(f"{path} has other columns than this version writes ({', '.join(header)}); "
                             "cannot resume it")
    if whole_end != path.stat().st_size:
        try:
            with path.open("r+b") as file:
                file.truncate(whole_end)
        except OSError as error:
            raise os_error(path, error) from None


def _csv_records(path: Path, whole_only: bool = True) -> Iterator[tuple[str, list[str]]]:
    """(raw text, fields) of each CSV record of `path`, streamed; a record whose quoted field the end of the
    file cuts open is yielded with no fields unless `whole_only`."""
    raw: list[str] = []
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as file:

        def lines() -> Iterator[str]:
            for line in file:
                raw.append(line)
                yield line

        reader = csv.reader(lines())
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error:  # a quoted field cut by the interruption
                if not whole_only:
                    yield "".join(raw), []
                return
            yield "".join(raw), fields
            raw.clear()


def status_counts(directory: Path) -> dict[str, int]:
    """How many rows of results.csv have each status (read as a stream, in bounded memory)."""
    path = directory / RESULTS_FILE
    counts: dict[str, int] = {}
    if not path.is_file():
        return counts
    column = COLUMNS.index("status")
    with path.open(newline="", encoding="utf-8", errors="replace") as file:
        for fields in itertools.islice(csv.reader(file), 1, None):
            if len(fields) == len(COLUMNS):
                counts[fields[column]] = counts.get(fields[column], 0) + 1
    return counts
