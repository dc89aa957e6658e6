"""The brief's in-memory priority queue.

``ProcessQueue`` is our own (the brief forbids the ``queue`` module): a binary
heap of ``(-priority, sequence, item)``. Negating the priority turns Python's
min-heap into "highest priority first", and the monotonic ``sequence`` breaks
ties so that among equal priorities the oldest push comes out first (and items
themselves are never compared, so they need not be orderable).

The durable queue of record is the jobs table (see ``jobs.claims``), which
follows exactly the same rule: priority descending, then submission order.

Popping from an empty queue raises :class:`QueueEmpty`, an ``IndexError``
subclass (like ``list.pop()`` on an empty list). ``pop(block=True)`` waits for
an item instead, up to ``timeout`` seconds when one is given, and raises
``QueueEmpty`` if none arrived in time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["ProcessQueue", "QueueEmpty"]


class QueueEmpty(IndexError):
    """Raised by :meth:`ProcessQueue.pop` when there is nothing to pop."""


class ProcessQueue(Generic[T]):
    """A thread-safe priority queue: highest priority first, FIFO among equals."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, T]] = []
        self._counter = itertools.count()
        # One condition guards the heap and wakes blocked poppers on push.
        self._cond = threading.Condition(threading.Lock())

    def push(self, item: T, priority: int = 0) -> None:
        """Add ``item``; a higher ``priority`` comes out earlier."""
        with self._cond:
            heapq.heappush(self._heap, (-priority, next(self._counter), item))
            self._cond.notify()

    def pop(self, block: bool = False, timeout: float | None = None) -> T:
        """Remove and return the highest-priority item, the oldest among equals.

        Non-blocking by default: raises :class:`QueueEmpty` when empty. With
        ``block=True`` waits until an item is pushed (forever when ``timeout``
        is None, else at most ``timeout`` seconds, then raises ``QueueEmpty``).
        """
        with self._cond:
            if block:
                if not self._cond.wait_for(lambda: self._heap, timeout=timeout):
                    raise QueueEmpty("pop from an empty ProcessQueue (timed out)")
            elif not self._heap:
                raise QueueEmpty("pop from an empty ProcessQueue")
            return heapq.heappop(self._heap)[2]

    def peek(self) -> T:
        """Return the item ``pop()`` would return, without removing it."""
        with self._cond:
            if not self._heap:
                raise QueueEmpty("peek into an empty ProcessQueue")
            return self._heap[0][2]

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        return f"<ProcessQueue of {len(self)} items>"
