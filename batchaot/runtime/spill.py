"""Bounded memory for bucketed dataset checks (unique, a partitioned reference) in one process.

A run over work units hands the driver every unit's pieces of every bucket (settle.py).
On Ray those are objects in Ray's object store, which spills to disk by itself; in this
process they are plain Arrow tables, so a unique over more keys than memory holds would
hold them all. :class:`SpillStore` keeps the held pieces under a byte *budget*: past it,
every held piece is appended to its bucket's file (one Arrow IPC stream per piece, in a
folder of the run's own) and replaced by a :class:`Spilled` handle; a bucket is read back
only when it is reduced, one bucket at a time. :func:`buckets_for` chooses how many
buckets a check uses, so that one bucket fits in a fraction of the budget whatever the
data's size.

What the budget counts: the bucketed checks' pieces the driver holds between units. The
reduce of one bucket needs a few times that bucket's bytes on top.
"""
from __future__ import annotations

import os
import resource
import shutil
import tempfile
from dataclasses import dataclass

import pyarrow as pa

from ..checks.base import Partials, Piece

BUDGET_SHARE = 4             # default budget: a quarter of the physical memory ...
# ... or an eighth of the room under an address-space limit: the run's threads, their
# allocator arenas and decode buffers mapped about 0.8 GB more than at the start (2 cores)
LIMITED_BUDGET_SHARE = 8
BUCKET_SHARE = 4             # a bucket is planned to hold at most a quarter of the budget
MIN_BUDGET = 16 << 20
MAX_BUCKETS = 1 << 12
FIXED_KEY_BYTES = 8          # a fixed-width key column in a piece (integers, dates, timestamps)
VARIABLE_KEY_BYTES = 32      # a string or binary key column: a guess (offsets + typical values)
PIECE_ROW_BYTES = 16         # a piece's own columns per row: its row number and key hash


@dataclass(frozen=True)
class Spilled:
    """Pieces of one bucket written to `path`: (source, offset, length) per IPC stream."""

    path: str
    pieces: tuple[tuple[str, int, int], ...]


def pieces_of(item: list[Piece] | Spilled) -> list[Piece]:
    """A unit's pieces of one bucket, read back if they were spilled."""
    if not isinstance(item, Spilled):
        return item
    pieces = []
    with open(item.path, "rb") as fh:
        for source, offset, length in item.pieces:
            # each piece in a buffer of its own: a key a result keeps holds its piece alone
            fh.seek(offset)
            pieces.append((source, pa.ipc.open_stream(pa.py_buffer(fh.read(length))).read_all()))
    return pieces


def default_budget() -> int:
    """A share of what this process may still use: physical memory, or the room left
    under an address-space limit (RLIMIT_AS)."""
    budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // BUDGET_SHARE
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        budget = min(budget, (soft - _address_space()) // LIMITED_BUDGET_SHARE)
    return max(budget, MIN_BUDGET)


def _address_space() -> int:
    """This process's mapped bytes (what RLIMIT_AS limits)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:                 # no /proc: count nothing as used
        return 0


def rows_bound(units) -> int:
    """The rows of work units, a unit of unknown rows (not Parquet) counted by its bytes,
    which bound them."""
    return sum(u.rows if u.rows >= 0 else u.bytes for u in units)


def buckets_for(rows: int, row_bytes: int, budget: int, least: int) -> int:
    """The power of two of buckets (at least `least`) that keeps one bucket of `rows` rows
    of `row_bytes` each within a BUCKET_SHARE of `budget`."""
    wanted = -(-rows * row_bytes * BUCKET_SHARE // budget)
    n = max(least, 1)
    while n < wanted and n < MAX_BUCKETS:
        n *= 2
    return n


def row_bytes(check) -> int:
    """An estimate of one row's bytes in a check's pieces: its row number and hash, and
    its key columns."""
    widths = [FIXED_KEY_BYTES if pa.types.is_primitive(check.schema.field(c).type) else VARIABLE_KEY_BYTES
              for c in check.out_columns]
    return PIECE_ROW_BYTES + sum(widths)


def plan_buckets(checks: list, rows: int, budget: int) -> None:
    """Give every bucketed check enough buckets for `rows` checked rows under `budget`."""
    for check in checks:
        if check.partials is Partials.BUCKETED:
            check.partition(buckets_for(rows, row_bytes(check), budget, check.buckets))


class SpillStore:
    """The driver's bucket items of one run, kept under `budget` bytes in memory; spilled
    ones go to a folder made under `parent` (None: the system's temporary folder) and
    removed by :meth:`close`."""

    def __init__(self, budget: int, parent: str | None = None):
        self.budget = budget
        self.parent = parent
        self.folder: str | None = None
        self.held = 0               # bytes of the pieces in memory
        self.spilled = 0            # bytes written to disk, over the run
        self.spills = 0             # how many times the budget was reached

    def add(self, buckets: list[list[list]], check: int, bucket: int, item) -> None:
        """Append one unit's item for (check, bucket) to `buckets` (CheckGather's lists);
        past the budget, every item in memory goes to disk."""
        buckets[check][bucket].append(item)
        if isinstance(item, list):
            self.held += sum(t.nbytes for _, t in item)
        if self.held > self.budget:
            self.spill(buckets)

    def spill(self, buckets: list[list[list]]) -> None:
        """Every held item to its bucket's file; the lists then hold Spilled handles."""
        if self.folder is None:
            self.folder = tempfile.mkdtemp(prefix=".spill-", dir=self.parent)
        for c, per_check in enumerate(buckets):
            for b, items in enumerate(per_check):
                for j, item in enumerate(items):
                    if isinstance(item, list) and item:
                        items[j] = self._write(os.path.join(self.folder, f"c{c}-b{b}.arrows"), item)
        self.held = 0
        self.spills += 1

    def _write(self, path: str, pieces: list[Piece]) -> Spilled:
        written = []
        with open(path, "ab") as fh:
            for source, table in pieces:
                start = fh.tell()
                with pa.ipc.new_stream(fh, table.schema) as writer:
                    writer.write_table(table)
                written.append((source, start, fh.tell() - start))
        self.spilled += written[-1][1] + written[-1][2] - written[0][1]
        return Spilled(path, tuple(written))

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
