"""Random tables and random predicates for the differential tests (test_differential.py).

A table has a fixed set of column *slots* whose Arrow types are drawn per example:

    i0 i1 i2   integers: int8 ... uint64 (never widened: DuckDB sees them as they are)
    f0 f1      float32 / float64 with NaN, +-inf, -0.0
    m0 m1      decimal32/64/128/256, precision 1-18, several scales
    d0 d1      date32 / date64
    t0 t1      timestamp s/ms/us/ns, with and without a time zone
    s0 s1      string / large_string / string_view / dictionary (low and high cardinality)
    b0         boolean

Values come from a numpy generator seeded by hypothesis, in one of a few *modes* per
column (small values, the type's whole range, its edges, sorted runs for row-group
statistics, ...), with a NULL rate per column, and every column is a chunked array cut
at its own random points (so batches are slices with bit offsets).

Predicates come from a typed random grammar over those slots (:class:`Grammar`); the
literals are often values present in the data, so equalities and range bounds hit.
The grammar covers README's "Supported SQL"; whatever batchaot refuses with a RuleError
(or DuckDB refuses at bind time) is skipped and counted by the caller.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from hypothesis import strategies as st

INT_TYPES = {
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
}
INT_RANGE = {
    "int8": (-2**7, 2**7 - 1), "int16": (-2**15, 2**15 - 1), "int32": (-2**31, 2**31 - 1),
    "int64": (-2**63, 2**63 - 1), "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    # batchaot reads uint64 as BIGINT and refuses a batch holding a value >= 2^63 (README)
    "uint64": (0, 2**63 - 1),
}
TS_UNITS = ("s", "ms", "us", "ns")
TIME_ZONES = (None, None, "UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham")
STRING_TYPES = ("string", "large_string", "string_view", "dict8", "dict16", "dict32", "dictu16")

SLOTS = {
    "int": ("i0", "i1", "i2"), "float": ("f0", "f1"), "dec": ("m0", "m1"),
    "date": ("d0", "d1"), "ts": ("t0", "t1"), "str": ("s0", "s1"), "bool": ("b0",),
}
KIND_OF = {name: kind for kind, names in SLOTS.items() for name in names}

# Strings that tell implementations apart: case, LIKE metacharacters, UTF-8 of 2-4 bytes,
# combining marks, characters whose case mapping changes length, whitespace, quotes, long.
VOCAB = [
    "", "a", "A", "ab", "abc", "aaaa", "paid", "Paid", "PAID", "new", "NEW ", " new", "shipped",
    "refund%", "a_b", "a%b", "axb", "ünï", "ÜNÏ", "ß", "straße", "STRASSE", "İstanbul", "ǅ", "Σίσυφος",
    "e\u0301", "日本語", "😀x", "x@y.z", "user@example.com", "no-at.example", "tab\there",
    "line\nbreak", "\\", "\\_", "'quote'", "abcdefghijklmnopq", "abcdefghijklmnop", "0", "123",
    "-1.5", "2024-01-02", "%", "_", "a.b", "A.B", "  ", "x y", "ﬁ", "K",
]
ALPHABET = list("abcxyzABCXYZ019 @._%-") + ["ü", "ß", "é", "日", "😀", "İ", "\u0301"]

EPOCH = dt.datetime(1970, 1, 1)
DAY_MS = 86_400_000


@dataclass
class ColumnSpec:
    name: str
    kind: str
    type: pa.DataType
    mode: str
    null_rate: float
    cuts: list[int] = field(default_factory=list)
    detail: dict = field(default_factory=dict)


@dataclass
class TableSpec:
    n: int
    seed: int
    columns: list[ColumnSpec]

    def describe(self) -> str:
        return (f"n={self.n} seed={self.seed} "
                + ", ".join(f"{c.name}:{c.type}/{c.mode}/null={c.null_rate}/cuts={c.cuts}" for c in self.columns))


# -- table specs (drawn by hypothesis) ---------------------------------------------------

def row_counts(large: bool = False) -> st.SearchStrategy[int]:
    """Row counts around the thresholds: VM blocks (2,048), shape blocks (4,096), the
    string fast-path minimum (4,096 values), the sample the string loader looks at (4,096
    rows) and, with `large`, the parallel split (65,536) and the pair buffer (65,536)."""
    near = st.builds(lambda base, k, d: max(0, base * k + d),
                     st.sampled_from([2048, 4096]), st.integers(1, 5), st.integers(-3, 3))
    choices = [st.integers(0, 70), st.integers(60, 300), near, near, near, st.integers(1000, 21000)]
    if large:
        choices.append(st.builds(lambda d: 65536 + d, st.integers(-2, 4000)))
    return st.one_of(*choices)


@st.composite
def column_specs(draw, name: str, n: int, modes: tuple[str, ...] | None = None,
                 null_rates=(0.0, 0.0, 0.0, 0.02, 0.2, 0.5, 1.0)) -> ColumnSpec:
    kind = KIND_OF[name]
    detail: dict = {}
    if kind == "int":
        tname = draw(st.sampled_from(list(INT_TYPES)))
        typ = INT_TYPES[tname]
        detail["tname"] = tname
        mode = draw(st.sampled_from(modes or ("small", "small", "wide", "edges", "sorted")))
    elif kind == "float":
        typ = draw(st.sampled_from([pa.float64(), pa.float64(), pa.float32()]))
        mode = draw(st.sampled_from(modes or ("normal", "special", "ints", "sorted")))
    elif kind == "dec":
        p = draw(st.integers(1, 18))
        s = draw(st.integers(0, min(p, 8)))
        width = draw(st.sampled_from(["128", "128", "64", "32", "256"]))
        if width == "32" and p > 9:
            width = "64"
        typ = {"32": pa.decimal32, "64": pa.decimal64, "128": pa.decimal128, "256": pa.decimal256}[width](p, s)
        mode = draw(st.sampled_from(modes or ("small", "small", "wide", "sorted")))
    elif kind == "date":
        typ = draw(st.sampled_from([pa.date32(), pa.date32(), pa.date64()]))
        mode = draw(st.sampled_from(modes or ("near", "near", "wide", "sorted")))
    elif kind == "ts":
        typ = pa.timestamp(draw(st.sampled_from(TS_UNITS)), draw(st.sampled_from(TIME_ZONES)))
        mode = draw(st.sampled_from(modes or ("near", "near", "wide", "sorted")))
    elif kind == "str":
        tname = draw(st.sampled_from(STRING_TYPES))
        detail["tname"] = tname
        typ = _string_type(tname)
        if name == "s0":
            mode = draw(st.sampled_from(modes or ("vocab", "vocab", "small")))
        else:
            mode = draw(st.sampled_from(modes or ("distinct", "distinct", "vocab", "late", "sorted")))
        detail["dupdict"] = draw(st.booleans()) if tname.startswith("dict") else False
    else:
        typ = pa.bool_()
        mode = "bool"
    null_rate = draw(st.sampled_from(null_rates))
    ncuts = draw(st.integers(0, 3)) if n > 2 else 0
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), min_size=ncuts, max_size=ncuts))))
    return ColumnSpec(name, kind, typ, mode, null_rate, cuts, detail)


def _string_type(tname: str) -> pa.DataType:
    index = {"dict8": pa.int8(), "dict16": pa.int16(), "dict32": pa.int32(), "dictu16": pa.uint16()}
    if tname in index:
        return pa.dictionary(index[tname], pa.string())
    return {"string": pa.string(), "large_string": pa.large_string(),
            "string_view": pa.string_view()}[tname]


@st.composite
def table_specs(draw, n=None, names=None, large: bool = False, **kwargs) -> TableSpec:
    n = draw(row_counts(large)) if n is None else draw(n) if isinstance(n, st.SearchStrategy) else n
    names = names or [c for cols in SLOTS.values() for c in cols]
    cols = [draw(column_specs(name, n, **kwargs)) for name in names]
    return TableSpec(n, draw(st.integers(0, 2**32 - 1)), cols)


# -- building the table --------------------------------------------------------------------

def build_table(spec: TableSpec) -> pa.Table:
    rng = np.random.default_rng(spec.seed)
    arrays = {}
    for col in spec.columns:
        full = _column(rng, col, spec.n)
        pieces = []
        edges = [0, *col.cuts, spec.n]
        for lo, hi in zip(edges[:-1], edges[1:]):
            pieces.append(full.slice(lo, hi - lo))
        arrays[col.name] = pa.chunked_array(pieces, type=full.type)
    return pa.table(arrays)


def _valid_mask(rng, n: int, rate: float) -> np.ndarray:
    if rate <= 0:
        return np.ones(n, dtype=bool)
    if rate >= 1:
        return np.zeros(n, dtype=bool)
    return rng.random(n) >= rate


def _bitmap(valid: np.ndarray) -> pa.Buffer | None:
    if valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())


def _column(rng, col: ColumnSpec, n: int) -> pa.Array:
    valid = _valid_mask(rng, n, col.null_rate)
    kind = col.kind
    if kind == "int":
        return pa.array(_ints(rng, col, n), col.type, mask=~valid)
    if kind == "float":
        return pa.array(_floats(rng, col, n), col.type, mask=~valid)
    if kind == "dec":
        return _decimals(rng, col, n, valid)
    if kind == "date":
        days = _days(rng, col.mode, n)
        if pa.types.is_date64(col.type):
            ms = days * DAY_MS
            if col.mode == "wide":   # date64 is meant to be whole days; not always (DuckDB truncates)
                odd = rng.random(n) < 0.05
                ms[odd] += rng.integers(-DAY_MS + 1, DAY_MS, odd.sum())
            return pa.Array.from_buffers(col.type, n, [_bitmap(valid), pa.py_buffer(ms.astype(np.int64).tobytes())])
        return pa.Array.from_buffers(col.type, n, [_bitmap(valid), pa.py_buffer(days.astype(np.int32).tobytes())])
    if kind == "ts":
        values = _timestamps(rng, col, n)
        return pa.Array.from_buffers(col.type, n, [_bitmap(valid), pa.py_buffer(values.astype(np.int64).tobytes())])
    if kind == "str":
        return _strings(rng, col, n, valid)
    return pa.array(rng.random(n) < rng.choice([0.1, 0.5, 0.9]), pa.bool_(), mask=~valid)


def _ints(rng, col: ColumnSpec, n: int) -> np.ndarray:
    lo, hi = INT_RANGE[col.detail["tname"]]
    mode = col.mode
    if mode == "small":
        # products of two small values stay inside int8, so DuckDB raises less often
        v = rng.integers(max(lo, -11), min(hi, 11) + 1, n)
    elif mode == "wide":
        v = _wide_ints(rng, lo, hi, n)
    elif mode == "edges":
        edges = [lo, lo + 1, hi - 1, hi, 0, 1, -1, 2, -2, 100, -100, 127, 128, -129, 255, 256,
                 32767, 32768, 65535, 2**31 - 1, 2**31, 2**32 - 1]
        edges = [e for e in edges if lo <= e <= hi]
        v = np.array(edges, dtype=object)[rng.integers(0, len(edges), n)]
    else:  # sorted: runs for row-group statistics
        start = rng.integers(max(lo, -1000), min(hi, 1000) + 1)
        steps = rng.integers(0, 3, n)
        v = np.clip(start + np.cumsum(steps) - steps.sum() // 2, lo, hi)
    return np.array([int(x) for x in v], dtype=object) if v.dtype == object else v


def _wide_ints(rng, lo: int, hi: int, n: int) -> np.ndarray:
    if hi <= 2**62:
        return rng.integers(lo, hi, n, endpoint=True)
    # int64 / uint64: numpy cannot draw the whole range in one call without overflow worries
    raw = rng.integers(0, 2**63 - 1, n, endpoint=True, dtype=np.int64)
    if lo < 0:
        sign = rng.random(n) < 0.5
        return np.where(sign, -raw - 1, raw)
    return raw


SPECIAL_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1.0, -1.0, 0.5, 1e-300, -1e300,
                  3.4028234663852886e38, 1.401298464324817e-45, 0.1, 0.2, 0.30000000000000004]


def _floats(rng, col: ColumnSpec, n: int) -> np.ndarray:
    mode = col.mode
    if mode == "normal":
        v = np.round(rng.normal(0, 20, n), 2)
    elif mode == "special":
        v = np.round(rng.normal(0, 5, n), 1)
        pick = rng.random(n) < 0.3
        v[pick] = np.array(SPECIAL_FLOATS)[rng.integers(0, len(SPECIAL_FLOATS), pick.sum())]
    elif mode == "ints":
        v = rng.integers(-5, 6, n).astype(np.float64)
        v[rng.random(n) < 0.05] = -0.0
    else:
        v = np.cumsum(rng.random(n)) - n / 4
        v[rng.random(n) < 0.01] = math.nan
    if pa.types.is_float32(col.type):
        with np.errstate(over="ignore"):
            v = v.astype(np.float32)
    return v


def _decimals(rng, col: ColumnSpec, n: int, valid: np.ndarray) -> pa.Array:
    t = col.type
    top = 10 ** t.precision - 1
    if col.mode == "small":
        bound = min(top, 10 ** min(t.precision, 5) - 1)
        v = rng.integers(-bound, bound + 1, n)
    elif col.mode == "wide":
        v = _wide_ints(rng, -top, top, n) if top < 2**62 else np.clip(_wide_ints(rng, -2**63 + 1, 2**63 - 1, n), -top, top)
        edge = rng.random(n) < 0.1
        v[edge] = rng.choice([-top, top, 0, 1, -1], edge.sum())
    else:
        bound = min(top, 10**6)
        v = np.clip(rng.integers(-bound, bound + 1) + np.cumsum(rng.integers(0, 3, n)), -top, top)
    v = v.astype(np.int64)
    width = t.bit_width // 8
    if width == 4:
        data = v.astype(np.int32).tobytes()
    else:
        words = width // 8
        wide = np.zeros((n, words), dtype=np.int64)
        wide[:, 0] = v
        wide[:, 1:] = np.where(v < 0, -1, 0)[:, None]
        data = wide.tobytes()
    return pa.Array.from_buffers(t, n, [_bitmap(valid), pa.py_buffer(data)])


def _days(rng, mode: str, n: int) -> np.ndarray:
    base = (dt.date(2024, 1, 1) - dt.date(1970, 1, 1)).days
    if mode == "near":
        return base + rng.integers(-400, 400, n)
    if mode == "wide":
        # years 1700-2250: every unit of timestamp (ns included) can hold them
        return rng.integers(-98000, 102000, n)
    return base + np.cumsum(rng.integers(0, 2, n)) - n // 4


_UNIT_PER_S = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _timestamps(rng, col: ColumnSpec, n: int) -> np.ndarray:
    per = _UNIT_PER_S[col.type.unit]
    base = int((dt.datetime(2024, 1, 1) - EPOCH).total_seconds())
    if col.mode == "near":
        secs = base + rng.integers(-10**7, 10**7, n)
    elif col.mode == "wide":
        secs = rng.integers(-8_400_000_000, 8_800_000_000, n)   # 1703 .. 2248
    else:
        secs = base + np.cumsum(rng.integers(0, 4000, n))
    sub = rng.integers(0, per, n) if per > 1 else np.zeros(n, dtype=np.int64)
    if col.mode == "near":
        sub[rng.random(n) < 0.5] = 0
    return secs * per + sub


def _random_words(rng, n: int) -> list[str]:
    lengths = rng.integers(0, 20, n)
    letters = rng.integers(0, len(ALPHABET), int(lengths.sum()))
    out, k = [], 0
    for length in lengths:
        out.append("".join(ALPHABET[j] for j in letters[k:k + length]))
        k += length
    return out


def _strings(rng, col: ColumnSpec, n: int, valid: np.ndarray) -> pa.Array:
    mode = col.mode
    if mode == "vocab":
        vocab = [VOCAB[k] for k in rng.choice(len(VOCAB), rng.integers(2, len(VOCAB)), replace=False)]
        values = [vocab[k] for k in rng.integers(0, len(vocab), n)]
    elif mode == "small":
        values = [VOCAB[k] for k in rng.integers(0, 4, n)]
    elif mode == "distinct":
        values = _random_words(rng, n)
        some = rng.random(n) < 0.2
        for k in np.flatnonzero(some):
            values[k] = VOCAB[rng.integers(0, len(VOCAB))] + ("" if rng.random() < 0.5 else str(k))
    elif mode == "late":
        # few distinct values in the first 4,096 rows (the loader's sample), many after
        values = [VOCAB[k] for k in rng.integers(0, 5, n)]
        for k in range(min(n, 4096), n):
            values[k] = f"late{k}"
    else:  # sorted
        values = sorted(_random_words(rng, n))
    tname = col.detail["tname"]
    if tname.startswith("dict"):
        return _dictionary(rng, col, values, valid)
    return pa.array(values, col.type, mask=~valid)


def _dictionary(rng, col: ColumnSpec, values: list[str], valid: np.ndarray) -> pa.Array:
    distinct = list(dict.fromkeys(values))
    index_type = col.type.index_type
    limit = {8: 127, 16: 32767, 32: 2**31 - 1}[index_type.bit_width]
    if len(distinct) > limit:                  # too many for the index type: fold the rest
        distinct = distinct[:limit]
    position = {v: k for k, v in enumerate(distinct)}
    codes = np.array([position.get(v, k % len(distinct)) for k, v in enumerate(values)], dtype=np.int64)
    dictionary = list(distinct)
    if col.detail.get("dupdict") and dictionary:
        # Arrow allows repeated and unused dictionary entries: the codes need not be canonical
        extra = [dictionary[k] for k in rng.integers(0, len(dictionary), min(5, limit - len(dictionary)))]
        extra += ["unused-entry"] if len(dictionary) + len(extra) < limit else []
        base = len(dictionary)
        dictionary += extra
        for j, word in enumerate(extra):
            if word in position:
                hit = (codes == position[word]) & (rng.random(len(codes)) < 0.5)
                codes[hit] = base + j
        order = rng.permutation(len(dictionary))   # shuffle the dictionary too
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        dictionary = [dictionary[k] for k in order]
        codes = inverse[codes]
    indices = pa.array(codes, index_type, mask=~valid)
    return pa.DictionaryArray.from_arrays(indices, pa.array(dictionary, pa.string()))


# -- the oracle's view of a table ---------------------------------------------------------

def for_duckdb(table: pa.Table) -> pa.Table:
    """The table as DuckDB is given it: unchanged but for what DuckDB cannot read at all
    (decimal256: same values as decimal128), plus the row number __rn."""
    cols, names = [], []
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if pa.types.is_decimal(t) and t.bit_width == 256:
            col = col.cast(pa.decimal128(t.precision, t.scale))
        cols.append(col)
        names.append(name)
    cols.append(pa.array(np.arange(table.num_rows, dtype=np.int64)))
    names.append("__rn")
    return pa.Table.from_arrays(cols, names=names)


# -- SQL literals -------------------------------------------------------------------------

def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def sql_float(x: float) -> str:
    if math.isnan(x):
        return "'NaN'::DOUBLE"
    if math.isinf(x):
        return "'inf'::DOUBLE" if x > 0 else "'-inf'::DOUBLE"
    text = repr(float(x))
    return f"({text})" if text.startswith("-") else text


def sql_decimal(d: decimal.Decimal) -> str:
    text = format(d, "f")
    return f"({text})" if text.startswith("-") else text


def sql_date(d: dt.date) -> str:
    return f"DATE '{d.year:04d}-{d.month:02d}-{d.day:02d}'"


def sql_ts(value: dt.datetime, nanos: int | None = None) -> str:
    base = f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if nanos is not None and nanos % 1000:
        return f"TIMESTAMP_NS '{base}.{nanos:09d}'"
    if value.microsecond:
        base += f".{value.microsecond:06d}"
    return f"TIMESTAMP '{base}'"


def literal_pool(table: pa.Table, rng, per_column: int = 6) -> dict[str, list[str]]:
    """A few values of each column, as SQL literals (equalities and bounds that hit)."""
    pool: dict[str, list[str]] = {}
    n = table.num_rows
    for name in table.column_names:
        col = table.column(name)
        kind = KIND_OF.get(name)
        out: list[str] = []
        if n:
            for k in rng.integers(0, n, per_column * 2):
                v = col[int(k)]
                if not v.is_valid:
                    continue
                lit = _scalar_literal(kind, v)
                if lit is not None:
                    out.append(lit)
                if len(out) >= per_column:
                    break
        pool[name] = out
    return pool


def _scalar_literal(kind: str, v: pa.Scalar) -> str | None:
    if kind == "int":
        return str(v.as_py()) if v.as_py() >= 0 else f"({v.as_py()})"
    if kind == "float":
        return sql_float(float(v.as_py()))
    if kind == "dec":
        return sql_decimal(v.as_py())
    if kind == "date":
        if pa.types.is_date64(v.type):
            ms = v.cast(pa.int64()).as_py()
            return sql_date(dt.date(1970, 1, 1) + dt.timedelta(days=int(ms // DAY_MS)))
        return sql_date(v.as_py())
    if kind == "ts":
        raw = v.cast(pa.int64()).as_py()
        per = _UNIT_PER_S[v.type.unit]
        secs, sub = divmod(raw, per)
        when = EPOCH + dt.timedelta(seconds=secs)
        nanos = sub * (10**9 // per)
        return sql_ts(when.replace(microsecond=nanos // 1000), nanos)
    if kind == "str":
        return sql_string(v.as_py() if not isinstance(v.as_py(), bytes) else v.as_py().decode())
    return None


# -- the predicate grammar ----------------------------------------------------------------

CMP = ["=", "<>", "<", "<=", ">", ">=", "!="]
INT_CASTS = ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"]
DATE_PARTS = ["year", "month", "day", "quarter", "dow", "isodow", "doy", "week", "isoyear",
              "decade", "century", "millennium", "yearweek"]
TIME_PARTS = ["hour", "minute", "second", "millisecond", "microsecond"]
TRUNC_PARTS = ["year", "quarter", "month", "week", "day", "hour", "minute", "second"]
INTERVALS = ["INTERVAL 1 DAY", "INTERVAL '2 hours'", "INTERVAL 3 MONTH", "INTERVAL '1 year'",
             "INTERVAL 90 MINUTE", "INTERVAL '36 hours'", "INTERVAL 1 SECOND", "INTERVAL '-5 days'"]
LIKE_PIECES = ["%", "_", "a", "b", "A", "p", "ü", "ß", "@", ".", "x", "%", "ab", "e", "1", "\\%", "\\_", " "]
REGEX_PIECES = ["a", "b", "[a-z]", "[^@]", "[A-Z]", ".", "\\.", "@", "x", "[0-9]", "ü", "(a|b)",
                "\\d", "\\w", "\\s", "é", " ", "%", "_"]
REGEX_QUANT = ["", "", "", "*", "+", "?", "{2}", "{1,3}"]


class Grammar:
    """Typed random SQL over the table's slots. `draw` is hypothesis's; `pool` holds
    literals taken from the data (literal_pool); `kinds` restricts what columns exist."""

    def __init__(self, draw, pool: dict[str, list[str]], columns: list[str] | None = None,
                 avoid: frozenset = frozenset()):
        self.draw = draw
        self.pool = pool
        names = columns or list(pool)
        self.cols = {kind: [c for c in cols if c in names] for kind, cols in SLOTS.items()}
        self.avoid = avoid

    # -- helpers
    def pick(self, seq):
        return self.draw(st.sampled_from(seq))

    def n(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def chance(self, p: float) -> bool:
        return self.draw(st.integers(0, 999)) < p * 1000

    def col(self, kind: str) -> str | None:
        cols = self.cols.get(kind) or []
        return self.pick(cols) if cols else None

    def from_pool(self, name: str) -> str | None:
        vals = self.pool.get(name) or []
        return self.pick(vals) if vals else None

    # -- literals
    def int_lit(self, near: str | None = None) -> str:
        if near and self.chance(0.5):
            lit = self.from_pool(near)
            if lit is not None:
                return lit
        if self.chance(0.1):
            return self.pick(["127", "128", "255", "256", "(-128)", "(-129)", "32767", "65535", "2147483647",
                              "2147483648", "4294967295", "9223372036854775807", "(-9223372036854775807)",
                              "0", "1"])
        v = self.n(-20, 20)
        return str(v) if v >= 0 else f"({v})"

    def float_lit(self, near: str | None = None) -> str:
        if near and self.chance(0.5):
            lit = self.from_pool(near)
            if lit is not None:
                return lit
        return self.pick(["0.5", "1.25", "(-2.0)", "3e0", "0.0", "(-0.0)", "0.1", "1e-3", "100.0",
                          "'NaN'::DOUBLE", "'inf'::DOUBLE", "'-inf'::DOUBLE", "2.5::FLOAT", "1.5e300"])

    def dec_lit(self, near: str | None = None) -> str:
        if near and self.chance(0.5):
            lit = self.from_pool(near)
            if lit is not None:
                return lit
        return self.pick(["0.5", "12.34", "(-1.25)", "100", "0.001", "(-99999.5)", "7",
                          "CAST('3.14159' AS DECIMAL(8,5))", "CAST(2 AS DECIMAL(3,1))"])

    def date_lit(self, near: str | None = None) -> str:
        if near and self.chance(0.6):
            lit = self.from_pool(near)
            if lit is not None:
                return lit
        return self.pick(["DATE '2024-01-01'", "DATE '2023-12-31'", "DATE '2024-02-29'", "'2024-06-30'",
                          "DATE '1970-01-01'", "DATE '2000-03-01'", "DATE '1969-12-31'"])

    def ts_lit(self, near: str | None = None) -> str:
        if near and self.chance(0.6):
            lit = self.from_pool(near)
            if lit is not None:
                return lit
        return self.pick(["TIMESTAMP '2024-01-01 00:00:00'", "TIMESTAMP '2024-03-01 12:30:00.5'",
                          "TIMESTAMP '2023-12-31 23:59:59.999999'", "'2024-02-01 06:00:00'",
                          "TIMESTAMP '1970-01-01 00:00:00'", "TIMESTAMP '2024-01-01 00:00:00.000001'"])

    def str_lit(self, near: str | None = None) -> str:
        if near and self.chance(0.5):
            lit = self.from_pool(near)
            if lit is not None:
                return lit
        return sql_string(self.pick(VOCAB))

    def lit(self, kind: str, near: str | None = None) -> str:
        return {"int": self.int_lit, "float": self.float_lit, "dec": self.dec_lit, "date": self.date_lit,
                "ts": self.ts_lit, "str": self.str_lit}[kind](near)

    # -- expressions: each returns (sql, kind, column it is "near" or None)
    def int_expr(self, d: int) -> tuple[str, str | None]:
        c = self.col("int")
        if d <= 0 or self.chance(0.35):
            if c and self.chance(0.8):
                return c, c
            return self.int_lit(), None
        k = self.n(0, 15)
        if k <= 3:
            (a, na), (b, _) = self.int_expr(d - 1), self.int_expr(d - 1)
            if self.chance(0.4):
                b = self.int_lit(na)
            return f"({a} {self.pick(['+', '-', '*', '//', '%'])} {b})", na
        if k == 4:
            a, na = self.int_expr(d - 1)
            return self.pick([f"abs({a})", f"(-{a})", f"round({a}, {self.n(-2, 0)})"]), na
        if k == 5:
            (a, na), (b, _) = self.int_expr(d - 1), self.int_expr(d - 1)
            return self.pick([f"coalesce({a}, {b})", f"nullif({a}, {b})", f"greatest({a}, {b})",
                              f"least({a}, {b}, {self.int_lit()})", f"coalesce({a}, {b}, {self.int_lit()})"]), na
        if k == 6:
            (a, na), (b, _) = self.int_expr(d - 1), self.int_expr(d - 1)
            cond = self.bool_expr(d - 1)
            return self.pick([f"CASE WHEN {cond} THEN {a} ELSE {b} END", f"CASE WHEN {cond} THEN {a} END",
                              f"if({cond}, {a}, {b})",
                              f"CASE {a} WHEN {self.int_lit(na)} THEN {b} WHEN {self.int_lit(na)} THEN 0 ELSE {a} END"]), na
        if k == 7:
            src = self.pick(["int", "int", "float", "dec", "bool"])
            a, na = self.expr_of(src, d - 1)
            to = self.pick(INT_CASTS)
            return self.pick([f"CAST({a} AS {to})", f"TRY_CAST({a} AS {to})", f"({a})::{to}"]), na if src == "int" else None
        if k == 8:
            s = self.str_expr(d - 1)
            return self.pick([f"length({s})", f"strpos({s}, {self.str_lit()})", f"position({self.str_lit()} IN {s})"]), None
        if k == 9:
            t, _ = self.pick([lambda: self.date_expr(d - 1), lambda: self.ts_expr(d - 1)])()
            part = self.pick(DATE_PARTS)
            return self.pick([f"{part}({t})" if part in ("year", "month", "day", "quarter", "dayofweek") else f"date_part('{part}', {t})",
                              f"extract({part} FROM {t})", f"date_part('{part}', {t})"]), None
        if k == 10:
            t, _ = self.ts_expr(d - 1)
            part = self.pick(TIME_PARTS)
            return self.pick([f"{part}({t})", f"date_part('{part}', {t})", f"extract({part} FROM {t})"]), None
        if k == 11:
            (a, _), (b, _) = self.date_expr(d - 1), self.date_expr(d - 1)
            return self.pick([f"({a} - {b})", f"date_diff('{self.pick(['day', 'month', 'year', 'week', 'quarter'])}', {a}, {b})",
                              f"datediff('day', {a}, {b})"]), None
        if k == 12:
            (a, _), (b, _) = self.ts_expr(d - 1), self.ts_expr(d - 1)
            return f"date_diff('{self.pick(['hour', 'minute', 'second', 'day', 'month', 'millisecond'])}', {a}, {b})", None
        if k == 13:
            b = self.col("bool")
            return (f"CAST({b} AS INTEGER)" if b else "1"), None
        if c:
            return c, c
        return self.int_lit(), None

    def float_expr(self, d: int) -> tuple[str, str | None]:
        c = self.col("float")
        if d <= 0 or self.chance(0.35):
            if c and self.chance(0.8):
                return c, c
            return self.float_lit(), None
        k = self.n(0, 9)
        if k <= 2:
            (a, na), (b, _) = self.float_expr(d - 1), self.num_expr(d - 1)
            if self.chance(0.4):
                b = self.float_lit(na)
            return f"({a} {self.pick(['+', '-', '*', '/', '%'])} {b})", na
        if k == 3:
            a, na = self.float_expr(d - 1)
            return self.pick([f"abs({a})", f"(-{a})", f"round({a}, {self.n(-1, 3)})", f"round({a})"]), na
        if k == 4:
            (a, _), (b, _) = self.int_expr(d - 1), self.int_expr(d - 1)
            return f"({a} / {b})", None
        if k == 5:
            src = self.pick(["int", "dec", "float"])
            a, _ = self.expr_of(src, d - 1)
            return self.pick([f"CAST({a} AS DOUBLE)", f"({a})::DOUBLE", f"TRY_CAST({a} AS DOUBLE)", f"CAST({a} AS FLOAT)"]), None
        if k == 6:
            (a, na), (b, _) = self.float_expr(d - 1), self.float_expr(d - 1)
            return self.pick([f"coalesce({a}, {b})", f"greatest({a}, {b})", f"least({a}, {b})", f"nullif({a}, {b})"]), na
        if k == 7:
            (a, na), (b, _) = self.float_expr(d - 1), self.float_expr(d - 1)
            return f"CASE WHEN {self.bool_expr(d - 1)} THEN {a} ELSE {b} END", na
        if k == 8:
            (a, na), (b, _) = self.dec_expr(d - 1), self.dec_expr(d - 1)
            return f"({a} / {b})", None
        t, _ = self.ts_expr(d - 1)
        return f"epoch({t})", None

    def dec_expr(self, d: int) -> tuple[str, str | None]:
        c = self.col("dec")
        if d <= 0 or self.chance(0.4):
            if c and self.chance(0.8):
                return c, c
            return self.dec_lit(), None
        k = self.n(0, 6)
        if k <= 2:
            (a, na), (b, _) = self.dec_expr(d - 1), self.pick([lambda: self.dec_expr(d - 1), lambda: self.int_expr(d - 1)])()
            if self.chance(0.4):
                b = self.dec_lit(na)
            return f"({a} {self.pick(['+', '-', '*', '%'])} {b})", na
        if k == 3:
            a, na = self.dec_expr(d - 1)
            return self.pick([f"abs({a})", f"(-{a})", f"round({a}, {self.n(-1, 3)})"]), na
        if k == 4:
            a, _ = self.pick([lambda: self.int_expr(d - 1), lambda: self.dec_expr(d - 1)])()
            p = self.n(1, 18)
            s = self.n(0, min(p, 6))
            return self.pick([f"TRY_CAST({a} AS DECIMAL({p},{s}))", f"CAST({a} AS DECIMAL({p},{s}))"]), None
        if k == 5:
            (a, na), (b, _) = self.dec_expr(d - 1), self.dec_expr(d - 1)
            return self.pick([f"coalesce({a}, {b})", f"greatest({a}, {b})", f"nullif({a}, {b})"]), na
        (a, na), (b, _) = self.dec_expr(d - 1), self.dec_expr(d - 1)
        return f"CASE WHEN {self.bool_expr(d - 1)} THEN {a} ELSE {b} END", na

    def num_expr(self, d: int) -> tuple[str, str | None]:
        return self.pick([self.int_expr, self.int_expr, self.float_expr, self.dec_expr])(d)

    def date_expr(self, d: int) -> tuple[str, str | None]:
        c = self.col("date")
        if d <= 0 or self.chance(0.4):
            if c and self.chance(0.8):
                return c, c
            return self.date_lit(), None
        k = self.n(0, 5)
        if k <= 1:
            a, na = self.date_expr(d - 1)
            i, _ = self.int_expr(d - 1) if self.chance(0.3) else (self.int_lit(), None)
            return f"({a} {self.pick(['+', '-'])} {i})", na
        if k == 2:
            t, _ = self.ts_expr(d - 1)
            return self.pick([f"CAST({t} AS DATE)", f"({t})::DATE"]), None
        if k == 3:
            y = self.pick(["2024", "1999", "2000"]) if self.chance(0.5) else f"year({self.date_expr(d - 1)[0]})"
            return f"make_date({y}, {self.n(1, 12)}, {self.n(1, 28)})", None
        if k == 4:
            (a, na), (b, _) = self.date_expr(d - 1), self.date_expr(d - 1)
            return self.pick([f"coalesce({a}, {b})", f"greatest({a}, {b})", f"least({a}, {b})"]), na
        return (c or self.date_lit()), c

    def ts_expr(self, d: int) -> tuple[str, str | None]:
        c = self.col("ts")
        if d <= 0 or self.chance(0.4):
            if c and self.chance(0.8):
                return c, c
            return self.ts_lit(), None
        k = self.n(0, 5)
        if k <= 1:
            a, na = self.pick([self.ts_expr, self.date_expr])(d - 1)
            return f"({a} {self.pick(['+', '-'])} {self.pick(INTERVALS)})", na
        if k == 2:
            a, _ = self.pick([self.ts_expr, self.date_expr])(d - 1)
            return f"date_trunc('{self.pick(TRUNC_PARTS)}', {a})", None
        if k == 3:
            a, _ = self.date_expr(d - 1)
            return self.pick([f"CAST({a} AS TIMESTAMP)", f"({a})::TIMESTAMP"]), None
        if k == 4:
            (a, na), (b, _) = self.ts_expr(d - 1), self.ts_expr(d - 1)
            return self.pick([f"coalesce({a}, {b})", f"greatest({a}, {b})", f"least({a}, {b})"]), na
        return (c or self.ts_lit()), c

    def str_expr(self, d: int, col: str | None = None) -> str:
        c = col or self.col("str")
        if c is None:
            return self.str_lit()
        if d <= 0 or self.chance(0.45):
            return c
        inner = self.str_expr(d - 1, c)
        k = self.n(0, 9)
        if k == 0:
            return self.pick([f"lower({inner})", f"upper({inner})"])
        if k == 1:
            return self.pick([f"trim({inner})", f"ltrim({inner})", f"rtrim({inner})", f"trim({inner}, 'a ')"])
        if k == 2:
            return self.pick([f"substr({inner}, {self.n(-3, 4)}, {self.n(0, 5)})", f"substr({inner}, {self.n(-3, 4)})",
                              f"substring({inner}, {self.n(1, 3)}, {self.n(1, 4)})"])
        if k == 3:
            return f"replace({inner}, {self.str_lit()}, {self.str_lit()})"
        if k == 4:
            return self.pick([f"({inner} || {self.str_lit()})", f"concat({inner}, {self.str_lit()})",
                              f"({self.str_lit()} || {inner})"])
        if k == 5:
            return self.pick([f"coalesce({inner}, {self.str_lit(c)})", f"nullif({inner}, {self.str_lit(c)})"])
        if k == 6:
            return f"CASE WHEN {inner} LIKE {self.like_pattern()} THEN {inner} ELSE {self.str_lit()} END"
        if k == 7:
            return self.pick([f"greatest({inner}, {self.str_lit()})", f"least({inner}, {self.str_lit(c)})"])
        if k == 8:
            num = self.col("int")
            return f"CAST({num} AS VARCHAR)" if num else inner
        return inner

    def expr_of(self, kind: str, d: int) -> tuple[str, str | None]:
        if kind == "bool":
            return self.bool_expr(d), None
        if kind == "str":
            return self.str_expr(d), None
        return {"int": self.int_expr, "float": self.float_expr, "dec": self.dec_expr,
                "date": self.date_expr, "ts": self.ts_expr}[kind](d)

    def like_pattern(self) -> str:
        parts = [self.pick(LIKE_PIECES) for _ in range(self.n(0, 4))]
        return sql_string("".join(parts))

    def regex(self) -> str:
        out = "^" if self.chance(0.3) else ""
        for _ in range(self.n(1, 4)):
            out += self.pick(REGEX_PIECES) + self.pick(REGEX_QUANT)
        if self.chance(0.3):
            out += "$"
        return sql_string(out)

    # -- predicates
    def bool_expr(self, d: int) -> str:
        k = self.n(0, 21 if d > 0 else 12)
        if k <= 3:
            fam = self.pick(["int", "int", "float", "dec", "num", "date", "ts", "datets"])
            if fam == "datets":
                (a, na), (b, _) = self.date_expr(d), self.ts_expr(d)
                if self.chance(0.5):
                    a, b = b, a
            elif fam == "num":
                (a, na), (b, _) = self.num_expr(d), self.num_expr(d)
            else:
                (a, na), (b, _) = self.expr_of(fam, d), self.expr_of(fam, d)
                if self.chance(0.5):
                    b = self.lit(fam, na)
            return f"{a} {self.pick(CMP)} {b}"
        if k == 4:
            fam = self.pick(["int", "float", "dec", "date", "ts"])
            a, na = self.expr_of(fam, d)
            lo, hi = self.lit(fam, na), self.lit(fam, na)
            neg = "NOT " if self.chance(0.3) else ""
            return f"{a} {neg}BETWEEN {lo} AND {hi}"
        if k == 5:
            fam = self.pick(["int", "int", "float", "dec", "date", "ts", "str"])
            if fam == "str":
                a, na = self.str_expr(d), self.col("str")
            else:
                a, na = self.expr_of(fam, d)
            items = [self.lit(fam, na) for _ in range(self.n(1, 5))]
            if self.chance(0.25):
                items.insert(self.n(0, len(items)), "NULL")
            neg = "NOT " if self.chance(0.3) else ""
            return f"{a} {neg}IN ({', '.join(items)})"
        if k == 6:
            a, _ = self.expr_of(self.pick(["int", "float", "dec", "date", "ts", "str", "bool"]), d)
            return f"{a} IS {self.pick(['', 'NOT '])}NULL"
        if k == 7:
            fam = self.pick(["int", "float", "dec", "date", "ts", "str"])
            if fam == "str":
                a, b = self.str_expr(d), self.pick([self.str_lit(self.col("str")), self.str_expr(d), "NULL"])
            else:
                (a, na), b = self.expr_of(fam, d), self.pick([self.lit(fam), "NULL", self.expr_of(fam, d)[0]])
            return f"{a} IS {self.pick(['', 'NOT '])}DISTINCT FROM {b}"
        if k == 8:
            s = self.str_expr(d)
            op = self.pick(["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "LIKE", "LIKE"])
            pat = self.like_pattern()
            if "\\" in pat and self.chance(0.7):
                return f"{s} {op} {pat} ESCAPE '\\'"
            return f"{s} {op} {pat}"
        if k == 9:
            s = self.str_expr(d)
            lit = self.str_lit(self.col("str"))
            return self.pick([f"starts_with({s}, {lit})", f"ends_with({s}, {lit})", f"contains({s}, {lit})",
                              f"prefix({s}, {lit})", f"suffix({s}, {lit})"])
        if k == 10:
            s = self.str_expr(d)
            return self.pick([f"regexp_matches({s}, {self.regex()})", f"regexp_full_match({s}, {self.regex()})",
                              f"NOT regexp_matches({s}, {self.regex()})"])
        if k == 11:
            s = self.str_expr(d)
            if self.chance(0.3):
                other = self.str_expr(d, self.pick(self.cols["str"])) if self.cols["str"] else self.str_lit()
                return f"{s} {self.pick(CMP)} {other}"
            return f"{s} {self.pick(CMP)} {self.str_lit(self.col('str'))}"
        if k == 12:
            leaf = self.pick(["b", "b", "true", "false", "null", "nan", "inf"])
            b = self.col("bool")
            if leaf == "b" and b:
                return self.pick([b, f"NOT {b}", f"{b} = true"])
            if leaf in ("nan", "inf"):
                f, _ = self.float_expr(max(d - 1, 0))
                return f"is{leaf}({f})"
            return {"true": "true", "false": "false", "null": "NULL"}.get(leaf, "true")
        if k <= 15:
            a, b = self.bool_expr(d - 1), self.bool_expr(d - 1)
            op = self.pick(["AND", "OR"])
            if self.chance(0.3):
                c = self.bool_expr(d - 1)
                return f"({a} {op} {b} {self.pick(['AND', 'OR'])} {c})"
            return f"({a} {op} {b})"
        if k == 16:
            return f"NOT ({self.bool_expr(d - 1)})"
        if k == 17:
            return f"({self.bool_expr(d - 1)}) IS {self.pick(['', 'NOT '])}{self.pick(['TRUE', 'FALSE'])}"
        if k == 18:
            a, b, c = self.bool_expr(d - 1), self.bool_expr(d - 1), self.bool_expr(d - 1)
            return self.pick([f"CASE WHEN {a} THEN {b} ELSE {c} END", f"coalesce({a}, {b})",
                              f"CASE WHEN {a} THEN {b} WHEN {c} THEN false END", f"if({a}, {b}, {c})"])
        if k == 19:
            a, b = self.bool_expr(d - 1), self.bool_expr(d - 1)
            return f"({a}) {self.pick(['=', '<>', 'IS DISTINCT FROM', 'IS NOT DISTINCT FROM'])} ({b})"
        if k == 20:
            f, nf = self.float_expr(d)
            return self.pick([f"isnan({f})", f"isinf({f})", f"NOT isnan({f})", f"{f} = 'NaN'::DOUBLE",
                              f"{f} > {self.float_lit(nf)}"])
        (a, na) = self.num_expr(d)
        return f"{a} {self.pick(CMP)} {self.lit('int', None)}"

    def predicate(self, max_depth: int = 3) -> str:
        return self.bool_expr(self.n(0, max_depth))

    def bound(self) -> str:
        """A column against literals of its own values: what row-group statistics decide."""
        kind = self.pick(["int", "int", "float", "dec", "date", "ts", "bool"])
        c = self.col(kind)
        if c is None:
            return self.predicate(0)
        if kind == "bool":
            return self.pick([c, f"NOT {c}", f"{c} IS NOT NULL", f"{c} = false"])
        k = self.n(0, 4)
        if k <= 1:
            return f"{c} {self.pick(CMP)} {self.lit(kind, c)}"
        if k == 2:
            return f"{c} {self.pick(['', 'NOT '])}BETWEEN {self.lit(kind, c)} AND {self.lit(kind, c)}"
        if k == 3:
            return f"{c} IS {self.pick(['', 'NOT '])}NULL"
        return f"({c} {self.pick(CMP)} {self.lit(kind, c)} {self.pick(['AND', 'OR'])} {self.bound()})"


# -- fixed skeletons (shape kernels: the same shapes recur, so the kernel cache serves them) --

SKELETONS = [
    "{i} > {il}", "{i} + {i} < {il}", "{f} <= {fl}", "{f} * {fl} >= {f}", "{i} BETWEEN {il} AND {il}",
    "{f} NOT BETWEEN {fl} AND {fl}", "{i} IN ({il}, {il}, {il})", "{i} NOT IN ({il}, NULL)",
    "{m} > {ml}", "{m} + {m} <> {ml}", "{d} >= {dl}", "{t} < {tl}", "{d} - {d} > {il}",
    "{s} = {sl}", "{s} LIKE 'a%'", "lower({s}) IN ({sl}, {sl})", "length({s}) BETWEEN {il} AND {il}",
    "regexp_matches({s}, '^[^@]+@[^@]+$')", "{b} OR {i} > {il}", "{i} IS NOT NULL AND {f} > {fl}",
    "coalesce({i}, {il}) <> {il}", "CASE WHEN {i} > {il} THEN {f} ELSE {fl} END >= {fl}",
    "NOT ({i} < {il} OR {f} >= {fl})", "{i} // {i} > {il}", "{i} % {i} = {il}", "abs({f}) < {fl}",
    "{f} IS DISTINCT FROM {fl}", "isnan({f}) OR {f} < {fl}", "{i} * {il} - {i} < {il}",
    "starts_with({s}, {sl}) AND {i} >= {il}",
]


def fill_skeleton(g: Grammar, skeleton: str) -> str:
    out, k = [], 0
    while k < len(skeleton):
        ch = skeleton[k]
        if ch == "{":
            end = skeleton.index("}", k)
            hole = skeleton[k + 1:end]
            out.append(_hole(g, hole))
            k = end + 1
        else:
            out.append(ch)
            k += 1
    return "".join(out)


def _hole(g: Grammar, hole: str) -> str:
    kinds = {"i": "int", "f": "float", "m": "dec", "d": "date", "t": "ts", "s": "str", "b": "bool"}
    kind = kinds[hole[0]]
    if hole.endswith("l"):
        near = g.col(kind)
        return g.lit(kind, near)
    return g.col(kind) or g.lit(kind)
