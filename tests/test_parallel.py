"""engine/parallel.py: the row ranges every threaded path cuts its work into."""
from __future__ import annotations

import pytest

from batchaot.engine import parallel


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 1000, 4097, 100_003])
@pytest.mark.parametrize("parts", [1, 2, 3, 8])
def test_ranges_cover_the_rows_once(n: int, parts: int) -> None:
    for cut in (parallel.ranges, parallel.word_ranges):
        got = cut(n, parts)
        assert got[0][0] == 0 and got[-1][1] == n and len(got) <= max(parts, 1)
        assert all(a[1] == b[0] for a, b in zip(got, got[1:]))
    words = parallel.word_ranges(n, parts)
    assert all(lo % 64 == 0 for lo, _ in words)          # no two ranges share a bitmap word
    assert all(hi > lo for lo, hi in words) or words == [(0, 0)]
    assert parallel.cuts(n, parts) == [n * k // parts for k in range(parts + 1)]


def test_run_parallel_keeps_the_order() -> None:
    assert parallel.run_parallel(lambda x: x * x, list(range(20))) == [x * x for x in range(20)]
