"""The working state of one planning pass: mutable, private to the planner.

``plan()`` (see ``vms.planner``) runs its phases over one ``PassState``: it is
made at the start of the call and dropped at its end, so the planner stays a
pure function of its frozen inputs while each phase reads and fills only the
part it decides. Per future exam the state holds one ``Want``; the fresh VMs
nobody keeps wait in a ``Pool``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from vms.planner.types import STOP_PENDING, ExamIn, PlannerConfig, Run, Stop, VmIn


def slots_between(start: int, end: int, interval: int) -> int:
    """Whole allocation slots that fit in ``[start, end]`` (0 if none)."""
    return (end - start) // interval if end > start else 0


def stop_key(
    vm: VmIn, ready: int, now_ms: int, interval: int, *, due_ms: int | None = None, protects_ms: int | None = None
) -> tuple:
    """Order of stops: VMs still waiting in the queue first (a stop costs
    nothing and the allocator never spends time on them; the one next in line
    first), then the one being allocated, then ready VMs that *protect* a
    start - surplus of an exam that has not started (it would leave more VMs
    than students at that start) or VMs of a deleted exam -, earliest start
    first (``protects_ms``: that start, or now), and only then plain teardown
    by when the stop became due (an exam's end; now for a running exam's
    surplus), i.e. earliest end first. Every stop is made either way: the
    order costs no extra call, and a 2,500-VM drain no longer holds back the
    stops that keep the next exam exact."""
    if ready > now_ms:
        allocating = vm.ready_ms - interval <= now_ms
        return (1, 1 if allocating else 0, ready, vm.id)
    if protects_ms is not None:
        return (2, 0, protects_ms, ready, vm.id)
    return (2, 1, now_ms if due_ms is None else due_ms, ready, vm.id)


class Fresh:
    """A fresh VM (no student can have used it) and its ready time as the
    queue now stands (earlier than recorded when VMs ahead of it are stopped)."""

    __slots__ = ("vm", "ready")

    def __init__(self, vm: VmIn, ready: int):
        self.vm = vm
        self.ready = ready


class Pool:
    """Surplus fresh VMs, sorted by ready time; take the latest ready by a deadline
    (the one that would idle least before that exam)."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, int]] = []
        self._items: list[Fresh] = []

    def add(self, item: Fresh) -> None:
        key = (item.ready, item.vm.id)
        i = bisect.bisect_left(self._keys, key)
        self._keys.insert(i, key)
        self._items.insert(i, item)

    def peek_latest_by(self, deadline: int) -> Fresh | None:
        i = bisect.bisect_right(self._keys, (deadline, float("inf")))
        return self._items[i - 1] if i else None

    def remove(self, item: Fresh) -> None:
        i = bisect.bisect_left(self._keys, (item.ready, item.vm.id))
        del self._keys[i]
        del self._items[i]

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self):
        return len(self._items)


class Want:
    """One future exam during the pass: what it keeps, takes and is given.

    On time (ready by ``deadline``) = ``keep`` (its own fresh VMs) +
    ``rebound`` (fresh VMs of others, re-bound to it) + ``new_slots``;
    ``late_keep``: its own fresh VMs that will only be ready after the deadline.
    """

    __slots__ = ("exam", "deadline", "keep", "late_keep", "rebound", "new_slots")

    def __init__(self, exam: ExamIn, deadline: int):
        self.exam = exam
        self.deadline = deadline
        self.keep: list[Fresh] = []
        self.late_keep: list[Fresh] = []
        self.rebound: list[Fresh] = []
        self.new_slots = 0

    @property
    def on_time(self) -> int:
        return len(self.keep) + len(self.rebound) + self.new_slots


class PassState:
    """Everything one ``plan()`` call decides, filled phase by phase."""

    __slots__ = (
        "config",
        "now_ms",
        "interval",
        "margin",
        "exams_by_id",
        "stops",
        "stopped_ids",
        "requested_first",
        "started_vm_count",
        "started_ready_at_start",
        "allocator_free",
        "future",
        "pool",
        "released",
        "on_time_runs",
        "late_runs",
    )

    def __init__(self, *, exams: Iterable[ExamIn], now_ms: int, config: PlannerConfig):
        self.config = config
        self.now_ms = now_ms
        self.interval = config.allocation_interval_ms
        self.margin = config.ready_margin_ms
        self.exams_by_id: dict[int, ExamIn] = {e.id: e for e in exams}
        self.stops: list[tuple[tuple, Stop]] = []  # (order key, stop), in the order decided
        self.stopped_ids: set[int] = set()
        self.requested_first: dict[int, int] = {}  # exam -> earliest request of its live (known) VMs
        self.started_vm_count: dict[int, int] = {}  # started exam -> VMs it keeps
        self.started_ready_at_start: dict[int, int] = {}  # started exam -> of those, ready by its start
        self.allocator_free = now_ms  # ``A``: new slots start here or later
        self.future: list[Want] = []  # exams not started, earliest deadline first
        self.pool = Pool()  # fresh VMs nobody keeps (yet)
        self.released: list[Fresh] = []  # own VMs parked too early: stopped, re-requested later
        self.on_time_runs: list[Run] = []  # in time order
        self.late_runs: dict[int, list[Run]] = {}  # exam -> its late runs

    def stop(
        self, vm: VmIn, reason: str, *, ready: int, due_ms: int | None = None, protects_ms: int | None = None
    ) -> None:
        self.stopped_ids.add(vm.id)
        key = stop_key(vm, ready, self.now_ms, self.interval, due_ms=due_ms, protects_ms=protects_ms)
        self.stops.append((key, Stop(vm.id, reason)))

    def stop_pending(self, vm: VmIn) -> None:
        """A stop begun before (crash, error) is finished first of all."""
        self.stopped_ids.add(vm.id)
        self.stops.append(((0, vm.id), Stop(vm.id, STOP_PENDING)))
