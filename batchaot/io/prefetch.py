"""Read ahead: decode the next record batches on a thread while the caller checks this one.

Parquet decoding (pyarrow) and rule kernels (Numba, ``nogil``) both release the GIL, so a
reader thread one or two batches ahead turns read-then-check into read-while-check. The
queue is bounded: at most `depth` decoded batches wait, whatever the file's size.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, produced on a reader thread up to `depth` ahead. An exception of the
    reader is raised here, at the item where it happened. Closing the returned generator
    early (a failing rule, ``break``) stops the reader and closes `items` on its thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    break
        except BaseException as exc:        # re-raised on the consumer's side
            put(_Failed(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        put(_DONE)

    reader = threading.Thread(target=produce, name="batchaot-read", daemon=True)
    reader.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        reader.join()
