"""batchaot.native.Pool: zero-copy numpy views over a C memory pool."""
from __future__ import annotations

import ctypes
import gc
import weakref

import numpy as np
import pytest

from batchaot import native
from batchaot.native import ErrorCode, Pool, PoolError


def address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def test_blocks_then_misses_when_exhausted():
    with Pool(block_bytes=256, nblocks=2) as pool:
        a, b = pool.take(256), pool.take(10)
        c = pool.take(100)                    # exhausted: a miss, still usable
        big = pool.take(10_000)               # larger than a block: a miss
        for arr, fill in ((a, 1), (b, 2), (c, 3), (big, 4)):
            arr[:] = fill
        assert (a == 1).all() and (b == 2).all() and (c == 3).all() and (big == 4).all()
        assert (len(a), len(b), len(c), len(big)) == (256, 10, 100, 10_000)
        assert pool.stats() == dict(allocs=4, hits=2, misses=2, frees=0, in_use=4, high_water=4,
                                    block_bytes=256, nblocks=2)
        for arr in (a, b, c, big):
            pool.give(arr)
        st = pool.stats()
        assert (st["frees"], st["in_use"], st["high_water"]) == (4, 0, 4)


def test_views_are_zero_copy_and_aligned():
    for align in (16, 64, 4096):
        with Pool(block_bytes=1000, nblocks=3, align=align) as pool:
            arr = pool.take(1000)
            assert arr.dtype == np.uint8 and arr.flags.writeable and arr.flags.c_contiguous
            assert address(arr) % align == 0
            # a second, independent view of the same block sees every write
            other = np.frombuffer((ctypes.c_uint8 * 1000).from_address(address(arr)), dtype=np.uint8)
            arr[:8] = np.arange(8)
            assert other[:8].tolist() == list(range(8))
            other[999] = 42
            assert arr[999] == 42
            words = arr[:800].view(np.float64)  # typed views work in place
            words[:] = 1.5
            assert other[:8].view(np.float64)[0] == 1.5
            pool.give(arr)
            again = pool.take(10)               # the freed block comes back first
            assert address(again) == address(arr) and again[0] == arr[0]


def test_double_free_and_foreign_arrays_are_errors():
    with Pool(64, 2) as pool, Pool(64, 2) as other:
        arr = pool.take(64)
        with pytest.raises(PoolError) as err:
            pool.give(arr[1:])                  # inside a block, not a block
        assert err.value.code == ErrorCode.FOREIGN_POINTER
        with pytest.raises(PoolError) as err:
            pool.give(np.zeros(64, np.uint8))
        assert err.value.code == ErrorCode.FOREIGN_POINTER
        with pytest.raises(PoolError) as err:
            pool.give(other.take(8))
        assert err.value.code == ErrorCode.FOREIGN_POINTER
        pool.give(arr)
        with pytest.raises(PoolError) as err:
            pool.give(arr)
        assert err.value.code == ErrorCode.DOUBLE_FREE
        miss = pool.take(4096)
        pool.give(miss)
        with pytest.raises(PoolError):
            pool.give(miss)
        assert pool.stats()["frees"] == 2


def test_reset_and_destroy_are_safe_twice():
    pool = Pool(32, 2)
    first = pool.take(32)
    addr = address(first)
    pool.take(32)
    pool.take(32)
    pool.reset()
    pool.reset()
    st = pool.stats()
    assert st["in_use"] == 0 and st["allocs"] == 3 and st["high_water"] == 3
    assert address(pool.take(1)) == addr
    pool.destroy()
    pool.destroy()
    assert pool.destroyed
    for use in (lambda: pool.take(1), lambda: pool.give(first), pool.stats, pool.reset):
        with pytest.raises(native.NativeError, match="destroyed"):
            use()


def test_borrow_gives_back_even_on_error():
    with Pool(128, 1) as pool:
        with pool.borrow(100) as buf:
            buf[:] = 7
            assert pool.stats()["in_use"] == 1
        assert pool.stats()["in_use"] == 0
        with pytest.raises(RuntimeError), pool.borrow(10):
            raise RuntimeError("boom")
        assert pool.stats()["in_use"] == 0
        empty = pool.take(0)
        assert empty.shape == (0,)
        pool.give(empty)
    assert pool.destroyed


def test_several_pools_at_once():
    pools = [Pool(64 * (i + 1), 4) for i in range(6)]
    taken = [[pool.take(j * 50) for j in range(8)] for pool in pools]
    for i, arrays in enumerate(taken):
        for arr in arrays:
            arr[:] = i
    for i, (pool, arrays) in enumerate(zip(pools, taken)):
        assert all((arr == i).all() for arr in arrays)
        with pytest.raises(PoolError):
            pools[(i + 1) % len(pools)].give(arrays[0])
        for arr in arrays:
            pool.give(arr)
        assert pool.stats()["in_use"] == 0 and pool.stats()["allocs"] == 8
    for pool in pools:
        pool.destroy()


def test_an_array_keeps_its_pool_alive():
    pool = Pool(64, 1)
    arr = pool.take(64)
    alive = weakref.ref(pool)
    del pool
    gc.collect()
    assert alive() is not None               # collecting it would free arr's memory
    arr[:] = 5
    assert arr.sum() == 5 * 64
    del arr
    gc.collect()
    assert alive() is None                   # and then the C pool is freed


@pytest.mark.parametrize("shape", [(0, 4, 64), (64, -1, 64), (64, 4, 48), (64, 4, 0)])
def test_bad_pool_shapes(shape):
    with pytest.raises(ValueError):
        Pool(*shape)


def test_huge_request_is_a_memory_error():
    with Pool(64, 1) as pool, pytest.raises(MemoryError):
        pool.take(2 ** 62)
