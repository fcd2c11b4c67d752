"""Dictionary encoding of a low-cardinality string column, in one kernel pass
(kernels._encode_kernel)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .. import aot
from .arrow import string_buffers
from .regex import _Unsupported

ENCODE_MAX_DISTINCT = 4096          # codes are uint16


def encode(values: pa.Array) -> tuple[np.ndarray, pa.Array] | None:
    """(uint16 codes, dictionary) of a string array with few distinct values, or None
    when it has more than ENCODE_MAX_DISTINCT. Codes of NULL rows are 0; the dictionary
    holds no NULL. Several times faster than pc.dictionary_encode on short strings.
    Two-byte codes: a quarter of the memory traffic of int64 words, for the encoder
    writing them and the kernel reading them."""
    try:
        buffers = string_buffers(values)
    except _Unsupported:
        return None
    offsets, data, bitmap, bitoff = buffers
    codes = np.zeros(len(values), dtype=np.uint16)
    first = np.zeros(ENCODE_MAX_DISTINCT, dtype=np.int64)
    ndistinct = aot.call("encode_kernel", offsets, data, bitmap, bitoff, codes, first)
    if ndistinct < 0:
        return None
    dictionary = values.take(pa.array(first[:ndistinct]))
    return codes, dictionary
