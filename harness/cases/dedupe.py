"""Dropping repeated cases from a stream of any length, in bounded memory.

A case is identified by a 16-byte digest of its canonical descriptor, bias, dtype and whether that dtype
is its own (a batch file's) or a placeholder for the run's dtypes. Digests are kept
in a Python set up to `IN_MEMORY` entries (~100 bytes each); past that they move to an SQLite table in
a temporary file, whose page cache is bounded, so a stream of millions of cases is deduplicated
without its memory growing with the stream.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.spec import ConvSpec

IN_MEMORY = 50_000


def spec_digest(spec: ConvSpec, fixed_dtype: bool = False, inputs: str = "") -> bytes:
    """16 bytes that identify a spec (its canonical descriptor, bias and dtype), whether its dtype is the case's
    own (`Case.fixed_dtype`) rather than a placeholder for the run's dtypes, and how its values are drawn when
    not the default (`inputs`: an InputStyle's text; a model layer's own weights make it a case of its own)."""
    key = f"{spec.descriptor}|{spec.bias}|{spec.dtype}" + ("|fixed" if fixed_dtype else "") + (
        f"|inputs={inputs}" if inputs else "")
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


class SeenSet:
    """`add(spec)` (or `add_key(digest)`) is True the first time a spec (a key) is added, False after; memory
    stays bounded."""

    def __init__(self, in_memory: int = IN_MEMORY) -> None:
        self._limit = in_memory
        self._digests: set[bytes] = set()
        self._folder: tempfile.TemporaryDirectory | None = None
        self._db: sqlite3.Connection | None = None
        self.count = 0

    def add(self, spec: ConvSpec, fixed_dtype: bool = False, inputs: str = "") -> bool:
        return self.add_key(spec_digest(spec, fixed_dtype, inputs))

    def add_key(self, digest: bytes) -> bool:
        if self._db is None:
            if digest in self._digests:
                return False
            self._digests.add(digest)
            if len(self._digests) > self._limit:
                self._spill()
        else:
            cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (digest,))
            if cursor.rowcount == 0:
                return False
        self.count += 1
        return True

    def _spill(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="convparity-seen-")
        self._db = sqlite3.connect(Path(self._folder.name) / "seen.sqlite", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("PRAGMA cache_size=-8192")  # 8 MiB
        self._db.execute("CREATE TABLE seen (digest BLOB PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO seen VALUES (?)", ((d,) for d in self._digests))
        self._digests = set()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


def dedupe(cases: Iterable[Case], seen: SeenSet | None = None) -> Iterator[Case]:
    """The cases in order, dropping any whose spec came before (in this stream or in `seen`)."""
    own = seen is None
    seen = seen or SeenSet()
    try:
        for case in cases:
            if seen.add(case.spec, case.fixed_dtype, case.inputs_key):
                yield case
    finally:
        if own:
            seen.close()
