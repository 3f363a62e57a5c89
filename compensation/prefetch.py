"""Running a producer one step ahead of its consumer, in a thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure(Generic[T]):
    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextmanager
def prefetched(items: Iterator[T], *, depth: int = 1) -> Iterator[Iterator[T]]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the caller.

    Worth it when producing (parsing, in Python) and consuming (waiting on the database, which releases the
    GIL) take turns on the CPU. An exception in the producer is raised in the caller at the item where it
    happened; leaving the block early stops the producer. ``items`` must not share state with the caller.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failure(error))
            return
        put(_DONE)

    def consume() -> Iterator[T]:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join()
