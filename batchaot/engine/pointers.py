"""The kernels' side of :class:`~batchaot.engine.buffers.Buffers`: entry j of an address
table viewed as an array (``i64_at``, ``u8_at``), and the unaligned 8-byte load the string
and fused kernels share (``load_u64``). Numba intrinsics: imported by kernel modules only.
"""
from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _pointer_intrinsic(element):
    ptr = types.CPointer(element)

    @intrinsic
    def as_pointer(typingctx, addr):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr))
        return ptr(types.int64), codegen

    return as_pointer


_i64_pointer = _pointer_intrinsic(types.int64)
_u8_pointer = _pointer_intrinsic(types.uint8)


@numba.njit(inline="always")
def i64_at(addrs, lens, j):
    """Entry j of an int64 Buffers as an array."""
    return numba.carray(_i64_pointer(addrs[j]), lens[j])


@numba.njit(inline="always")
def u8_at(addrs, lens, j):
    """Entry j of a uint8 Buffers as an array."""
    return numba.carray(_u8_pointer(addrs[j]), lens[j])


@intrinsic
def load_u64(typingctx, arr, idx):
    """The 8 bytes of a uint8 array at [idx, idx + 8) as a little-endian uint64: one
    unaligned load (string kernels read 8 bytes at a time, fused kernels 64 validity
    bits). The caller keeps idx + 8 within the array."""
    sig = types.uint64(arr, types.int64)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)
    return sig, codegen
