"""Key columns in comparable form, and a 64-bit row hash over their Arrow buffers."""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CANON_NAN = np.float64("nan")
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_FNV_PRIME = np.uint64(0x100000001B3)
_FNV_BASIS = np.uint64(0xCBF29CE484222325)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)

# Test hook: when set, every row hashes to this value (see force_hash).
_forced_hash: int | None = None


# --- comparable form ---------------------------------------------------------------

def is_key_type(t: pa.DataType) -> bool:
    """Types a key column may have (anything with a well-defined equality)."""
    if pa.types.is_dictionary(t):
        return is_key_type(t.value_type)
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t) or pa.types.is_null(t)
            or (pa.types.is_temporal(t) and not pa.types.is_interval(t))
            or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)
            or pa.types.is_string_view(t) or pa.types.is_binary_view(t))


def comparable(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """`arr` in a canonical form whose Arrow equality is SQL key equality (see module doc)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type
    if pa.types.is_dictionary(t):
        return comparable(arr.dictionary_decode())
    if pa.types.is_floating(t):
        return _float_bits(arr)
    if pa.types.is_integer(t) and not pa.types.is_uint64(t):
        return arr.cast(pa.int64())          # widths differ between files and datasets
    if pa.types.is_string(t) or pa.types.is_string_view(t):
        return arr.cast(pa.large_string())
    if pa.types.is_binary(t) or pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t):
        return arr.cast(pa.large_binary())
    if pa.types.is_date64(t):
        return arr.cast(pa.date32())
    return arr


def _float_bits(arr: pa.Array) -> pa.Array:
    values = arr.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    values = np.where(values == 0.0, 0.0, values)                # -0.0 = 0.0
    values = np.where(np.isnan(values), _CANON_NAN, values)      # every NaN is one NaN
    mask = None if arr.null_count == 0 else pc.is_null(arr).to_numpy(zero_copy_only=False)
    return pa.array(values.view(np.int64), pa.int64(), mask=mask)


def valid_rows(arrays: Sequence[pa.Array]) -> np.ndarray | None:
    """Mask of rows where no key column is NULL, or None when there is no NULL at all."""
    mask = None
    for arr in arrays:
        if arr.null_count:
            valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
            mask = valid if mask is None else mask & valid
    return mask


# --- hashing -------------------------------------------------------------------------

@contextlib.contextmanager
def force_hash(value: int = 0) -> Iterator[None]:
    """Make every row hash to `value` (tests prove that collisions never fake a duplicate)."""
    global _forced_hash
    saved, _forced_hash = _forced_hash, value
    try:
        yield
    finally:
        _forced_hash = saved


def forced() -> tuple[np.uint64, bool]:
    """(the forced hash, whether one is set): the arguments the exact kernels take."""
    use = _forced_hash is not None
    return np.uint64(_forced_hash if use else 0), use


@numba.njit(cache=True, nogil=True)
def mix(x):
    # splitmix64 finalizer: every input bit affects every output bit
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@numba.njit(cache=True, nogil=True)
def _fold_words(h, words):
    for i in range(h.shape[0]):
        h[i] = mix(h[i] * _GOLDEN + words[i])


@numba.njit(cache=True, nogil=True)
def _fold_bytes(h, offsets, data):
    for i in range(h.shape[0]):
        x = _FNV_BASIS
        for k in range(offsets[i], offsets[i + 1]):
            x = (x ^ np.uint64(data[k])) * _FNV_PRIME
        x ^= np.uint64(offsets[i + 1] - offsets[i])
        h[i] = mix(h[i] * _GOLDEN + mix(x))


def hash_rows(arrays: Sequence[pa.Array], n: int) -> np.ndarray:
    """uint64 hash per row of the key tuple; `arrays` must be `comparable()` forms."""
    if _forced_hash is not None:
        return np.full(n, _forced_hash, dtype=np.uint64)
    h = np.zeros(n, dtype=np.uint64)
    for arr in arrays:
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        _fold_column(h, arr)
    return h


def _fold_column(h: np.ndarray, arr: pa.Array) -> None:
    t = arr.type
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        _, offs, data = arr.buffers()
        offsets = np.frombuffer(offs, np.int64, count=arr.offset + len(arr) + 1)[arr.offset:]
        raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        _fold_bytes(h, offsets, raw)
    elif pa.types.is_decimal(t):
        words_per = t.byte_width // 8
        raw = np.frombuffer(arr.buffers()[1], np.uint64, count=words_per * (arr.offset + len(arr)))
        raw = raw[words_per * arr.offset:].reshape(-1, words_per)
        for w in range(words_per):
            _fold_words(h, np.ascontiguousarray(raw[:, w]))
    elif pa.types.is_boolean(t):
        _fold_words(h, pc.cast(arr, pa.uint8()).fill_null(0).to_numpy().astype(np.uint64))
    elif pa.types.is_null(t):
        return
    else:                                   # int64, uint64, dates, times, timestamps
        width = t.bit_width // 8
        raw = np.frombuffer(arr.buffers()[1], f"<i{width}", count=arr.offset + len(arr))[arr.offset:]
        _fold_words(h, raw.astype(np.int64, copy=False).view(np.uint64))
