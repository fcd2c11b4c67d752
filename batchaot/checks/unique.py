"""`unique: [col, ...]` — every row whose key occurs more than once violates.

As SQL UNIQUE: a row with a NULL in any key column is never a duplicate.

A one-column fixed-width key (integers, floats, dates, times, timestamps:
keys.exact_column) is *held*: map keeps the batch's key column as it is (zero-copy)
and merge lists them. In this process finish settles every held column at once
(duplicates.find: the cheapest exact method for the data, no buckets), and the
outcome keeps only which rows are duplicates: their table (row numbers and keys) is
built when ``violating`` is first read. ``split``, which only a distributed run calls,
partitions held columns into buckets as below.

Any other key is partitioned by map into P buckets by the top bits of the key's hash
(Numba, over the Arrow buffers); merge concatenates per bucket; finish resolves each
bucket on its own (``finish_bucket``, so a driver can reduce buckets in parallel).

Two kinds of piece, which a bucket may mix (both kinds hash a key alike):

- *exact*: the key is one fixed-width column (integers, floats, dates, times,
  timestamps: keys.exact_column), whose comparable form is one int64 per row. A piece is
  (row, key), lean: the row as a uint32 offset from the batch's first row, an integer
  key less the batch's smallest in 1, 2 or 4 bytes (both bases in the piece's schema
  metadata). finish counts the int64 values themselves in cache-sized hash tables, so
  no hash collision can be mistaken for a duplicate and nothing needs confirming. A
  bucket whose pieces are each strictly increasing over disjoint ranges is proved
  duplicate-free without counting.
- *hashed*: any other key (strings, decimals, booleans, compound keys). A piece is
  (__hash, row, key columns); rows whose hash occurs once are unique for sure, and the
  few candidates left are grouped by their real key values, so a hash collision can
  never report a false duplicate either.

A bucket's violating rows and groups name their source through a dictionary-encoded
column; the outcome orders every violating row by (source, row) with a counting pass
over the row range (not a comparison sort) and dictionary-encodes its rule, source and,
for a one-column key with few distinct duplicates, key columns (part files written
through `labelled` have plain strings).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..engine import parallel
from ..errors import RuleError
from ..spec import RuleSpec
from . import duplicates, keys
from .base import (BucketResult, CheckBase, CheckOutcome, LazyOutcome, Partials, Piece, bucketed, coded, coded_violating,
                   column_list, index_type, jsonable, most_repeated, passes, out_name, plain_type, resolve_column,
                   violating_columns)

HASH = "__hash"
DEFAULT_BUCKETS = 16


@dataclass
class Held:
    """One batch's exact key column, as map found it (after `where`)."""

    source: str
    first_row: int
    rows: np.ndarray | None          # row numbers within source; None: first_row + 0..n-1
    key: pa.Array

    @property
    def span(self) -> tuple[int, int]:
        """(first, last) row number."""
        if self.rows is None:
            return self.first_row, self.first_row + len(self.key) - 1
        return int(self.rows[0]), int(self.rows[-1])


@dataclass
class UniquePartial:
    rows: int                        # rows checked (after `where`)
    null_rows: int                   # rows with a NULL key column: never duplicates
    buckets: list[list[Piece]] | None  # per bucket: (source, table of row, key columns [, __hash]);
    #                                    None in a *head* (the counts alone, see split) or
    #                                    when every batch was held
    held: list[Held] = field(default_factory=list)   # exact key columns, whole (module doc)


class UniqueCheck(CheckBase):
    partials = Partials.BUCKETED          # keys hashed into `buckets`, each settled on its own
    row_output = True                     # every row of a duplicated key

    def __init__(self, spec: RuleSpec, schema: pa.Schema, buckets: int = DEFAULT_BUCKETS):
        super().__init__(spec, schema)
        self.bits = keys.bucket_bits(buckets)
        self.buckets = buckets
        self.out_columns = [resolve_column(spec, c, schema, "key column")
                            for c in column_list(spec, spec.body, "unique")]
        for name in self.out_columns:
            if not keys.is_key_type(schema.field(name).type):
                raise RuleError(spec.name, f"column '{name}' has type {schema.field(name).type}, "
                                "which cannot be compared as a key")
        self.stored = [out_name(c) for c in self.out_columns]   # names in partials and output
        self.key_type = plain_type(schema.field(self.out_columns[0]).type)

    def partition(self, buckets: int) -> None:
        """Hash keys into `buckets` (a power of two) from now on: more buckets, smaller ones
        (runtime/spill.py chooses how many for the data's size)."""
        self.bits = keys.bucket_bits(buckets)
        self.buckets = buckets

    def describe(self) -> str:
        return f"unique({', '.join(self.out_columns)})"

    # -- map ----------------------------------------------------------------------------
    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> UniquePartial:
        sub, rows = self.rows_of(batch, first_row)
        if len(self.out_columns) == 1 and keys.exact_column(sub.column(0)) is not None:
            key = sub.column(0)
            return UniquePartial(sub.num_rows, key.null_count, None, [Held(source, first_row, rows, key)])
        rows = np.arange(first_row, first_row + sub.num_rows, dtype=np.int64) if rows is None else rows
        checked = sub.num_rows
        valid = keys.valid_rows(sub.columns)
        if valid is not None:
            sub, rows = sub.filter(pa.array(valid)), rows[valid]
        hashes = keys.hash_rows([keys.comparable(c) for c in sub.columns], sub.num_rows)
        table = pa.table({HASH: hashes, "row": rows,
                          **{s: sub.column(c).cast(plain_type(sub.column(c).type))
                             for s, c in zip(self.stored, self.out_columns)}})
        return UniquePartial(checked, checked - sub.num_rows, bucketed(source, table, hashes, self.buckets))

    def _partition(self, held: Held) -> list[list[Piece]]:
        """A held column as one exact piece per bucket."""
        # a piece is (row: offset from row0, key: narrow from key0 when the column's type is
        # the check's, else as is); row0 and key0 ride in the piece's schema metadata
        col, source, first_row = keys.exact_column(held.key), held.source, held.first_row
        got = keys.exact_partition(col, held.rows, first_row, self.buckets, narrow=col.type == self.key_type)
        meta = {_ROW0: str(first_row)}
        if got.key0 is not None:
            meta[_KEY0] = str(got.key0)
            key = pa.Array.from_buffers(pa.from_numpy_dtype(got.keys.dtype), len(got.keys),
                                        [None, pa.py_buffer(got.keys)])
        else:
            key = keys.raw_array(col.type, got.keys)
        table = pa.table({"row": got.rows, self.stored[0]: key}).replace_schema_metadata(meta)
        b = got.bounds
        return [[(source, table.slice(b[k], b[k + 1] - b[k]))] for k in range(self.buckets)]

    # -- merge ----------------------------------------------------------------------------
    def merge(self, partials: list[UniquePartial]) -> UniquePartial:
        """Partials, or heads (see split): a merge of heads is a head. Held columns stay
        whole unless a partial has buckets: then they are partitioned too."""
        rows, null_rows = sum(p.rows for p in partials), sum(p.null_rows for p in partials)
        held = [h for p in partials for h in p.held]
        if all(p.buckets is None for p in partials):
            return UniquePartial(rows, null_rows, None, held)
        if any((p.buckets is None and not p.held) or (p.buckets is not None and len(p.buckets) != self.buckets)
               for p in partials):
            raise ValueError(f"unique '{self.name}': partials must all have {self.buckets} buckets")
        return UniquePartial(rows, null_rows, self._all_buckets(partials))

    def _all_buckets(self, partials: list[UniquePartial]) -> list[list[Piece]]:
        """Every partial's pieces per bucket, held columns partitioned."""
        parts = [p.buckets for p in partials if p.buckets is not None]
        parts += [self._partition(h) for p in partials for h in p.held]
        return [[pc for b in parts for pc in b[k]] for k in range(self.buckets)]

    def split(self, partial: UniquePartial) -> tuple[UniquePartial, list[list[Piece]]]:
        """(head, buckets): the small counts, and each bucket's pieces to be finished on
        their own (finish_bucket) wherever that bucket's reducer runs."""
        return UniquePartial(partial.rows, partial.null_rows, None), self._all_buckets([partial])

    # -- finish ---------------------------------------------------------------------------
    def finish(self, partial: UniquePartial) -> CheckOutcome:
        if partial.buckets is None:
            done = self._finish_held(partial)
            if done is not None:
                return done
        head, buckets = self.split(partial)
        return self.outcome(head, parallel.run_parallel(self.finish_bucket, buckets))

    def _finish_held(self, partial: UniquePartial) -> CheckOutcome | None:
        """Every held column settled at once (duplicates.find); None when they cannot be:
        the same rows held twice, or key types that differ between batches."""
        held = [h for h in partial.held if len(h.key) > h.key.null_count]
        names = sorted({h.source for h in held})
        rank = {s: i for i, s in enumerate(names)}
        held.sort(key=lambda h: (rank[h.source], h.span[0]))
        if not _held_apart([rank[h.source] for h in held], [h.span for h in held]):
            return None
        cols = [keys.exact_column(h.key) for h in held]
        if len({c.type for c in cols}) > 1:
            return None
        found = duplicates.find(cols)
        sample = []
        for count, position in found.sample:
            p, i = found.locate(position)
            value = keys.raw_array(cols[p].type, cols[p].raw[i:i + 1]).to_pylist()[0]
            sample.append({"key": jsonable({self.out_columns[0]: value}), "count": count})
        details = {"duplicate_keys": found.keys, "duplicate_rows": found.rows,
                   "null_key_rows": partial.null_rows, "sample": sample}
        fields = dict(passed=passes(found.rows, partial.rows, self.spec.mostly), violations=found.rows,
                      rows=partial.rows, value=found.keys, details=details)
        if not found.rows:
            return CheckOutcome(**fields)
        return LazyOutcome(_HeldRows(self.name, self.stored[0], held, cols, found).table, **fields)

    def finish_bucket(self, pieces: list[Piece]) -> BucketResult:
        """Exact duplicates among the rows of one bucket (all partials' pieces of it)."""
        pieces = [(s, t) for s, t in pieces if t.num_rows]
        if not pieces:
            return BucketResult(None, None)
        if all(HASH not in t.column_names for _, t in pieces):
            done = self._finish_exact(pieces)
            if done is not None:
                return done
        return self._finish_hashed(pieces)

    def _finish_exact(self, pieces: list[Piece]) -> BucketResult | None:
        """Count exact pieces' keys; None if they cannot be (rows not in (source, row)
        order, or key types that differ between files): then they are compared hashed."""
        names = sorted({s for s, _ in pieces})
        rank = {s: i for i, s in enumerate(names)}
        key = self.stored[0]
        parts = [_exact_piece(t, key, self.key_type) for _, t in pieces]
        if any(x is None for x in parts) or len({x.out_type for x in parts}) > 1:
            return None
        order = sorted(range(len(pieces)), key=lambda i: (rank[pieces[i][0]], parts[i].first_row))
        pieces, parts = [pieces[i] for i in order], [parts[i] for i in order]
        codes = [rank[s] for s, _ in pieces]
        if not _pieces_apart(codes, parts):
            return None
        values, distinct, rows_ascending = keys.canonical_values(
            [(x.values, x.is_float, x.base) for x in parts], [x.rows for x in parts])
        if not rows_ascending:
            return None
        if distinct:
            return BucketResult(None, None)
        offsets = np.cumsum([0] + [len(x.rows) for x in parts])
        bitmap, per_piece, firsts, counts = keys.exact_duplicates(values, self.bits, offsets)
        del values
        if not len(firsts):
            return BucketResult(None, None)
        dictionary = pa.array(names, pa.string())
        codes_type = index_type(len(names))
        typ = parts[0].out_type
        chunks, first_rows, first_codes, first_keys = [], [], [], []
        first_at = np.searchsorted(firsts, offsets)
        for p, x in enumerate(parts):
            if per_piece[p]:
                got_rows, got_keys = keys.emit_piece(bitmap, offsets[p], per_piece[p], x.rows, x.row0,
                                                     x.src, x.src_base, x.out_dtype)
                chunks.append(pa.table({
                    "source": coded(_constant(len(got_rows), codes[p], codes_type), dictionary),
                    "row": got_rows, key: keys.raw_array(typ, got_keys)}))
            lo, hi = first_at[p], first_at[p + 1]
            if hi > lo:
                local = firsts[lo:hi] - offsets[p]
                first_rows.append(x.row0 + x.rows[local].astype(np.int64))
                first_codes.append(np.full(hi - lo, codes[p], codes_type))
                first_keys.append((x.src[local] + x.src_base).astype(x.out_dtype).view(f"<u{x.out_dtype.itemsize}"))
        violating = pa.concat_tables(chunks)
        groups = pa.table({key: keys.raw_array(typ, np.concatenate(first_keys)),
                           "count": counts,
                           "first_source": coded(np.concatenate(first_codes), dictionary),
                           "first_row": np.concatenate(first_rows)})
        return BucketResult(violating, groups)

    def _finish_hashed(self, pieces: list[Piece]) -> BucketResult:
        pieces = [(s, t if HASH in t.column_names else self._hashed(t)) for s, t in pieces]
        hashes = np.concatenate([t.column(HASH).to_numpy() for _, t in pieces])
        candidate = keys.duplicate_hashes(hashes)
        if not candidate.any():
            return BucketResult(None, None)
        return self._resolve(*_candidates(pieces, candidate))

    def _hashed(self, table: pa.Table) -> pa.Table:
        """An exact piece as a hashed one (a bucket that mixes both kinds)."""
        key = self.stored[0]
        x = _exact_piece(table, key, self.key_type)
        table = pa.table({"row": x.row0 + x.rows.astype(np.int64),
                          key: keys.raw_array(x.out_type, (x.src + x.src_base).astype(x.out_dtype))})
        cols = [keys.comparable(table.column(key))]
        return table.add_column(0, HASH, pa.array(keys.hash_rows(cols, table.num_rows)))

    def _resolve(self, rows: pa.Table, dictionary: pa.Array) -> BucketResult:
        """Group candidate rows by their real key values; groups of two or more are duplicates."""
        rows = rows.sort_by([("source", "ascending"), ("row", "ascending")])
        groups = keys.group_keys(rows, self.stored)
        groups = groups.filter(pc.greater(groups["i_count"], 1))
        if groups.num_rows == 0:
            return BucketResult(None, None)
        members = pc.list_flatten(groups["i_list"])
        first = rows.take(groups["i_min"])
        summary = first.select(self.stored).append_column("count", groups["i_count"]) \
            .append_column("first_source", _as_dictionary(first["source"], dictionary)) \
            .append_column("first_row", first["row"])
        taken = rows.take(pa.array(np.sort(members.to_numpy())))
        taken = taken.set_column(0, "source", _as_dictionary(taken["source"], dictionary))
        return BucketResult(taken, summary)

    # -- outcome --------------------------------------------------------------------------
    def outcome(self, partial: UniquePartial, results: list[BucketResult]) -> CheckOutcome:
        """The check's outcome from the merged counts (a partial or head) and every bucket's
        result; a bucket whose rows were written elsewhere has violating=None but its count."""
        groups = [r.groups for r in results if r.groups is not None and r.groups.num_rows]
        table = self._ordered([r.violating for r in results if r.violating is not None],
                              duplicate_keys=sum(r.keys for r in results))
        n_bad = sum(r.rows for r in results)
        details = {"duplicate_keys": sum(r.keys for r in results), "duplicate_rows": n_bad,
                   "null_key_rows": partial.null_rows, "sample": self._sample(groups)}
        return CheckOutcome(passed=passes(n_bad, partial.rows, self.spec.mostly), violations=n_bad,
                            rows=partial.rows, value=details["duplicate_keys"], details=details,
                            violating=table)

    def labelled(self, table: pa.Table) -> pa.Table | None:
        """One bucket's violating rows as written to a part file: sorted, rule and source
        as plain strings."""
        out = self._ordered([table])
        if out is None:
            return None
        return out.set_column(0, "rule", out["rule"].cast(pa.string())) \
            .set_column(1, "source", out["source"].cast(pa.string()))

    def _ordered(self, tables: list[pa.Table], duplicate_keys: int = 0) -> pa.Table | None:
        """rule, source, row, key columns of every violating row, sorted by (source, row)
        whatever the split; rule and source dictionary-encoded, and so is a one-column
        fixed-width key when `duplicate_keys` (its number of distinct duplicate keys) is
        small: each row's key then costs one or two bytes, not eight."""
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return None
        batches = [b for t in tables for b in t.to_batches() if b.num_rows]
        names, codes = _global_codes([b.column(b.schema.get_field_index("source")) for b in batches])
        rows = [b.column(b.schema.get_field_index("row")).to_numpy() for b in batches]
        # batches that cover the same rows one after another: their writes share the cache
        by_start = sorted(range(len(batches)), key=lambda k: (int(codes[k][0]), int(rows[k][0])))
        batches, codes, rows = ([x[k] for k in by_start] for x in (batches, codes, rows))
        n = sum(len(r) for r in rows)
        key_cols = self.stored
        types = {b.schema.field(key_cols[0]).type for b in batches}
        exact = len(key_cols) == 1 and len(types) == 1 and _fixed_width(next(iter(types)))
        if exact:       # the key values themselves travel with their row
            payload = [keys.raw_values(b.column(b.schema.get_field_index(key_cols[0]))) for b in batches]
        else:           # the rows' positions do, and the key columns are taken at the end
            offsets = np.cumsum([0] + [len(r) for r in rows])
            payload = [np.arange(offsets[k], offsets[k + 1], dtype=np.int64) for k in range(len(rows))]
        placed = _span_order(len(names), codes, rows, payload, n)
        if placed is None:
            order = np.lexsort((np.concatenate(rows), np.concatenate(
                [_expand(c, len(r)) for c, r in zip(codes, rows)])))
            out_rows = np.concatenate(rows)[order]
            out_codes = np.concatenate([_expand(c, len(r)) for c, r in zip(codes, rows)])[order]
            out_payload = np.concatenate(payload)[order]
            out_codes = out_codes.astype(index_type(len(names)))
        else:
            out_rows, out_codes, out_payload = placed
        if exact:
            columns = {key_cols[0]: _key_column(next(iter(types)), out_payload, duplicate_keys)}
        else:
            flat = pa.concat_tables([pa.Table.from_batches([b.select(key_cols)]) for b in batches],
                                    promote_options="permissive")
            taken = flat.take(pa.array(out_payload))
            columns = {c: taken.column(c) for c in key_cols}
        return coded_violating(self.name, names, out_codes, out_rows, columns)

    def _sample(self, groups: list[pa.Table]) -> list[dict]:
        """The most repeated keys first; ties by first occurrence, so any split agrees."""
        if not groups:
            return []
        batches = [b for g in groups for b in g.to_batches() if b.num_rows]
        names, codes = _global_codes([b.column(b.schema.get_field_index("first_source")) for b in batches])
        counts = np.concatenate([b.column(b.schema.get_field_index("count")).to_numpy() for b in batches])
        first = np.concatenate([b.column(b.schema.get_field_index("first_row")).to_numpy() for b in batches])
        code = np.concatenate([_expand(c, b.num_rows) for c, b in zip(codes, batches)])
        pick = most_repeated(counts, lambda tied, k: tied[np.lexsort((first[tied], code[tied]))[:k]])
        pick = pick[np.lexsort((first[pick], code[pick], -counts[pick]))]
        offsets = np.cumsum([0] + [b.num_rows for b in batches])
        out = []
        for i in pick:
            k = int(np.searchsorted(offsets, i, side="right")) - 1
            g = batches[k].slice(int(i - offsets[k]), 1).to_pylist()[0]
            out.append({"key": jsonable({c: g[s] for c, s in zip(self.out_columns, self.stored)}),
                        "count": int(counts[i])})
        return out


# --- helpers ---------------------------------------------------------------------------

def _held_apart(codes: list[int], spans: list[tuple[int, int]]) -> bool:
    """Held columns (in (source, first row) order) of one source cover apart row ranges."""
    return all(a != b or s[1] < t[0] for a, b, s, t in zip(codes, codes[1:], spans, spans[1:]))


class _HeldRows:
    """The duplicate rows of held columns, as the violating table of `outcome` lays them
    out: rule, source, row, key; in (source, row) order, which is the held order."""

    def __init__(self, rule: str, key: str, held: list[Held], cols: list[keys.ExactColumn],
                 found: duplicates.Found):
        self.rule, self.key, self.held, self.cols, self.found = rule, key, held, cols, found

    def table(self) -> pa.Table:
        # one pass per held column writes each duplicate row's number and key straight to
        # its place in the output (the key as a dictionary index when keys are few)
        n, typ, dtype = self.found.rows, self.cols[0].type, self.cols[0].raw.dtype
        first = self._every_row()
        # + 1: gather_rows' slot to spare; none when the rows are first .. first + n - 1
        rows = keys.empty(n + 1, np.int64) if first is None else _NO_ROWS
        got = self._coded(rows)
        if got is not None:
            key, counts = got
        elif first is None:
            raw = keys.empty(n + 1, dtype)
            counts = self._gather(rows, raw, _Coder(dtype, 0, 0))
            key = keys.raw_array(typ, raw[:n])
        else:                          # every row, as held
            counts = [len(c.values) for c in self.cols]
            key = pa.chunked_array([keys.raw_array(typ, c.raw) for c in self.cols], typ)
        rows = rows[:n] if first is None else keys.shared_range(first, n)
        sources: dict[str, int] = {}
        for h, c in zip(self.held, counts):
            sources[h.source] = sources.get(h.source, 0) + c
        return violating_columns(self.rule, sources, rows, {self.key: key})

    def _coded(self, rows: np.ndarray) -> tuple[pa.Array, list[int]] | None:
        """The keys as dictionary codes of the smallest index type that holds them, and
        the rows each column gave; None when there are too many keys (as _key_column)."""
        for codes, coder in _code_attempts(self.cols[0].raw.dtype, self.found.keys, self.found.rows):
            counts = self._gather(rows, codes, coder)
            if counts is not None:
                return coded(codes, keys.raw_array(self.cols[0].type, coder.dictionary())), counts
        return None

    def _every_row(self) -> int | None:
        """The first row when the duplicates are every row of one source's held columns,
        back to back from it (no NULL, no `where`): their numbers need no memory."""
        if not self.found.every or len({h.source for h in self.held}) != 1:
            return None
        at = self.held[0].first_row
        for h, col in zip(self.held, self.cols):
            if h.rows is not None or col.nulls or h.first_row != at:
                return None
            at += len(col.values)
        return self.held[0].first_row

    def _gather(self, rows: np.ndarray, out: np.ndarray, coder: _Coder) -> list[int] | None:
        """Every held column's duplicate rows into rows and out (keys, or their codes);
        the rows each column gave, or None when the coder's dictionary overflowed."""
        counts, k = [], 0
        for p, (h, col) in enumerate(zip(self.held, self.cols)):
            bits, bit0 = self.found.bits(p, col)
            at = _NO_ROWS if h.rows is None else h.rows
            got, coder.size = gather_rows(bits, bit0, len(col.values), at, h.first_row, col.raw,
                                          rows, out, k, coder.slots, coder.index, coder.values, coder.size)
            if coder.size < 0:
                return None
            counts.append(got - k)
            k = got
        assert k == self.found.rows, "duplicate rows found and gathered differ"
        return counts


def _constant(n: int, code: int, dtype) -> np.ndarray:
    return keys.shared_zeros(n, dtype) if code == 0 else keys.full(n, code, dtype)


def _as_dictionary(codes: pa.ChunkedArray | pa.Array, dictionary: pa.Array) -> pa.Array:
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    return pa.DictionaryArray.from_arrays(codes.cast(pa.int32()), dictionary)


_CODES = ((np.int8, 127), (np.int16, 32767))     # dictionary index types and their entries
_NO_ROWS = np.zeros(0, np.int64)
_NO_BITS = np.zeros(0, np.uint8)            # gather_rows: every row


class _Coder:
    """An open-addressing table that numbers keys in order of first appearance, up to
    `limit` of them (limit 0: no coding), in a table sized for `table_keys` (small tables
    stay in cache), for the kernels below."""

    def __init__(self, dtype, limit: int, table_keys: int):
        cap = keys.table_size(table_keys) if limit else 0
        self.slots, self.index = np.empty(cap, dtype), np.full(cap, -1, np.int64)
        self.values, self.size = np.empty(limit, dtype), 0

    def dictionary(self) -> np.ndarray:
        return self.values[:self.size].copy()


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(v, slots, index):
    # the slot of v in an open-addressing table, or the free slot where it belongs
    mask = np.uint64(index.shape[0] - 1)
    s = keys.mix(np.uint64(v)) & mask
    while index[s] >= 0 and slots[s] != v:
        s = (s + np.uint64(1)) & mask
    return s


@numba.njit(cache=True, nogil=True)
def gather_rows(bits, bit0, n, rows_of, first_row, raw, out_rows, out, k, slots, index, values, size):
    """Rows i < n whose bit bit0 + i is set in `bits` (every row when it is empty), in
    order: their numbers (rows_of[i], or first_row + i when rows_of is empty) to
    out_rows[k:] (unless it is empty), and their keys raw[i] to out[k:], or the keys'
    numbers when the coder (slots, index, values, size: _Coder) codes. Returns (new k,
    coder size), size -1 when the coder's values or its table (at most half full)
    overflowed. Uncoded, out_rows and out need a slot more than the rows found."""
    coded = index.shape[0] > 0
    if not coded and bits.shape[0] > 0:
        # no branch on the bits: every row is written and counted only when its bit is
        # set (out_rows and out need one slot more than the rows found)
        for i in range(n):
            j = bit0 + i
            out_rows[k] = rows_of[i] if rows_of.shape[0] > 0 else first_row + i
            out[k] = raw[i]
            k += (bits[j >> 3] >> (j & 7)) & 1
        return k, size
    i = 0
    while i < n:
        if bits.shape[0] > 0:
            j = bit0 + i
            if (j & 7) == 0 and i + 8 <= n and bits[j >> 3] == 0:
                i += 8
                continue
            if not (bits[j >> 3] >> (j & 7)) & 1:
                i += 1
                continue
        if out_rows.shape[0] > 0:
            out_rows[k] = rows_of[i] if rows_of.shape[0] > 0 else first_row + i
        if coded:
            v = raw[i]
            s = _slot(v, slots, index)
            if index[s] < 0:
                if size == values.shape[0] or 2 * (size + 1) > index.shape[0]:
                    return k, -1
                slots[s], index[s], values[size] = v, size, v
                size += 1
            out[k] = index[s]
        else:
            out[k] = raw[i]
        k += 1
        i += 1
    return k, size


def _key_column(typ: pa.DataType, raw: np.ndarray, duplicate_keys: int) -> pa.Array:
    """The violating rows' keys (raw values of type typ): dictionary-encoded with int8 or
    int16 indices when there are few distinct values, else as they are. Both the choice
    and the index type depend only on the data, not on how it was split (a float key can
    have more distinct values than keys: -0.0 and 0.0 are one key)."""
    for codes, coder in _code_attempts(raw.dtype, duplicate_keys, len(raw)):
        _, coder.size = gather_rows(_NO_BITS, 0, len(raw), _NO_ROWS, 0, raw, _NO_ROWS, codes, 0,
                                    coder.slots, coder.index, coder.values, coder.size)
        if coder.size >= 0:
            return coded(codes, keys.raw_array(typ, coder.dictionary()))
    return keys.raw_array(typ, raw)


def _code_attempts(dtype, duplicate_keys: int, n: int):
    """(codes for n rows, _Coder) to try in turn: each index type that holds
    `duplicate_keys` keys, smallest first, with a table sized for those keys, then (a
    float key can have more distinct values than keys: -0.0 and 0.0) one for as many
    values as the index type holds."""
    for index, limit in _CODES:
        if 0 < duplicate_keys <= limit:
            for table_keys in dict.fromkeys((duplicate_keys, limit)):
                yield keys.empty(n, index), _Coder(dtype, limit, table_keys)


def _fixed_width(t: pa.DataType) -> bool:
    """Types whose values are plain 1/2/4/8-byte words (keys.raw_values)."""
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)) \
        and t.bit_width in (8, 16, 32, 64)


def _pieces_apart(codes: list[int], parts: list) -> bool:
    """Pieces of one source do not overlap (each one's rows ascending is checked apart)."""
    last_code, last_row = -1, -1
    for c, x in zip(codes, parts):
        if c == last_code and x.first_row <= last_row:
            return False
        last_code, last_row = c, x.last_row
    return True


class _ExactPiece:
    """An exact piece's arrays: rows (offsets from row0), canonical-form values (each
    values[i] + base), and how its keys are written back (src[i] + src_base as out_dtype,
    raw bits of out_type)."""

    __slots__ = ("rows", "row0", "values", "base", "is_float", "src", "src_base", "out_type", "out_dtype")

    @property
    def first_row(self) -> int:
        return self.row0 + int(self.rows[0])

    @property
    def last_row(self) -> int:
        return self.row0 + int(self.rows[-1])


_ROW0, _KEY0 = b"batchaot.row0", b"batchaot.key0"


def _exact_piece(t: pa.Table, key: str, key_type: pa.DataType) -> _ExactPiece | None:
    x = _ExactPiece()
    meta = t.schema.metadata or {}
    x.rows = keys.raw_values(t.column("row")) if t.schema.field("row").type == pa.uint32() \
        else t.column("row").to_numpy()
    x.row0 = int(meta.get(_ROW0, b"0"))
    if _KEY0 in meta:                          # narrow: values less key0, of the check's key type
        x.values = x.src = keys.raw_values(t.column(key))
        x.base = x.src_base = np.int64(int(meta[_KEY0]))
        x.is_float = False
        x.out_type = key_type
        x.out_dtype = np.dtype(f"<i{key_type.bit_width // 8}")
        return x
    col = keys.exact_column(t.column(key))
    if col is None:
        return None
    x.values, x.base, x.is_float = col.values, np.int64(0), col.is_float
    x.src, x.src_base = col.raw, col.raw.dtype.type(0)
    x.out_type, x.out_dtype = col.type, col.raw.dtype
    return x


def _candidates(pieces: list[Piece], candidate: np.ndarray) -> tuple[pa.Table, pa.Array]:
    """source (as a code into the sorted source names), row and key columns of the rows
    flagged in `candidate` (aligned with pieces), and the source names."""
    names = sorted({s for s, _ in pieces})
    rank = {s: i for i, s in enumerate(names)}
    parts, start = [], 0
    for source, t in pieces:
        mask = candidate[start:start + t.num_rows]
        start += t.num_rows
        if mask.any():
            got = t.filter(pa.array(mask)).drop_columns([HASH])
            parts.append(got.add_column(0, "source", pa.array(np.full(got.num_rows, rank[source], np.int32))))
    return pa.concat_tables(parts, promote_options="permissive"), pa.array(names, pa.string())


def _global_codes(columns: list[pa.Array]) -> tuple[list[str], list[np.ndarray]]:
    """Source columns (dictionary-encoded or strings) as int32 codes into their sorted
    distinct names."""
    encoded = [c if pa.types.is_dictionary(c.type) else pc.dictionary_encode(c) for c in columns]
    names = sorted({s for c in encoded for s in c.dictionary.to_pylist()})
    rank = {s: i for i, s in enumerate(names)}
    codes = []
    for c in encoded:
        remap = np.array([rank[s] for s in c.dictionary.to_pylist()], np.int32)
        idx = c.indices.to_numpy(zero_copy_only=False)
        codes.append(remap[idx] if len(remap) > 1 or not len(idx) else remap[:1])
    return names, codes


def _expand(codes: np.ndarray, n: int) -> np.ndarray:
    """A batch's codes, one per row (a constant code is kept as a single entry)."""
    return codes if len(codes) == n else np.full(n, codes[0], np.int32)


@numba.njit(cache=True, nogil=True)
def _span(codes, rows, lo, hi):
    for i in range(rows.shape[0]):
        c = codes[i]
        if rows[i] < lo[c]:
            lo[c] = rows[i]
        if rows[i] > hi[c]:
            hi[c] = rows[i]


@numba.njit(cache=True, nogil=True)
def _span_scatter(codes, rows, payload, base, lo, present, span_payload):
    const = codes.shape[0] != rows.shape[0]
    for i in range(rows.shape[0]):
        c = codes[0] if const else codes[i]
        x = base[c] + rows[i] - lo[c]
        present[x] = 1
        span_payload[x] = payload[i]


@numba.njit(cache=True, nogil=True)
def _span_compress(present, span_payload, base, lo, widths, start, stop, k, out_rows, out_codes, out_payload):
    # the marked places in [start, stop) of the span, in order, written from out[k] on
    # (out_codes empty: one source, whose code 0 needs no writing)
    codes = out_codes.shape[0] > 0
    for c in range(base.shape[0]):
        a = max(start, base[c])
        b = min(stop, base[c] + widths[c])
        first = lo[c] - base[c]
        for x in range(a, b):
            if present[x]:
                out_rows[k] = first + x
                if codes:
                    out_codes[k] = c
                out_payload[k] = span_payload[x]
                k += 1
    return k


def _span_order(n_codes: int, codes: list[np.ndarray], rows: list[np.ndarray],
                payload: list[np.ndarray], n: int):
    """(rows, codes, payload) of every batch, ordered by (code, row): each value is put
    at its row's place in the row range of its source, then the range is read in order.
    None when those ranges are much wider than the rows, or a (source, row) occurs twice
    (then a sort orders them)."""
    if n == 0:
        return None
    lo = np.full(n_codes, np.iinfo(np.int64).max, np.int64)
    hi = np.full(n_codes, np.iinfo(np.int64).min, np.int64)
    for c, r in zip(codes, rows):
        if len(c) != len(r):                       # one source: numpy's min/max
            lo[c[0]] = min(lo[c[0]], r.min())
            hi[c[0]] = max(hi[c[0]], r.max())
        else:
            _span(c, r, lo, hi)
    widths = np.where(hi >= lo, hi - lo + 1, 0)
    total = int(widths.sum())
    if total > 4 * n + (1 << 20):
        return None
    base = np.zeros(n_codes, np.int64)
    np.cumsum(widths[:-1], out=base[1:])
    present = keys.zeros(total, np.uint8)
    span_payload = keys.empty(total, payload[0].dtype)
    # batches come sorted by their first row: each thread takes a contiguous run of them,
    # so the two write far apart (not into the same cache lines)
    parts = min(parallel.threads(), len(rows))
    cuts = parallel.cuts(len(rows), parts)

    def place(k: int) -> None:
        for j in range(cuts[k], cuts[k + 1]):
            _span_scatter(codes[j], rows[j], payload[j], base, lo, present, span_payload)
    parallel.run_parallel(place, list(range(parts)))
    out_rows = keys.empty(n, np.int64)
    out_codes = keys.empty(n if n_codes > 1 else 0, index_type(n_codes))
    out_payload = keys.empty(n, payload[0].dtype)
    cuts = parallel.cuts(total, parts)
    marked = [int(np.count_nonzero(present[a:b])) for a, b in zip(cuts, cuts[1:])]
    if sum(marked) != n:
        return None                                # a (source, row) twice: fewer places than rows
    starts = np.cumsum([0] + marked)
    parallel.run_parallel(lambda k: _span_compress(present, span_payload, base, lo, widths, cuts[k], cuts[k + 1],
                                               starts[k], out_rows, out_codes, out_payload), list(range(parts)))
    if n_codes == 1:
        out_codes = keys.shared_zeros(n, out_codes.dtype)
    return out_rows, out_codes, out_payload
