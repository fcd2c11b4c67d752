"""`reference: {columns: [...], dataset: PATH, key: [...]}` — every row whose key (all of
`columns` non-NULL) is not among the referenced dataset's `key` tuples violates.

As a SQL foreign key (MATCH SIMPLE): a row with a NULL in any of `columns` is never a
violation. `dataset` is a file, a folder or a glob (read with batchaot.io, any number of
files), or a pyarrow filesystem URI; relative paths resolve against the rules file's
folder.

The referenced side becomes a :class:`KeySet` once: its distinct key tuples (in the
comparable form of keys.py) and their hashes. A KeySet is plain data that pickles small
and has ``to_bytes``, so a driver can build it once and share it (Ray's object store);
each process rebuilds the hash index from the hashes. Probing hashes each row, finds a
reference row with the same hash, and confirms on the real values; rows whose hash is
shared by several reference keys (collisions) are settled by an exact join.
"""
from __future__ import annotations

import glob
import io
import os
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import DataError, RuleError
from ..io import sources, units
from ..spec import RuleSpec
from . import keys
from .base import (SAMPLE, BucketResult, CheckBase, CheckOutcome, Piece, SideInput, bucketed, column_list, jsonable,
                   out_name, passes, piece, plain_type, resolve_column, spec_error, violating_table)

FIELDS = ("columns", "dataset", "key")
EXAMPLE = "reference: {columns: [customer_id], dataset: customers.parquet, key: [id]}"
HASH = "__hash"
REFERENCE_SIDE = "\x00reference"   # source of the referenced dataset's pieces (never a path)


# --- the referenced side -----------------------------------------------------------

@dataclass
class KeySet:
    """Distinct key tuples of a referenced dataset (comparable form) and their hashes."""

    dataset: str
    key: list[str]
    table: pa.Table                  # k0..kn-1 (comparable form) and __hash, one row per key
    rows: int                        # rows read from the dataset
    null_rows: int                   # rows with a NULL key (they match nothing)
    _index: keys.HashIndex | None = field(default=None, repr=False, compare=False)
    _dense: object = field(default=None, repr=False, compare=False)   # DenseSet, False: none

    @property
    def index(self) -> keys.HashIndex:
        if self._index is None:
            self._index = keys.HashIndex(self.table.column(HASH).to_numpy())
        return self._index

    @property
    def dense(self) -> keys.DenseSet | None:
        """A bitset of a one-column integer key whose values lie close together."""
        if self._dense is None:
            one = self.table.num_columns == 2                 # k0 and the hash
            self._dense = (keys.DenseSet.of(self.table.column(0).combine_chunks()) if one else None) or False
        return self._dense or None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_index": None, "_dense": None}      # rebuilt where they are used

    def to_bytes(self) -> bytes:
        meta = {b"dataset": self.dataset.encode(), b"key": "\x1f".join(self.key).encode(),
                b"rows": str(self.rows).encode(), b"null_rows": str(self.null_rows).encode()}
        table = self.table.replace_schema_metadata(meta)
        sink = io.BytesIO()
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "KeySet":
        table = ipc.open_stream(pa.py_buffer(data)).read_all()
        meta = table.schema.metadata
        return cls(meta[b"dataset"].decode(), meta[b"key"].decode().split("\x1f"),
                   table.replace_schema_metadata(None), int(meta[b"rows"]), int(meta[b"null_rows"]))


def build_key_set(dataset: str, key: list[str], casts: list[pa.DataType | None]) -> KeySet:
    """Read `key` of every file of `dataset` and keep the distinct non-NULL tuples."""
    parts, rows, null_rows = [], 0, 0
    for batch in _read(dataset, key):
        table, nulls = key_table(batch, key, casts)
        rows, null_rows = rows + batch.num_rows, null_rows + nulls
        parts.append(table)
    return key_set_of(dataset, key, parts, rows, null_rows)


def key_table(batch: pa.RecordBatch, key: list[str], casts: list[pa.DataType | None]) -> tuple[pa.Table, int]:
    """The batch's non-NULL key tuples in comparable form (columns k0..), and how many
    rows had a NULL key."""
    cols = [_cast(batch.column(k), c) for k, c in zip(key, casts)]
    valid = keys.valid_rows(cols)
    nulls = 0
    if valid is not None:
        nulls = int(len(valid) - valid.sum())
        cols = [c.filter(pa.array(valid)) for c in cols]
    return pa.table({f"k{i}": keys.comparable(c) for i, c in enumerate(cols)}), nulls


def key_set_of(dataset: str, key: list[str], parts: list[pa.Table], rows: int, null_rows: int) -> KeySet:
    """The distinct key tuples of `parts` (columns k0..) with their hashes."""
    names = [f"k{i}" for i in range(len(key))]
    parts = [t.select(names) for t in parts if t.num_rows]
    table = pa.concat_tables(parts).group_by(names, use_threads=False).aggregate([]) if parts else None
    if table is None or table.num_rows == 0:
        table = pa.table({n: pa.array([], pa.int64()) for n in names})
    table = table.select(names).combine_chunks()
    hashes = keys.hash_rows(table.columns, table.num_rows)
    return KeySet(dataset, list(key), table.append_column(HASH, pa.array(hashes)), rows, null_rows)


def _read(dataset: str, columns: list[str]):
    if "://" in dataset:
        import pyarrow.dataset as ds
        try:
            yield from ds.dataset(dataset).to_batches(columns=columns)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{dataset}: cannot read: {str(exc).splitlines()[0]}") from None
        return
    for unit in units.plan(units.expand_paths([dataset])):
        yield from units.read_unit(unit, columns=columns)


def _schema(dataset: str) -> pa.Schema:
    if "://" in dataset:
        import pyarrow.dataset as ds
        try:
            return ds.dataset(dataset).schema
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{dataset}: cannot read: {str(exc).splitlines()[0]}") from None
    return sources.read_schema(units.expand_paths([dataset])[0])


def _cast(arr: pa.Array, target: pa.DataType | None) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr if target is None else arr.cast(target)


# --- the check ---------------------------------------------------------------------------

@dataclass
class ReferencePartial:
    rows: int                  # rows checked (after `where`)
    null_rows: int             # rows with a NULL in a key column: never violations
    pieces: list[Piece]        # shared key set: the rows whose key is missing (source, row + columns)
    buckets: list[list[Piece]] | None = None   # partitioned: per bucket, probe rows and reference keys
    ref_rows: int = 0          # partitioned: rows read from the referenced dataset ...
    ref_null_rows: int = 0     # ... and those with a NULL key


class ReferenceCheck(CheckBase):
    """Two ways to run: with a *shared* key set (the whole referenced key set in every
    process, built once), or *partitioned* (``partition(buckets)``): both sides are hashed
    into buckets — the checked rows by ``map``, the referenced dataset by ``map_side`` —
    and each bucket is settled on its own (``finish_bucket``), so no process needs more
    than one bucket of the referenced keys."""

    side_input = SideInput.SHARED_OR_PARTITIONED   # the referenced keys
    row_output = True                              # the rows whose key is missing

    def __init__(self, spec: RuleSpec, schema: pa.Schema, key_set: KeySet | None = None):
        super().__init__(spec, schema)
        self.buckets = 0                      # 0: shared key set; else partitioned into this many
        body = _body(spec)
        self.out_columns = [resolve_column(spec, c, schema) for c in column_list(spec, body["columns"], "columns")]
        self.dataset = _resolve_path(spec, body["dataset"])
        ref_schema = _schema(self.dataset)
        self.key = [_ref_column(spec, k, ref_schema, self.dataset) for k in column_list(spec, body["key"], "key")]
        if len(self.key) != len(self.out_columns):
            raise spec_error(spec, f"reference: {len(self.out_columns)} columns but {len(self.key)} key "
                             "columns; they pair up one to one")
        self.casts = [_common(spec, c, schema.field(c).type, k, ref_schema.field(k).type, self.dataset)
                      for c, k in zip(self.out_columns, self.key)]
        self._key_set = key_set

    def describe(self) -> str:
        return f"reference({', '.join(self.out_columns)}) in {self.dataset}({', '.join(self.key)})"

    @property
    def key_set(self) -> KeySet:
        """The referenced keys, read on first use (or given by a driver through use_key_set)."""
        if self._key_set is None:
            self._key_set = build_key_set(self.dataset, self.key, self.casts)
        return self._key_set

    def use_key_set(self, key_set: KeySet) -> None:
        if key_set.dataset != self.dataset or key_set.key != self.key:
            raise ValueError(f"key set of {key_set.dataset}{key_set.key} does not fit {self.describe()}")
        self._key_set = key_set

    def shared_state(self) -> KeySet | None:
        return None if self.buckets else self.key_set

    def use_shared_state(self, state: KeySet) -> None:
        self.use_key_set(state)

    def __getstate__(self) -> dict:
        # a driver ships the key set separately (once, through the object store)
        return {**self.__dict__, "_key_set": None}

    # -- partitioned mode -----------------------------------------------------------------
    def partition(self, buckets: int) -> None:
        """Settle the check bucket by bucket instead of with one shared key set."""
        keys.bucket_bits(buckets)
        self.buckets = buckets

    def side_units(self) -> list | None:
        """Work units of the referenced dataset, planned from footers; None for a URI,
        which is read through pyarrow.dataset and so always shared."""
        if "://" in self.dataset:
            return None
        return units.plan(units.expand_paths([self.dataset]))

    @property
    def side_columns(self) -> list[str]:
        return list(self.key)

    def map_side(self, batch: pa.RecordBatch) -> ReferencePartial:
        """One batch of the referenced dataset, its distinct keys hashed into the buckets."""
        table, nulls = key_table(batch, self.key, self.casts)
        table = table.group_by(table.column_names, use_threads=False).aggregate([])   # fewer to ship
        hashes = keys.hash_rows(table.columns, table.num_rows)
        table = table.append_column(HASH, pa.array(hashes))
        return ReferencePartial(0, 0, [], bucketed(REFERENCE_SIDE, table, hashes, self.buckets),
                                ref_rows=batch.num_rows, ref_null_rows=nulls)

    def _map_partitioned(self, sub: pa.RecordBatch, rows: np.ndarray, comp: list[pa.Array],
                         checked: int, source: str) -> ReferencePartial:
        hashes = keys.hash_rows(comp, sub.num_rows)
        table = pa.table({HASH: hashes, "row": rows, **{f"k{i}": c for i, c in enumerate(comp)},
                          # the rules' schema, not this file's: files may differ in width
                          **{out_name(c): sub.column(c).cast(plain_type(self.schema.field(c).type))
                             for c in self.out_columns}})
        return ReferencePartial(checked, checked - sub.num_rows, [],
                                bucketed(source, table, hashes, self.buckets))

    def split(self, partial: ReferencePartial) -> tuple[ReferencePartial, list[list[Piece]]]:
        """(head, buckets) — as unique's split: the counts, and the pieces of each bucket."""
        return replace(partial, buckets=None), partial.buckets

    def finish_bucket(self, pieces: list[Piece]) -> BucketResult:
        """The checked rows of one bucket whose key is not among that bucket's reference keys."""
        probe = [(s, t) for s, t in pieces if s != REFERENCE_SIDE and t.num_rows]
        names = [f"k{i}" for i in range(len(self.key))]
        ks = key_set_of(self.dataset, self.key, [t for s, t in pieces if s == REFERENCE_SIDE], 0, 0)
        if not probe:
            return BucketResult(None, None, ref_keys=ks.table.num_rows)
        rows = pa.concat_tables([t.add_column(0, "source", pa.array([s] * t.num_rows, pa.string()))
                                 for s, t in probe], promote_options="permissive")
        comp = [rows.column(n).combine_chunks() for n in names]
        present = self._present(comp, rows.num_rows, ks, rows.column(HASH).to_numpy())
        missing = rows.filter(pa.array(~present)).drop_columns([HASH, *names])
        if missing.num_rows == 0:
            return BucketResult(None, None, ref_keys=ks.table.num_rows)
        missing = missing.sort_by([("source", "ascending"), ("row", "ascending")])
        stored = [out_name(c) for c in self.out_columns]
        groups = keys.group_keys(missing, stored)
        first = missing.take(groups["i_min"])
        summary = first.select(stored).append_column("count", groups["i_count"]) \
            .append_column("first_source", first["source"]).append_column("first_row", first["row"])
        return BucketResult(missing, summary, ref_keys=ks.table.num_rows)

    def outcome(self, partial: ReferencePartial, results: list[BucketResult]) -> CheckOutcome:
        """The outcome of a partitioned check from its merged head and every bucket's result."""
        violating = [r.violating for r in results if r.violating is not None]
        groups = [r.groups for r in results if r.groups is not None]
        n_bad = sum(r.rows for r in results)
        sample = []
        if groups:
            top = pa.concat_tables(groups).sort_by([("count", "descending"), ("first_source", "ascending"),
                                                   ("first_row", "ascending")]).slice(0, SAMPLE)
            sample = [{"key": jsonable({c: r[out_name(c)] for c in self.out_columns}), "count": r["count"]}
                      for r in top.to_pylist()]
        details = {"missing_rows": n_bad, "null_key_rows": partial.null_rows, "reference": self.dataset,
                   "reference_rows": partial.ref_rows, "reference_keys": sum(r.ref_keys for r in results),
                   "missing_keys": sum(r.keys for r in results), "sample": sample}
        table = self.labelled(pa.concat_tables(violating)) if violating else None
        return CheckOutcome(passed=passes(n_bad, partial.rows, self.spec.mostly), violations=n_bad,
                            rows=partial.rows, value=details["missing_keys"], details=details,
                            violating=table)

    # -- map / merge / finish -------------------------------------------------------------
    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> ReferencePartial:
        sub, rows, checked = self.keyed_rows(batch, first_row)
        comp = [keys.comparable(_cast(c, t)) for c, t in zip(sub.columns, self.casts)]
        if self.buckets:
            return self._map_partitioned(sub, rows, comp, checked, source)
        ks = self.key_set
        missing = np.flatnonzero(~self._present(comp, sub.num_rows, ks))
        pieces = []
        if len(missing):
            taken = pa.array(missing)
            pieces.append(piece(source, rows[missing], {c: sub.column(c).take(taken) for c in self.out_columns}))
        return ReferencePartial(checked, checked - sub.num_rows, pieces)

    def _present(self, comp: list[pa.Array], n: int, ks: KeySet, hashes: np.ndarray | None = None) -> np.ndarray:
        """Which of the n key tuples `comp` (their hashes, if known) are in the key set."""
        if ks.dense is not None and pa.types.is_int64(comp[0].type):
            return ks.dense.contains(comp[0].to_numpy())         # exact: no hash to confirm
        ref = ks.table
        at = ks.index.probe(keys.hash_rows(comp, n) if hashes is None else hashes)
        present = np.zeros(n, dtype=bool)
        hit = np.flatnonzero(at >= 0)
        if len(hit) == 0:
            return present
        taken_rows, taken_ref = pa.array(hit), pa.array(at[hit])
        same = keys.equal_rows([c.take(taken_rows) for c in comp],
                               [ref.column(i).take(taken_ref) for i in range(len(comp))])
        present[hit[same]] = True
        # a hash shared by several reference keys: the one probed may not be the right one
        unsure = hit[~same & ks.index.shared[at[hit]]]
        if len(unsure):
            present[unsure] = self._joined(comp, unsure, ref)
        return present

    @staticmethod
    def _joined(comp: list[pa.Array], rows: np.ndarray, ref: pa.Table) -> np.ndarray:
        """Exact membership of `rows` by a join on the real key values."""
        names = [f"k{i}" for i in range(len(comp))]
        probe = pa.table({**{n: c.take(pa.array(rows)) for n, c in zip(names, comp)},
                          "i": pa.array(np.arange(len(rows)))})
        found = probe.join(ref.select(names), names, join_type="left semi", use_threads=False)
        out = np.zeros(len(rows), dtype=bool)
        out[found.column("i").to_numpy()] = True
        return out

    def merge(self, partials: list[ReferencePartial]) -> ReferencePartial:
        """Partials of either side, or heads (see split)."""
        with_buckets = [p.buckets for p in partials if p.buckets is not None]
        buckets = [[pc for b in with_buckets for pc in b[i]] for i in range(self.buckets)] \
            if with_buckets else None
        return ReferencePartial(sum(p.rows for p in partials), sum(p.null_rows for p in partials),
                                [x for p in partials for x in p.pieces], buckets,
                                sum(p.ref_rows for p in partials), sum(p.ref_null_rows for p in partials))

    def finish(self, partial: ReferencePartial) -> CheckOutcome:
        if self.buckets:      # both sides' partials merged: settle every bucket here
            return self.outcome(partial, [self.finish_bucket(b) for b in partial.buckets or []])
        table = violating_table(self.name, partial.pieces)
        n_bad = table.num_rows if table is not None else 0
        ks = self.key_set
        details = {"missing_rows": n_bad, "null_key_rows": partial.null_rows,
                   "reference": self.dataset, "reference_rows": ks.rows,
                   "reference_keys": ks.table.num_rows, **self._missing_keys(table)}
        return CheckOutcome(passed=passes(n_bad, partial.rows, self.spec.mostly), violations=n_bad,
                            rows=partial.rows, value=details["missing_keys"], details=details,
                            violating=table)

    def _missing_keys(self, table: pa.Table | None) -> dict:
        """Distinct missing keys, and a sample: most frequent first, ties by first row."""
        if table is None:
            return {"missing_keys": 0, "sample": []}
        stored = [out_name(c) for c in self.out_columns]
        groups = keys.group_keys(table, stored)
        firsts = table.take(groups["i_min"]).select(stored)
        top = firsts.append_column("__count", groups["i_count"]).append_column("__at", groups["i_min"]) \
            .sort_by([("__count", "descending"), ("__at", "ascending")]).slice(0, SAMPLE)
        sample = [{"key": jsonable({c: r[s] for c, s in zip(self.out_columns, stored)}), "count": r["__count"]}
                  for r in top.to_pylist()]
        return {"missing_keys": groups.num_rows, "sample": sample}


# --- body validation ----------------------------------------------------------------

def _body(spec: RuleSpec) -> dict:
    body = spec.body
    if not isinstance(body, dict):
        raise spec_error(spec, f"'reference' takes a mapping, e.g. {EXAMPLE}; got {body!r}")
    for k in body:
        if k not in FIELDS:
            raise spec_error(spec, f"unknown reference field '{k}'; use {', '.join(FIELDS)}")
    absent = [k for k in FIELDS if k not in body]
    if absent:
        raise spec_error(spec, f"reference needs '{absent[0]}', e.g. {EXAMPLE}")
    if not isinstance(body["dataset"], str) or not body["dataset"].strip():
        raise spec_error(spec, f"reference 'dataset' must be a path, glob or URI, got {body['dataset']!r}")
    return body


def _resolve_path(spec: RuleSpec, dataset: str) -> str:
    """Relative paths are relative to the rules file, as a reader of that file expects."""
    if "://" in dataset or os.path.isabs(dataset) or spec.where.file.startswith("<"):
        resolved = dataset
    else:
        resolved = os.path.normpath(os.path.join(os.path.dirname(spec.where.file), dataset))
    if "://" not in resolved and not (glob.has_magic(resolved) and glob.glob(resolved)) \
            and not os.path.exists(resolved):
        raise RuleError(spec.name, f"reference dataset '{dataset}' not found (looked for {resolved})")
    return resolved


def _ref_column(spec: RuleSpec, name: str, schema: pa.Schema, dataset: str) -> str:
    try:
        return resolve_column(spec, name, schema, "key column")
    except RuleError as exc:
        raise RuleError(spec.name, f"{exc.detail} in {dataset}") from None


def _common(spec: RuleSpec, col: str, t: pa.DataType, key: str, kt: pa.DataType, dataset: str) -> pa.DataType | None:
    """The type both sides are compared in (None: their comparable forms already agree)."""
    t = t.value_type if pa.types.is_dictionary(t) else t
    kt = kt.value_type if pa.types.is_dictionary(kt) else kt
    for typ, name in ((t, col), (kt, key)):
        if not keys.is_key_type(typ):
            raise RuleError(spec.name, f"reference: column '{name}' has type {typ}, which cannot be a key")
    numeric = (pa.types.is_integer, pa.types.is_floating)
    if any(f(t) for f in numeric) and any(f(kt) for f in numeric):
        if pa.types.is_floating(t) or pa.types.is_floating(kt):
            return pa.float64()                  # 1 = 1.0, as in SQL
        if pa.types.is_uint64(t) != pa.types.is_uint64(kt):
            return pa.decimal128(20, 0)          # uint64 beyond int64 must still compare by value
        return None
    same = keys.comparable(pa.array([], t)).type == keys.comparable(pa.array([], kt)).type
    if not same:
        raise RuleError(spec.name, f"reference: cannot compare '{col}' ({t}) with '{key}' ({kt}) of "
                        f"{dataset}; cast one side so both have the same type")
    return None
