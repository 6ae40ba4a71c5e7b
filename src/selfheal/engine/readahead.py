"""Read the next chunk of history while the detectors learn the last one.

At a first start `learn.learn_history` reads a week of history a chunk at a time and
learns each chunk tick by tick. Reading a chunk is mostly waiting for Prometheus to evaluate
its queries (measured: 5 of 16 s for 50 services, 18 of 45 s for 200), time in which the
learning could go on. `read_ahead` runs the source's iterator in a thread, one chunk ahead,
and hands its chunks, what it said through `on_skip` and how it ended (its last chunk or its
`errors.DataUnavailable`) to the learning thread in the order the source produced them, so
what is learned and said is what the same iterator read in line would give.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

Skip = Callable[[str, str], None]

_WAIT_S = 0.2
"""How often a reader waiting to hand over a chunk looks whether it is still wanted."""


class _Handed(Generic[T]):
    """One hand-over: a chunk (or the end, or the error that ended the reading) and what the
    source said through `on_skip` while it read it."""

    def __init__(self, skipped: list[tuple[str, str]], chunk: T | None = None,
                 error: BaseException | None = None, end: bool = False) -> None:
        self.skipped = skipped
        self.chunk = chunk
        self.error = error
        self.end = end


def read_ahead(read: Callable[[Skip], Iterator[T]], on_skip: Skip,
               stop: Callable[[], bool] = lambda: False) -> Iterator[T]:
    """The chunks of `read(on_skip)`, read one ahead in a thread: at most three are held (the
    one being learned, the next, and the one being read). `on_skip` is called in the
    caller's thread, before the chunk it came with. Closing this iterator early (a `halt`)
    lets the thread go once its current query returns; while the caller waits for a chunk,
    `stop()` returning True ends the iteration within `_WAIT_S` (a query in flight can take
    a minute)."""
    handed: queue.Queue[_Handed[T]] = queue.Queue(maxsize=1)
    closed = threading.Event()

    def hand(item: _Handed[T]) -> bool:
        while not closed.is_set():
            try:
                handed.put(item, timeout=_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        said: list[tuple[str, str]] = []  # since the last hand-over
        try:
            for chunk in read(lambda signal, why: said.append((signal, why))):
                if not hand(_Handed(said.copy(), chunk=chunk)):
                    return
                said.clear()
            hand(_Handed(said.copy(), end=True))
        # not swallowed: raised again in the caller's thread (DataUnavailable, or a bug)
        except BaseException as exc:  # noqa: BLE001
            hand(_Handed(said.copy(), error=exc))

    threading.Thread(target=reader, name="history-read-ahead", daemon=True).start()
    try:
        while True:
            try:
                item = handed.get(timeout=_WAIT_S)
            except queue.Empty:
                if stop():
                    return
                continue
            for signal, why in item.skipped:
                on_skip(signal, why)
            if item.error is not None:
                raise item.error
            if item.end:
                return
            assert item.chunk is not None
            yield item.chunk
    finally:
        closed.set()
