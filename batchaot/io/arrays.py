"""Arrow arrays from Python and numpy values without pa.array() or pa.scalar().

Both import pandas the first time a process calls them (a third of a second: more than
a small job's whole check), to ask whether their argument is a pandas object.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def strings(values: list[str]) -> pa.Array:
    """A string array of `values`, built from its buffers."""
    data = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def repeated(value: str, n: int) -> pa.Array:
    """`value` n times, as a string array."""
    return pa.repeat(strings([value])[0], n)


def int64_array(values: np.ndarray) -> pa.Array:
    """An int64 array over a numpy array's buffer (zero-copy when it is contiguous int64)."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])

