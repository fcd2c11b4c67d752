"""`unique: [col, ...]` — every row whose key occurs more than once violates.

As SQL UNIQUE: a row with a NULL in any key column is never a duplicate.

map hashes the key tuple of each row (Numba, over the Arrow buffers) and partitions
(hash, row, key values) into P buckets by the hash's top bits. merge concatenates per
bucket. finish resolves each bucket on its own (``finish_bucket``, so a driver can reduce
buckets in parallel): rows whose hash occurs once are unique for sure; the few candidate
rows left are grouped by their real key values, so a hash collision can never report a
false duplicate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import RuleError
from ..spec import RuleSpec
from . import keys
from .base import (SAMPLE, CheckBase, CheckOutcome, Piece, column_list, jsonable, passes,
                   out_name, plain_type, resolve_column, with_rule)

HASH = "__hash"
DEFAULT_BUCKETS = 16


@dataclass
class UniquePartial:
    rows: int                        # rows checked (after `where`)
    null_rows: int                   # rows with a NULL key column: never duplicates
    buckets: list[list[Piece]] | None  # per bucket: (source, table of __hash, row, key columns);
    #                                    None in a *head*: the counts without the buckets (see split)


@dataclass
class BucketResult:
    """The duplicates found in one bucket."""

    violating: pa.Table | None       # source, row, key columns (None once written elsewhere)
    groups: pa.Table | None          # key columns, count, first_source, first_row
    rows: int = 0                    # violating rows (kept when `violating` is dropped)

    def __post_init__(self) -> None:
        if self.violating is not None:
            self.rows = self.violating.num_rows


class UniqueCheck(CheckBase):
    def __init__(self, spec: RuleSpec, schema: pa.Schema, buckets: int = DEFAULT_BUCKETS):
        super().__init__(spec, schema)
        keys.bucket_bits(buckets)
        self.buckets = buckets
        self.out_columns = [resolve_column(spec, c, schema, "key column")
                            for c in column_list(spec, spec.body, "unique")]
        for name in self.out_columns:
            if not keys.is_key_type(schema.field(name).type):
                raise RuleError(spec.name, f"column '{name}' has type {schema.field(name).type}, "
                                "which cannot be compared as a key")
        self.stored = [out_name(c) for c in self.out_columns]   # names in partials and output

    def describe(self) -> str:
        return f"unique({', '.join(self.out_columns)})"

    # -- map ----------------------------------------------------------------------------
    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> UniquePartial:
        sub, rows, checked = self.keyed_rows(batch, first_row)
        hashes = keys.hash_rows([keys.comparable(c) for c in sub.columns], sub.num_rows)
        table = pa.table({HASH: hashes, "row": rows,
                          **{s: sub.column(c).cast(plain_type(sub.column(c).type))
                             for s, c in zip(self.stored, self.out_columns)}})
        return UniquePartial(checked, checked - sub.num_rows, self._split(source, table, hashes))

    def _split(self, source: str, table: pa.Table, hashes: np.ndarray) -> list[list[Piece]]:
        if self.buckets == 1:
            return [[(source, table)]]
        order, bounds = keys.partition(hashes, self.buckets)
        shuffled = table.take(pa.array(order))
        return [[(source, shuffled.slice(bounds[b], bounds[b + 1] - bounds[b]))]
                for b in range(self.buckets)]

    # -- merge ----------------------------------------------------------------------------
    def merge(self, partials: list[UniquePartial]) -> UniquePartial:
        """Partials, or heads (see split): a merge of heads is a head."""
        rows, null_rows = sum(p.rows for p in partials), sum(p.null_rows for p in partials)
        if partials and all(p.buckets is None for p in partials):
            return UniquePartial(rows, null_rows, None)
        if any(p.buckets is None or len(p.buckets) != self.buckets for p in partials):
            raise ValueError(f"unique '{self.name}': partials must all have {self.buckets} buckets")
        return UniquePartial(rows, null_rows,
                             [[pc for p in partials for pc in p.buckets[b]] for b in range(self.buckets)])

    def split(self, partial: UniquePartial) -> tuple[UniquePartial, list[list[Piece]]]:
        """(head, buckets): the small counts, and each bucket's pieces to be finished on
        their own (finish_bucket) wherever that bucket's reducer runs."""
        return UniquePartial(partial.rows, partial.null_rows, None), partial.buckets

    # -- finish ---------------------------------------------------------------------------
    def finish(self, partial: UniquePartial) -> CheckOutcome:
        return self.outcome(partial, [self.finish_bucket(b) for b in partial.buckets])

    def finish_bucket(self, pieces: list[Piece]) -> BucketResult:
        """Exact duplicates among the rows of one bucket (all partials' pieces of it)."""
        pieces = [(s, t) for s, t in pieces if t.num_rows]
        if not pieces:
            return BucketResult(None, None)
        hashes = np.concatenate([t.column(HASH).to_numpy() for _, t in pieces])
        candidate = keys.duplicate_hashes(hashes)
        if not candidate.any():
            return BucketResult(None, None)
        rows = _candidates(pieces, candidate)
        return self._resolve(rows)

    def _resolve(self, rows: pa.Table) -> BucketResult:
        """Group candidate rows by their real key values; groups of two or more are duplicates."""
        rows = rows.sort_by([("source", "ascending"), ("row", "ascending")])
        groups = keys.group_keys(rows, self.stored)
        groups = groups.filter(pc.greater(groups["i_count"], 1))
        if groups.num_rows == 0:
            return BucketResult(None, None)
        members = pc.list_flatten(groups["i_list"])
        first = rows.take(groups["i_min"])
        summary = first.select(self.stored).append_column("count", groups["i_count"]) \
            .append_column("first_source", first["source"]).append_column("first_row", first["row"])
        return BucketResult(rows.take(members), summary)

    def outcome(self, partial: UniquePartial, results: list[BucketResult]) -> CheckOutcome:
        """The check's outcome from the merged counts (a partial or head) and every bucket's
        result; a bucket whose rows were written elsewhere has violating=None but its count."""
        violating = [r.violating for r in results if r.violating is not None]
        table = with_rule(self.name, pa.concat_tables(violating)) if violating else None
        groups = [r.groups for r in results if r.groups is not None]
        n_bad = sum(r.rows for r in results)
        details = {"duplicate_keys": sum(g.num_rows for g in groups), "duplicate_rows": n_bad,
                   "null_key_rows": partial.null_rows,
                   "sample": self._sample(pa.concat_tables(groups)) if groups else []}
        return CheckOutcome(passed=passes(n_bad, partial.rows, self.spec.mostly), violations=n_bad,
                            rows=partial.rows, value=details["duplicate_keys"], details=details,
                            violating=table)

    def _sample(self, groups: pa.Table) -> list[dict]:
        """The most repeated keys first; ties by first occurrence, so any split agrees."""
        top = groups.sort_by([("count", "descending"), ("first_source", "ascending"),
                              ("first_row", "ascending")]).slice(0, SAMPLE)
        return [{"key": jsonable({c: g[s] for c, s in zip(self.out_columns, self.stored)}), "count": g["count"]}
                for g in top.to_pylist()]


def _candidates(pieces: list[Piece], candidate: np.ndarray) -> pa.Table:
    """source, row and key columns of the rows flagged in `candidate` (aligned with pieces)."""
    parts, start = [], 0
    for source, t in pieces:
        mask = candidate[start:start + t.num_rows]
        start += t.num_rows
        if mask.any():
            got = t.filter(pa.array(mask)).drop_columns([HASH])
            parts.append(got.add_column(0, "source", pa.array([source] * got.num_rows, pa.string())))
    return pa.concat_tables(parts, promote_options="permissive")
