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
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import DataError, RuleError
from ..io import sources, units
from ..spec import RuleSpec
from . import keys
from .base import (SAMPLE, CheckBase, CheckOutcome, Piece, column_list, jsonable, out_name, passes, piece,
                   resolve_column, spec_error, violating_table)

FIELDS = ("columns", "dataset", "key")
EXAMPLE = "reference: {columns: [customer_id], dataset: customers.parquet, key: [id]}"
HASH = "__hash"


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

    @property
    def index(self) -> keys.HashIndex:
        if self._index is None:
            self._index = keys.HashIndex(self.table.column(HASH).to_numpy())
        return self._index

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_index": None}      # rebuilt where it is used

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
        rows += batch.num_rows
        cols = [_cast(batch.column(k), c) for k, c in zip(key, casts)]
        valid = keys.valid_rows(cols)
        if valid is not None:
            null_rows += int(len(valid) - valid.sum())
            cols = [c.filter(pa.array(valid)) for c in cols]
        parts.append(pa.table({f"k{i}": keys.comparable(c) for i, c in enumerate(cols)}))
    names = [f"k{i}" for i in range(len(key))]
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
    pieces: list[Piece]        # the rows whose key is missing: (source, row + columns)


class ReferenceCheck(CheckBase):
    def __init__(self, spec: RuleSpec, schema: pa.Schema, key_set: KeySet | None = None):
        super().__init__(spec, schema)
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

    def shared_state(self) -> KeySet:
        return self.key_set

    def use_shared_state(self, state: KeySet) -> None:
        self.use_key_set(state)

    def __getstate__(self) -> dict:
        # a driver ships the key set separately (once, through the object store)
        return {**self.__dict__, "_key_set": None}

    # -- map / merge / finish -------------------------------------------------------------
    def map(self, batch: pa.RecordBatch, source: str, first_row: int) -> ReferencePartial:
        sub, rows, checked = self.keyed_rows(batch, first_row)
        comp = [keys.comparable(_cast(c, t)) for c, t in zip(sub.columns, self.casts)]
        missing = np.flatnonzero(~self._present(comp, sub.num_rows))
        pieces = []
        if len(missing):
            taken = pa.array(missing)
            pieces.append(piece(source, rows[missing], {c: sub.column(c).take(taken) for c in self.out_columns}))
        return ReferencePartial(checked, checked - sub.num_rows, pieces)

    def _present(self, comp: list[pa.Array], n: int) -> np.ndarray:
        ks = self.key_set
        ref = ks.table
        at = ks.index.probe(keys.hash_rows(comp, n))
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
        return ReferencePartial(sum(p.rows for p in partials), sum(p.null_rows for p in partials),
                                [x for p in partials for x in p.pieces])

    def finish(self, partial: ReferencePartial) -> CheckOutcome:
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
