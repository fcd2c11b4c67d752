"""Arrow arrays → the engines' inputs: 64-bit words, validity bitmaps, string lookup tables.

Buffers are used in place wherever the layout allows: int64, float64 and timestamps are
the VM's 64-bit words already, and narrower integers (int8-32, uint8-32, date32,
dictionary codes) stay as they are for the fused tier, which widens them per row in
registers; the VM and shape kernels get them widened once per batch (``Loaded.words``),
on first use only. Reading an int32 column then costs 4 bytes per row, not a copy to
8 bytes and a read of those. Validity stays an Arrow bitmap read bit by bit, and arrays
without NULLs carry no bitmap at all.

A mostly-distinct string column is its own dictionary (``Loaded.identity``): row i's
code is i, so the fused tier indexes its lookup tables by row number and reads no
codes at all. Lookup tables of boolean expressions hold one byte per entry.
"""
from __future__ import annotations

import decimal
import functools

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..compiler import types as T
from ..errors import DataError
from . import parallel, strings

_NO_BITMAP = np.zeros(1, dtype=np.uint8)


# Physical layouts of a column's values, as the fused tier's kernels are specialized on.
LAYOUTS = {np.dtype(np.int64): "i64", np.dtype(np.int32): "i32", np.dtype(np.int16): "i16",
           np.dtype(np.int8): "i8", np.dtype(np.uint32): "u32", np.dtype(np.uint16): "u16",
           np.dtype(np.uint8): "u8"}
IDENTITY = "id"


@dataclass
class Loaded:
    values: np.ndarray     # one per row: int64 words (float64 bits for doubles) or a narrower integer
    bitmap: np.ndarray     # uint8 Arrow validity bitmap (unused when bitoff < 0)
    bitoff: int            # bit offset of row 0 in bitmap, -1 if no NULLs
    dictionary: pa.Array | None = None   # string columns: the values the codes index
    identity: bool = False               # string column that is its own dictionary: code i = row i
    _wide: np.ndarray | None = field(default=None, repr=False)

    @property
    def words(self) -> np.ndarray:
        """The values as int64 words (widened on first use: the VM and shape kernels)."""
        if self.values.dtype == np.int64:
            return self.values
        if self._wide is None:
            self._wide = self.values.astype(np.int64)
        return self._wide

    @property
    def layout(self) -> str:
        """How the fused tier reads the values: a LAYOUTS code, or IDENTITY."""
        return IDENTITY if self.identity else LAYOUTS[self.values.dtype]


def _data(arr: pa.Array, dtype) -> np.ndarray:
    """The values buffer of a fixed-width array as numpy, without copying."""
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=dtype, count=arr.offset + len(arr))[arr.offset:]


def _validity(arr: pa.Array) -> tuple[np.ndarray, int]:
    if arr.null_count == 0:
        return _NO_BITMAP, -1
    if arr.type == pa.null():
        return np.zeros((len(arr) + 7) // 8 + 1, dtype=np.uint8), 0
    return np.frombuffer(arr.buffers()[0], dtype=np.uint8), arr.offset


def valid_bytes(arr: pa.Array) -> np.ndarray:
    """One uint8 per value, 1 where it is valid, unpacked from the validity bitmap
    (np.asarray(arr.is_valid()) goes through pyarrow's pandas check: see io/arrays.py)."""
    if arr.null_count == 0:
        return np.ones(len(arr), np.uint8)
    bits, offset = _validity(arr)
    return np.unpackbits(bits, count=offset + len(arr), bitorder="little")[offset:]


def _words(arr: pa.Array, typ: T.Type) -> np.ndarray:
    """The values of a fixed-width array: int64 words or a narrower integer (LAYOUTS)."""
    t = arr.type
    if pa.types.is_null(t):
        return np.zeros(len(arr), dtype=np.int64)
    if pa.types.is_boolean(t):
        bits = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
        return np.unpackbits(bits, bitorder="little")[arr.offset:arr.offset + len(arr)]
    if pa.types.is_floating(t):
        return _data(arr, t.to_pandas_dtype()).astype(np.float64, copy=False).view(np.int64)
    if pa.types.is_decimal(t):
        return _decimal_words(arr)
    if pa.types.is_date64(t):
        # DuckDB reads date64 milliseconds as days truncated toward zero (-1 ms is 1970-01-01)
        ms = _data(arr, np.int64)
        days = np.floor_divide(ms, _MS_PER_DAY)
        days += (ms < 0) & (days * _MS_PER_DAY != ms)
        return days
    if pa.types.is_date32(t):
        return _data(arr, np.int32)
    if pa.types.is_timestamp(t):
        return _data(arr, np.int64)
    if pa.types.is_integer(t):
        values = _data(arr, t.to_pandas_dtype())
        if values.dtype == np.uint64:
            return _uint64_words(arr, values)
        return values                    # narrower types stay as they are (LAYOUTS)
    raise DataError(f"cannot load Arrow type {t}")


_MS_PER_DAY = 86_400_000
# Bytes per value of each decimal width: the value is a little-endian two's-complement
# integer of that many bytes. Precision <= 18 (the only one the binder accepts) always
# fits the lowest 8 bytes, which hold it exactly (the higher words only repeat its sign).
_DECIMAL_BYTES = {32: 4, 64: 8, 128: 16, 256: 32}


def _decimal_words(arr: pa.Array) -> np.ndarray:
    t = arr.type
    width = _DECIMAL_BYTES[t.bit_width]
    n = arr.offset + len(arr)
    if width == 4:
        return np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n)[arr.offset:]
    words = width // 8
    raw = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=words * n)
    return raw[words * arr.offset::words].copy() if words > 1 else raw[arr.offset:]


def _uint64_words(arr: pa.Array, values: np.ndarray) -> np.ndarray:
    """uint64 values as bigints: exact below 2^63; a larger (valid) value is refused
    rather than wrapped negative."""
    signed = values.view(np.int64)
    if len(signed) and signed.min() < 0:
        bad = pc.max(arr).as_py()
        if bad is not None and bad >= 1 << 63:
            raise DataError(f"uint64 value {bad} is above 2^63-1, the largest BIGINT; "
                            "rules read uint64 columns whose values fit a BIGINT")
    return signed


def load(arr: pa.Array, typ: T.Type) -> Loaded:
    """One column of one batch, as the VM reads it."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if typ.kind is T.Kind.STRING:
        return _load_strings(arr)
    bitmap, off = _validity(arr)
    return Loaded(np.ascontiguousarray(_words(arr, typ)), bitmap, off)


SAMPLE_ROWS = 4096
DIRECT_DISTINCT_RATIO = 0.5
# Fewer values than this are evaluated (and encoded) with pyarrow.compute: instant, while
# the first use of a Numba string kernel in a process loads it from the disk cache
# (~0.1 s; a few seconds to compile in a fresh environment).
FAST_MIN_VALUES = 4096


def _mostly_distinct(arr: pa.Array) -> bool:
    """Whether per-distinct-value evaluation would not pay (emails, ids, free text)."""
    valid = _sample_valid(arr)
    return valid > 64 and _sample_distinct(arr) > DIRECT_DISTINCT_RATIO * valid


def _sample_distinct(arr: pa.Array) -> int:
    return pc.count_distinct(arr.slice(0, SAMPLE_ROWS)).as_py()


def _sample_valid(arr: pa.Array) -> int:
    sample = arr.slice(0, SAMPLE_ROWS)
    return len(sample) - sample.null_count


_IDENTITY = np.zeros(0, dtype=np.int64)


def _identity(n: int) -> np.ndarray:
    """0, 1, ..., n-1, shared by every batch (nothing writes to column words; not
    flagged read-only, which would give Numba kernels another signature to compile)."""
    global _IDENTITY
    if len(_IDENTITY) < n:
        _IDENTITY = np.arange(max(n, 2 * len(_IDENTITY)), dtype=np.int64)
    return _IDENTITY[:n]


def _load_strings(arr: pa.Array) -> Loaded:
    if pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    arr = _plain_strings(arr)
    if not pa.types.is_dictionary(arr.type):
        distinct, valid = _sample_distinct(arr), _sample_valid(arr)
        if valid > 64 and distinct > DIRECT_DISTINCT_RATIO * valid:
            # Hashing every value to build a dictionary would cost more than it saves:
            # the "dictionary" is the column itself and row i reads entry i.
            bitmap, off = _validity(arr)
            return Loaded(_identity(len(arr)), bitmap, off, _as_string(arr), identity=True)
        if distinct <= strings.ENCODE_MAX_DISTINCT // 4 and len(arr) >= FAST_MIN_VALUES:
            encoded = strings.encode(arr)
            if encoded is not None:          # else more distinct values than the sample said
                bitmap, off = _validity(arr)
                return Loaded(encoded[0], bitmap, off, _as_string(encoded[1]))
        arr = pc.dictionary_encode(arr)
    codes = arr.indices
    bitmap, off = _validity(codes)
    values = _words(codes, T.Type(T.Kind.INT))
    return Loaded(np.ascontiguousarray(values), bitmap, off, _as_string(arr.dictionary))


def _as_string(arr: pa.Array) -> pa.Array:
    """A string array's values typed `string` (a cast only where it is not already)."""
    return arr if arr.type == pa.string() else arr.cast(pa.string())


def _plain_strings(arr: pa.Array) -> pa.Array:
    """string_view (values or a dictionary's) → string, once per batch: the string
    kernels and pyarrow.compute read offsets-and-data layouts only."""
    t = arr.type
    if pa.types.is_dictionary(t) and pa.types.is_string_view(t.value_type):
        return pa.DictionaryArray.from_arrays(arr.indices, _plain_strings(arr.dictionary))
    if pa.types.is_string_view(t):
        big = arr.nbytes >= 1 << 31
        return arr.cast(pa.large_string() if big else pa.string())
    return arr


def to_words(arr: pa.Array | pa.Scalar, typ: T.Type, length: int) -> tuple[np.ndarray, np.ndarray]:
    """A small evaluated array → (int64 words, uint8 validity) for a lookup table."""
    if isinstance(arr, pa.Scalar):
        arr = pa.array([arr.as_py()] * length, arr.type)
    if typ.kind is T.Kind.DECIMAL and not pa.types.is_null(arr.type):
        arr = _decimal_in_words(arr, typ.scale)
    elif typ.kind is not T.Kind.NULL:
        arr = arr.cast(_arrow_for(typ))
    valid = valid_bytes(arr)
    words = _words(arr, typ) if not pa.types.is_null(arr.type) else np.zeros(len(arr), np.int64)
    return np.ascontiguousarray(words, dtype=lut_dtype(typ)), valid


def _decimal_in_words(arr: pa.Array, scale: int) -> pa.Array:
    """Values (integers or decimals) as decimals at `scale` whose unscaled value fits the
    engine's int64 word; a value that does not is NULL (as decimal arithmetic past int64).
    Through decimal128(38): a plain cast to a precision-18 type refuses int64 inputs
    (they need 19 digits) even when every value is small."""
    wide = arr.cast(pa.decimal128(38, scale))
    limit = decimal.Decimal(2 ** 63 - 1).scaleb(-scale)
    fits = pc.and_(pc.less_equal(wide, pa.scalar(limit, wide.type)),
                   pc.greater_equal(wide, pa.scalar(-limit, wide.type)))
    return pc.if_else(fits, wide, pa.scalar(None, wide.type))


def lut_dtype(typ: T.Type) -> np.dtype:
    """Lookup table values: one byte for a boolean expression, else int64 words."""
    return np.dtype(np.uint8) if typ.kind is T.Kind.BOOL else np.dtype(np.int64)


def _arrow_for(typ: T.Type) -> pa.DataType:
    return strings.arrow_type(typ.kind.value, typ.scale)


def build_lut(dictionary: pa.Array, sexpr: list, typ: T.Type, map_fn=None,
              parts: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Lookup table for one string expression: one entry per value, plus one for NULL.

    With `map_fn` (run fn(*item) for each item, concurrently) the values are evaluated
    in `parts` row ranges at once; the Numba kernels and pyarrow both release the GIL.
    """
    build = LutBuild(dictionary, sexpr, typ, parts if map_fn is not None else 1)
    if build.parts > 1:
        map_fn(build.run, [(k,) for k in range(build.parts)])
    else:
        build.run(0)
    return build.result()


class LutBuild:
    """One lookup table built in `parts` row ranges: run(k) for every part (in any order,
    concurrently), then result(). Lets a caller queue the parts among other work."""

    def __init__(self, dictionary: pa.Array, sexpr: list, typ: T.Type, parts: int = 1):
        n = len(dictionary)
        self.dictionary, self.sexpr, self.typ = dictionary, sexpr, typ
        self.ranges = parallel.ranges(n, parts)
        plan = strings.fast_plan(sexpr) if n >= FAST_MIN_VALUES else None
        if plan is not None and typ.kind is not (T.Kind.INT if plan.kind == "length" else T.Kind.BOOL):
            plan = None
        self.plan = plan
        if plan is not None:
            # the kernels write every entry below n; every fast expression is NULL on a
            # NULL input, so the last entry is (0, NULL)
            self.words = np.empty(n + 1, dtype=lut_dtype(typ))
            self.valid = np.empty(n + 1, dtype=np.uint8)
            self.words[n] = self.valid[n] = 0
            self.buffers = strings.string_buffers(dictionary)
        self.done: list = [None] * len(self.ranges)

    @property
    def parts(self) -> int:
        return len(self.ranges)

    def run(self, k: int) -> None:
        lo, hi = self.ranges[k]
        if self.plan is not None:
            strings.run_fast(self.plan, self.buffers, self.words, self.valid, lo, hi)
        else:
            values = pa.concat_arrays([self.dictionary.slice(lo, hi - lo), pa.nulls(1, self.dictionary.type)])
            self.done[k] = to_words(strings.evaluate(self.sexpr, values), self.typ, len(values))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.plan is not None:
            return self.words, self.valid
        done = self.done
        if len(done) == 1:
            return done[0]
        # each part ends with the entry for a NULL input: keep the last part's only
        return (np.concatenate([v[:-1] for v, _ in done] + [done[-1][0][-1:]]),
                np.concatenate([m[:-1] for _, m in done] + [done[-1][1][-1:]]))


@functools.lru_cache(maxsize=256)
def parse_type(text: str) -> T.Type:
    """Inverse of str(Type), for column tables stored in a Program."""
    if text.startswith("decimal("):
        return T.Type(T.Kind.DECIMAL, int(text[:-1].split(",")[1]))
    if text == "float":
        return T.FLOAT32
    if text.startswith("timestamp"):
        return T.Type(T.Kind.TIMESTAMP, {"timestamp_s": 0, "timestamp_ms": 3, "timestamp": 6,
                                         "timestamp_ns": 9}[text])
    return T.Type(T.Kind(text))
