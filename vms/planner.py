"""The VM planner: pure functions from (exams, VMs, provider queue, now) to a plan.

No ORM, no I/O, no clock: everything comes in as frozen dataclasses and plain
integers, so the live loop, the simulation, the API and the tests all get the
same answer for the same inputs. Times are integer **milliseconds** since the
epoch: the model adds 6 s tens of thousands of times and compares instants for
equality (a VM ready exactly at the exam's start counts), which floats would
get wrong.

The provider model this plans for (see ``vms.providers``): one FIFO
allocation queue, one VM allocated at a time, ``I`` = 6 s each, so a VM
requested at ``t`` when the allocator is free at ``A`` is ready at
``max(t, A) + I``. A request therefore occupies a *slot* ``[s, s + I]`` of
allocator time, and a plan is a set of non-overlapping slots.

The algorithm, per planning pass (cost O(E log E + V) for E exams and V live
VMs; the planned requests themselves are *runs* - first slot, count, spacing -
so 1,000 exams of 2,500 students are 1,000 runs, not 2.5 million slots):

1. Classify live VMs. Those of ended exams, of a started exam beyond its
   ``students``, or used ones whose exam is gone are stopped. *Fresh* VMs
   (no student can have used them: their exam has not started) are the pool
   the future exams are served from.
2. ``A``: the allocator is busy until the last VM left in the provider's queue
   is ready (or now). New slots start at ``A`` or later.
3. Feasibility, earliest deadline first (deadline ``D = start - margin``):
   each exam keeps its own fresh VMs ready by ``D`` (at most ``students``;
   surplus, latest-ready i.e. waiting first, is released), then takes new
   slots ending by ``D`` that earlier exams left, then - only when that is not
   enough - re-binds surplus fresh VMs, then steals fresh VMs of later exams.
   Everything an exam can use is also usable by every later exam, so this
   greedy pass gives the most VMs on time, earliest exams first.
4. Placement as late as possible, latest deadline first: each exam's new
   slots form one contiguous run ending at ``min(D, start of the next run)``.
   (Standard for unit-length jobs with deadlines: this fits exactly when the
   forward pass does.) Along the way two cost trades are made, both only when
   they keep every exam's on-time count:
   * a surplus fresh VM replaces the earliest slot of a run when it would wait
     no longer for the exam than the VM of that slot would ("saves an
     allocation": no start, no stop, no allocator time);
   * an own fresh VM that would idle much longer than a new one (the exam was
     moved later) is released and re-requested later.
5. Shortfall: VMs that cannot be ready by ``D`` are still requested, but only
   in the gaps between runs (slots no on-time VM needs) and only if they are
   ready before the exam ends - late students still get one.
6. Stops: pending stops first, then surplus VMs still in the provider's queue
   (stopping a waiting VM costs nothing and frees allocator time), then ready
   VMs that protect an upcoming start (surplus of an exam not yet started,
   VMs of a deleted exam), then plain teardown, earliest end first.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

SECOND_MS = 1_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_ms(value: datetime) -> int:
    """Aware datetime -> integer ms since the epoch (sub-ms parts rounded up,
    so an instant is never taken to be earlier than it is)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time must be timezone-aware, got naive {value.isoformat()}")
    delta = value - _EPOCH
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-us // 1_000)


def to_ms_floor(value: datetime) -> int:
    """Aware datetime -> integer ms since the epoch, sub-ms parts rounded *down*.

    For deadlines (an exam's start): a VM planned ready at the rounded-down
    instant is ready by the true one, so no VM is ever late by rounding
    (10:00:00.0005 plans for 10:00:00.000, not .001). "Now" and exam ends
    round up (``to_ms``): an instant is never taken to be earlier than it is,
    so nothing is stopped before an exam ends."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time must be timezone-aware, got naive {value.isoformat()}")
    delta = value - _EPOCH
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return us // 1_000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _iso_ms(ms: int) -> str:
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")

# Why a stop is planned; the scheduler logs it and the API shows it.
STOP_PENDING = "pending"  # a stop was begun before (crash, error): finish it
STOP_SURPLUS = "surplus"  # more VMs than students, or nobody's fresh VM
STOP_RELEASE = "release"  # fresh VM parked too early (exam moved later): re-request later
STOP_ENDED = "ended"  # the exam is over
STOP_ORPHAN = "orphan"  # used VM whose exam was deleted
STOP_USED = "used"  # used VM of an exam moved after it started: its new sitting gets fresh VMs
STOP_USELESS = "useless"  # still queued but would be ready too close to its (started) exam's end to help


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    allocation_interval_ms: int = 6_000
    requests_per_second: int = 3
    ready_margin_ms: int = 0
    # Requests inside a back-to-back run go out this much before their slot
    # starts, while the previous VM is still allocating: the FIFO makes the VM
    # ready exactly when its slot ends anyway (no cost: cost counts from
    # allocation), and a request that leaves a few ms late then delays nothing.
    request_lead_ms: int = 1_500
    # The first request of a run after an idle allocator goes out this much
    # before its slot. Live, a call leaves a few ms after its due time and the
    # whole back-to-back run would be that much late; this head start (0.25 s
    # live, none in a simulation whose clock is exact) keeps every VM ready by
    # its slot's end. Unlike the ready margin it is slack, not a deadline: a
    # run a few ms late is still on time.
    idle_lead_ms: int = 0
    # An exam's own fresh VM is released (stopped, re-requested later) only
    # when it would otherwise idle this much longer than a new VM would: a
    # stop + start + slot must buy a real saving, and plans must not flap.
    release_slack_ms: int = 15 * 60 * SECOND_MS
    # A late VM (for a shortfall) is only requested when it is ready at least
    # this long before its exam ends (VM_LATE_MIN_USEFUL_SECONDS): a VM ready
    # in the last minutes helps no student and costs a slot and a stop.
    late_min_useful_ms: int = 600 * SECOND_MS
    # Queue ahead (VM_QUEUE_AHEAD_SECONDS): inside a back-to-back run, keep up
    # to this much of the run's requests waiting in the provider's FIFO. Each
    # VM is still ready when the one ahead is ready + I (no ready time and no
    # cost changes: cost counts from ready), a stop of a waiting VM frees its
    # slot (plans can still change), and a scheduler outage shorter than this
    # costs no VM at any start: the provider keeps allocating what is queued.
    queue_ahead_ms: int = 0

    def late_limit_ms(self, end_ms: int) -> int:
        """The latest ready time at which a late VM is still useful."""
        return end_ms - self.late_min_useful_ms if self.late_min_useful_ms else end_ms - 1

    def __post_init__(self):
        if self.allocation_interval_ms <= 0:
            raise ValueError("allocation_interval_ms must be positive")
        if self.requests_per_second < 1:
            raise ValueError("requests_per_second must be at least 1")
        if self.allocation_interval_ms * self.requests_per_second < SECOND_MS:
            # Slots would then come faster than start calls may: the planner
            # assumes the allocator, not the call rate, is the bottleneck.
            raise ValueError("allocation interval must be at least 1/requests_per_second seconds")
        if min(self.ready_margin_ms, self.request_lead_ms, self.release_slack_ms, self.idle_lead_ms, self.late_min_useful_ms,
               self.queue_ahead_ms) < 0:
            raise ValueError("margins must not be negative")

    @property
    def call_spacing_ms(self) -> int:
        """Smallest spacing of calls that keeps any rolling second under the limit."""
        return -(-SECOND_MS // self.requests_per_second)

    @property
    def lead_ms(self) -> int:
        # Early requests must still be a full call spacing after the previous one.
        return max(0, min(self.request_lead_ms, self.allocation_interval_ms - self.call_spacing_ms))


@dataclass(frozen=True, slots=True)
class ExamIn:
    id: int
    start_ms: int
    end_ms: int
    students: int


@dataclass(frozen=True, slots=True)
class VmIn:
    """A live VM record as the scheduler believes it.

    ``ready_ms`` is when the VM was or is expected to be ready (for a queued
    VM: through the FIFO as of its request). ``used``: a student may have
    used it (its exam started while it was bound), so it is never re-bound.
    ``stopping``: a stop was begun and must be finished. ``unknown``: a start
    whose outcome we never learned (crash between intent and answer): it may
    occupy the allocator, but it can be neither used nor stopped.
    """

    id: int
    exam_id: int | None
    requested_ms: int
    ready_ms: int
    used: bool = False
    stopping: bool = False
    unknown: bool = False


@dataclass(frozen=True, slots=True)
class Run:
    """``count`` back-to-back slots for one exam: slot k is
    ``[slot_start_ms + k*interval_ms, slot_start_ms + (k+1)*interval_ms]``."""

    exam_id: int
    slot_start_ms: int
    count: int
    interval_ms: int
    lead_ms: int
    # The allocator is busy right up to this run's first slot, so its first
    # request may go out early too.
    early_first: bool
    late: bool = False
    idle_lead_ms: int = 0
    # Queue ahead: request k goes out up to ``queue_ahead_ms`` before its slot,
    # but no faster than one call per ``spacing_ms`` counted from the first
    # request of the back-to-back block (``anchor_ms``; this run's first slot
    # is the block's ``anchor_index``-th).
    queue_ahead_ms: int = 0
    anchor_ms: int = 0
    anchor_index: int = 0
    spacing_ms: int = 0

    @property
    def end_ms(self) -> int:
        return self.slot_start_ms + self.count * self.interval_ms

    @property
    def first_request_ms(self) -> int:
        return self.request_ms(0)

    def request_ms(self, k: int) -> int:
        start = self.slot_start_ms + k * self.interval_ms
        if k == 0 and not self.early_first:
            return start - self.idle_lead_ms
        if self.queue_ahead_ms <= self.lead_ms:
            return start - self.lead_ms
        return max(start - self.queue_ahead_ms, self.anchor_ms + (self.anchor_index + k) * self.spacing_ms)

    def ready_ms(self, k: int) -> int:
        return self.slot_start_ms + (k + 1) * self.interval_ms


@dataclass(frozen=True, slots=True)
class ExamPlan:
    exam_id: int
    start_ms: int
    end_ms: int
    deadline_ms: int
    students: int
    started: bool
    # VMs of this exam now alive (bound after this pass's assigns/stops).
    vms_kept: int
    # On time = ready by the deadline: VMs kept + re-bound here + new slots.
    expected_ready_at_start: int
    shortfall: int
    new_on_time: int
    rebound_in: int
    late_planned: int
    requesting_starts_ms: int | None
    runs: tuple[Run, ...]

    @property
    def at_risk(self) -> bool:
        return self.shortfall > 0

    @property
    def last_late_ready_ms(self) -> int | None:
        """When the last planned late VM should be ready (None: none planned)."""
        late = [r.ready_ms(r.count - 1) for r in self.runs if r.late]
        return max(late) if late else None

    def shortfall_note(self) -> str:
        """What happens about the missing VMs, in words that promise only
        what is planned (the log, the API and the admin say the same)."""
        if not self.shortfall:
            return ""
        late, last = self.late_planned, self.last_late_ready_ms
        if not late:
            return "no late VM can be provided before the exam ends"
        text = f"{late} late VM{'s' if late != 1 else ''} planned, the last ready at {_iso_ms(last)}"
        missing = self.shortfall - late
        if missing > 0 and not self.started:
            text += f"; {missing} cannot be provided"
        return text


@dataclass(frozen=True, slots=True)
class Stop:
    vm_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Assign:
    vm_id: int
    exam_id: int


@dataclass(frozen=True, slots=True)
class Plan:
    now_ms: int
    allocator_free_ms: int
    exams: tuple[ExamPlan, ...]  # earliest deadline first
    runs: tuple[Run, ...]  # in time order, non-overlapping
    stops: tuple[Stop, ...]  # in the order to issue them
    assigns: tuple[Assign, ...]
    # The next instant something is due that a replan would see (an exam
    # starts or ends); requests follow ``runs``.
    next_event_ms: int | None
    _by_exam: dict = field(default=None, compare=False, repr=False)

    def exam(self, exam_id: int) -> ExamPlan | None:
        by_exam = self._by_exam
        if by_exam is None:
            by_exam = {e.exam_id: e for e in self.exams}
            object.__setattr__(self, "_by_exam", by_exam)
        return by_exam.get(exam_id)

    def start_requests(self) -> Iterator[tuple[int, int, int]]:
        """(request_ms, exam_id, planned_ready_ms) for every planned VM, in time order (lazy)."""
        for run in self.runs:
            for k in range(run.count):
                yield run.request_ms(k), run.exam_id, run.ready_ms(k)

    def starts_due(self, now_ms: int) -> list[int]:
        """Exam ids of the VMs whose request time has come, in order."""
        due = []
        for request_ms, exam_id, _ready in self.start_requests():
            if request_ms > now_ms:
                break
            due.append(exam_id)
        return due

    def next_due_ms(self, now_ms: int) -> int | None:
        """Next instant after ``now_ms`` at which a request or an exam event is due."""
        candidates = [self.next_event_ms] if self.next_event_ms is not None else []
        for request_ms, _exam, _ready in self.start_requests():
            if request_ms > now_ms:
                candidates.append(request_ms)
                break
        return min(candidates) if candidates else None

    @property
    def total_requests(self) -> int:
        return sum(run.count for run in self.runs)


class _Fresh:
    """A fresh VM during planning (mutable working copy)."""

    __slots__ = ("vm", "ready", "queued", "allocating")

    def __init__(self, vm: VmIn, ready: int, queued: bool, allocating: bool):
        self.vm = vm
        self.ready = ready
        self.queued = queued
        self.allocating = allocating


class _Pool:
    """Surplus fresh VMs, sorted by ready time; take the latest ready by a deadline."""

    def __init__(self):
        self._keys: list[tuple[int, int]] = []
        self._items: list[_Fresh] = []

    def add(self, item: _Fresh) -> None:
        key = (item.ready, item.vm.id)
        i = bisect.bisect_left(self._keys, key)
        self._keys.insert(i, key)
        self._items.insert(i, item)

    def peek_latest_by(self, deadline: int) -> _Fresh | None:
        i = bisect.bisect_right(self._keys, (deadline, float("inf")))
        return self._items[i - 1] if i else None

    def remove(self, item: _Fresh) -> None:
        i = bisect.bisect_left(self._keys, (item.ready, item.vm.id))
        del self._keys[i]
        del self._items[i]

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self):
        return len(self._items)


def _slots_between(start: int, end: int, interval: int) -> int:
    return (end - start) // interval if end > start else 0


def plan(*, exams: Iterable[ExamIn], vms: Iterable[VmIn], now_ms: int, config: PlannerConfig) -> Plan:
    interval = config.allocation_interval_ms
    margin = config.ready_margin_ms
    exams_by_id = {e.id: e for e in exams}

    # --- 1. classify live VMs ------------------------------------------------
    stops: list[tuple[tuple, Stop]] = []  # (sort key, stop)
    stopped_ids: set[int] = set()

    def stop(vm: VmIn, reason: str, key: tuple) -> None:
        stopped_ids.add(vm.id)
        stops.append((key, Stop(vm.id, reason)))

    queue: list[VmIn] = []  # the provider's FIFO as we believe it
    fresh_vms: list[VmIn] = []
    committed: dict[int, list[VmIn]] = {}  # started exam -> its VMs
    for vm in vms:
        if vm.ready_ms > now_ms:
            queue.append(vm)
        if vm.unknown:
            continue
        if vm.stopping:
            stop(vm, STOP_PENDING, (0, vm.id))
            continue
        exam = exams_by_id.get(vm.exam_id) if vm.exam_id is not None else None
        if exam is None:
            if vm.used:
                stop(vm, STOP_ORPHAN, _stop_key(vm, vm.ready_ms, now_ms, interval, protects_ms=now_ms))
            else:
                fresh_vms.append(vm)
        elif exam.end_ms <= now_ms:
            stop(vm, STOP_ENDED, _stop_key(vm, vm.ready_ms, now_ms, interval, due_ms=exam.end_ms))
        elif exam.start_ms <= now_ms:
            committed.setdefault(exam.id, []).append(vm)
        elif vm.used:
            # The exam was moved after it had started: students may have used
            # this VM, so the new sitting gets fresh ones and this one goes.
            stop(vm, STOP_USED, _stop_key(vm, vm.ready_ms, now_ms, interval, protects_ms=exam.start_ms))
        else:
            fresh_vms.append(vm)
    queue.sort(key=lambda v: (v.requested_ms, v.id))

    # Started exams: their VMs are committed. Beyond ``students``: stop the
    # surplus at once, VMs still in the queue first; queued VMs that would only
    # be ready after the exam ends are useless.
    started_vm_count: dict[int, int] = {}
    started_ready_at_start: dict[int, int] = {}
    for exam_id, bound in committed.items():
        exam = exams_by_id[exam_id]
        useful = []
        for vm in bound:
            if vm.ready_ms > now_ms and vm.ready_ms > config.late_limit_ms(exam.end_ms):
                stop(vm, STOP_USELESS, _stop_key(vm, vm.ready_ms, now_ms, interval))
            else:
                useful.append(vm)
        useful.sort(key=lambda v: (v.ready_ms, v.id))
        surplus = len(useful) - exam.students
        if surplus > 0:
            for vm in useful[-surplus:]:
                stop(vm, STOP_SURPLUS, _stop_key(vm, vm.ready_ms, now_ms, interval))
            useful = useful[:-surplus]
        started_vm_count[exam_id] = len(useful)
        started_ready_at_start[exam_id] = sum(1 for v in useful if v.ready_ms <= exam.start_ms)

    # --- 2. the provider queue without the VMs being stopped ------------------
    # Removing a VM only moves later ones forward; the allocating one (its
    # allocation began by now) frees the allocator at its stop, i.e. about now.
    ready_of: dict[int, int] = {}
    prev_end = now_ms
    moved = False
    for vm in queue:
        allocating = vm.ready_ms - interval <= now_ms
        if vm.id in stopped_ids:
            if allocating:
                prev_end = max(prev_end, now_ms)
            moved = True
            continue
        ready = vm.ready_ms
        if moved and not allocating:
            ready = min(ready, max(vm.requested_ms, prev_end) + interval)
        ready_of[vm.id] = ready
        prev_end = max(prev_end, ready)

    # --- 3. fresh VMs: keep, pool, late --------------------------------------
    future = sorted(
        (e for e in exams_by_id.values() if e.start_ms > now_ms),
        key=lambda e: (e.start_ms - margin, e.start_ms, e.id),
    )
    own: dict[int, list[_Fresh]] = {e.id: [] for e in future}
    pool = _Pool()
    for vm in fresh_vms:
        ready = ready_of.get(vm.id, vm.ready_ms)
        queued = ready > now_ms
        item = _Fresh(vm, ready, queued, queued and vm.ready_ms - interval <= now_ms)
        if vm.exam_id in own:
            own[vm.exam_id].append(item)
        else:
            pool.add(item)

    keep: dict[int, list[_Fresh]] = {}
    late_keep: dict[int, list[_Fresh]] = {}
    for e in future:
        deadline = e.start_ms - margin
        mine = sorted(own[e.id], key=lambda f: (f.ready, f.vm.id))
        on_time = [f for f in mine if f.ready <= deadline]
        late = [f for f in mine if f.ready > deadline]
        # Earliest ready kept: the surplus is the latest ready, i.e. VMs still
        # waiting in the queue go first.
        keep[e.id] = on_time[: e.students]
        for f in on_time[e.students :]:
            pool.add(f)
        late_keep[e.id] = late

    # --- 4. forward pass: on-time counts, earliest deadline first ------------
    holders = [i for i, e in enumerate(future) if keep[e.id]]  # exams with fresh VMs
    allocator_free = prev_end
    new_slots: dict[int, int] = {}
    rebound: dict[int, list[_Fresh]] = {e.id: [] for e in future}
    used_slots = 0
    for i, e in enumerate(future):
        deadline = e.start_ms - margin
        need = e.students - len(keep[e.id])
        capacity = _slots_between(allocator_free, deadline, interval) - used_slots
        take = max(0, min(need, capacity))
        new_slots[e.id] = take
        used_slots += take
        need -= take
        while need > 0:
            item = pool.peek_latest_by(deadline)
            if item is None:
                break
            pool.remove(item)
            rebound[e.id].append(item)
            need -= 1
        if need > 0:
            # Earliest exams first: take fresh VMs of the latest exams that
            # are ready in time for this one; those exams replan for themselves.
            for h in range(len(holders) - 1, -1, -1):
                if holders[h] <= i:
                    break
                theirs = keep[future[holders[h]].id]
                if not theirs or theirs[0].ready > deadline:
                    continue
                j = bisect.bisect_right([f.ready for f in theirs], deadline)
                while need > 0 and j > 0:
                    j -= 1
                    rebound[e.id].append(theirs.pop(j))
                    need -= 1
                if need == 0:
                    break

    # --- 5. backward pass: runs as late as possible, cost trades -------------
    prefix = 0
    slack: list[int] = []
    for e in future:
        prefix += new_slots[e.id]
        slack.append(_slots_between(allocator_free, e.start_ms - margin, interval) - prefix)
    released: list[_Fresh] = []
    runs_by_exam: dict[int, Run] = {}
    cursor = None
    min_slack_after = None
    for i in range(len(future) - 1, -1, -1):
        e = future[i]
        deadline = e.start_ms - margin
        end = deadline if cursor is None else min(deadline, cursor)
        x = new_slots[e.id]
        room = slack[i] if min_slack_after is None else min(min_slack_after, slack[i])
        # A surplus VM instead of the earliest slot when it waits no longer.
        while x > 0:
            item = pool.peek_latest_by(deadline)
            if item is None:
                break
            earliest_slot_ready = end - x * interval + interval
            if deadline - max(now_ms, item.ready) > deadline - earliest_slot_ready:
                break
            pool.remove(item)
            rebound[e.id].append(item)
            x -= 1
            room += 1
        # An own VM parked far too early (exam moved later) is released when
        # a new slot fits without costing any exam an on-time VM.
        kept = keep[e.id]
        while kept and room > 0:
            item = kept[0]
            new_ready = end - x * interval
            if deadline - max(now_ms, item.ready) <= (deadline - new_ready) + config.release_slack_ms:
                break
            kept.pop(0)
            released.append(item)
            x += 1
            room -= 1
        min_slack_after = room
        new_slots[e.id] = x
        if x > 0:
            runs_by_exam[e.id] = Run(e.id, end - x * interval, x, interval, config.lead_ms, False, idle_lead_ms=config.idle_lead_ms)
            cursor = end - x * interval
        else:
            cursor = end
    def _protects(vm: VmIn) -> int:
        # the upcoming start a fresh VM would otherwise be counted at; now
        # for a VM of a deleted exam (or of none)
        bound = exams_by_id.get(vm.exam_id) if vm.exam_id is not None else None
        return bound.start_ms if bound is not None and bound.start_ms > now_ms else now_ms

    for item in released:
        stop(item.vm, STOP_RELEASE, _stop_key(item.vm, item.ready, now_ms, interval, protects_ms=_protects(item.vm)))
    for item in pool:
        stop(item.vm, STOP_SURPLUS, _stop_key(item.vm, item.ready, now_ms, interval, protects_ms=_protects(item.vm)))

    # --- 6. late VMs in the gaps, earliest deadline first --------------------
    on_time_runs = sorted(runs_by_exam.values(), key=lambda r: r.slot_start_ms)
    gaps: list[list[int]] = []  # [start, end) of allocator time no on-time VM needs
    g = allocator_free
    for run in on_time_runs:
        if run.slot_start_ms - g >= interval:
            gaps.append([g, run.slot_start_ms])
        g = max(g, run.end_ms)
    gaps.append([g, None])
    late_needs: list[tuple[tuple, ExamIn, int]] = []
    for e in future:
        on_time = len(keep[e.id]) + len(rebound[e.id]) + new_slots[e.id]
        short = e.students - on_time
        lk = late_keep[e.id]
        useful_late = [f for f in lk if f.ready <= config.late_limit_ms(e.end_ms)][: max(0, short)]
        kept_ids = {f.vm.id for f in useful_late}
        for f in lk:
            if f.vm.id not in kept_ids:
                stop(f.vm, STOP_SURPLUS, _stop_key(f.vm, f.ready, now_ms, interval, protects_ms=e.start_ms))
        late_keep[e.id] = useful_late
        if short - len(useful_late) > 0:
            late_needs.append(((e.start_ms - margin, e.start_ms, e.id), e, short - len(useful_late)))
    for exam_id, count in started_vm_count.items():
        e = exams_by_id[exam_id]
        if e.students > count:
            late_needs.append(((e.start_ms - margin, e.start_ms, e.id), e, e.students - count))
    for exam_id, e in exams_by_id.items():
        # a started exam none of whose VMs is alive (e.g. created after its start)
        if e.start_ms <= now_ms < e.end_ms and exam_id not in started_vm_count and e.students > 0:
            started_vm_count[exam_id] = 0
            late_needs.append(((e.start_ms - margin, e.start_ms, e.id), e, e.students))
    late_needs.sort(key=lambda t: t[0])
    late_runs: dict[int, list[Run]] = {}
    gi = 0  # gaps before gi are used up
    for _key, e, need in late_needs:
        j = gi
        while need > 0 and j < len(gaps):
            start, end = gaps[j]
            # slot k is ready at start + (k+1)*I, which must leave the
            # student at least late_min_useful_ms of the exam
            fit_by_end = (config.late_limit_ms(e.end_ms) - start) // interval
            if fit_by_end <= 0:
                break  # later gaps start later still
            fit = fit_by_end if end is None else min(fit_by_end, (end - start) // interval)
            if fit <= 0:
                j += 1
                continue
            count = min(need, fit)
            late_runs.setdefault(e.id, []).append(
                Run(e.id, start, count, interval, config.lead_ms, False, late=True, idle_lead_ms=config.idle_lead_ms)
            )
            gaps[j][0] = start + count * interval
            need -= count
            if need and fit == fit_by_end:
                break
            j += 1
        while gi < len(gaps) and gaps[gi][1] is not None and gaps[gi][1] - gaps[gi][0] < interval:
            gi += 1

    # --- 7. assemble ----------------------------------------------------------
    all_runs = on_time_runs + [r for rs in late_runs.values() for r in rs]
    all_runs.sort(key=lambda r: r.slot_start_ms)
    queue_busy = allocator_free > now_ms
    runs: list[Run] = []
    prev = None
    for run in all_runs:
        contiguous = (prev is not None and prev.end_ms == run.slot_start_ms) or (
            prev is None and queue_busy and run.slot_start_ms == allocator_free
        )
        early = contiguous and bool(config.lead_ms or config.queue_ahead_ms)
        if not early:
            anchor, index = run.slot_start_ms - config.idle_lead_ms, 0
        elif prev is not None:
            anchor, index = prev.anchor_ms, prev.anchor_index + prev.count
        else:
            anchor, index = now_ms, 0  # joining the queue we already have: from now
        run = Run(
            run.exam_id, run.slot_start_ms, run.count, run.interval_ms, run.lead_ms, early, run.late, run.idle_lead_ms,
            config.queue_ahead_ms, anchor, index, config.call_spacing_ms,
        )
        runs.append(run)
        prev = run
    runs_of: dict[int, list[Run]] = {}
    for run in runs:
        runs_of.setdefault(run.exam_id, []).append(run)

    assigns = [
        Assign(item.vm.id, exam_id)
        for exam_id, items in rebound.items()
        for item in items
        if item.vm.exam_id != exam_id
    ]

    exam_plans: list[ExamPlan] = []
    requested_first: dict[int, int] = {}
    for vm in vms:
        if vm.exam_id is not None and not vm.unknown:
            prev_first = requested_first.get(vm.exam_id)
            if prev_first is None or vm.requested_ms < prev_first:
                requested_first[vm.exam_id] = vm.requested_ms
    for e in future:
        deadline = e.start_ms - margin
        kept = len(keep[e.id]) + len(rebound[e.id])
        on_time = kept + new_slots[e.id]
        e_runs = tuple(runs_of.get(e.id, ()))
        first = [r.first_request_ms for r in e_runs]
        existing = [f.vm.requested_ms for f in keep[e.id] + late_keep[e.id]]
        exam_plans.append(
            ExamPlan(
                exam_id=e.id,
                start_ms=e.start_ms,
                end_ms=e.end_ms,
                deadline_ms=deadline,
                students=e.students,
                started=False,
                vms_kept=kept + len(late_keep[e.id]),
                expected_ready_at_start=on_time,
                shortfall=e.students - on_time,
                new_on_time=new_slots[e.id],
                rebound_in=sum(1 for f in rebound[e.id] if f.vm.exam_id != e.id),
                late_planned=sum(r.count for r in e_runs if r.late),
                requesting_starts_ms=min(existing + first) if existing or first else None,
                runs=e_runs,
            )
        )
    for exam_id in sorted(exams_by_id, key=lambda i: (exams_by_id[i].start_ms, i)):
        e = exams_by_id[exam_id]
        if e.start_ms > now_ms:
            continue
        ready_at_start = started_ready_at_start.get(exam_id, 0)
        e_runs = tuple(runs_of.get(exam_id, ()))
        exam_plans.append(
            ExamPlan(
                exam_id=exam_id,
                start_ms=e.start_ms,
                end_ms=e.end_ms,
                deadline_ms=e.start_ms - margin,
                students=e.students,
                started=True,
                vms_kept=started_vm_count.get(exam_id, 0),
                expected_ready_at_start=ready_at_start,
                shortfall=max(0, e.students - ready_at_start),
                new_on_time=0,
                rebound_in=0,
                late_planned=sum(r.count for r in e_runs),
                requesting_starts_ms=requested_first.get(exam_id),
                runs=e_runs,
            )
        )
    exam_plans.sort(key=lambda p: (p.deadline_ms, p.start_ms, p.exam_id))

    next_event = None
    for e in exams_by_id.values():
        for t in (e.start_ms, e.end_ms):
            if t > now_ms and (next_event is None or t < next_event):
                next_event = t
    stops.sort(key=lambda pair: pair[0])
    return Plan(
        now_ms=now_ms,
        allocator_free_ms=allocator_free,
        exams=tuple(exam_plans),
        runs=tuple(runs),
        stops=tuple(s for _key, s in stops),
        assigns=tuple(assigns),
        next_event_ms=next_event,
    )


def _stop_key(
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


def timeline(plan: Plan, exam_id: int, *, vms: Iterable[tuple[int, int | None, int]] = ()) -> list[tuple[int, int]]:
    """Planned ready VMs of one exam over time: ``[(t_ms, count), ...]``.

    ``vms`` are the live VMs as ``(vm_id, exam_id, ready_ms)``: those the plan
    keeps for the exam (bound to it and not stopped, or re-bound to it) count
    from their ready time, then each run adds its VMs, one every interval; a
    run contributes two points (first and last ready) so charts stay small.
    """
    ep = plan.exam(exam_id)
    stopped = {s.vm_id for s in plan.stops}
    moved = {a.vm_id: a.exam_id for a in plan.assigns}
    ready_times = [
        ready
        for vm_id, bound, ready in vms
        if vm_id not in stopped and moved.get(vm_id, bound) == exam_id
    ]
    count = sum(1 for r in ready_times if r <= plan.now_ms)
    points: list[tuple[int, int]] = [(plan.now_ms, count)]
    items: list[tuple[int, int, int]] = [(r, r, 1) for r in ready_times if r > plan.now_ms]
    if ep is not None:
        items += [(run.ready_ms(0), run.ready_ms(run.count - 1), run.count) for run in ep.runs]
    items.sort()
    for first, last, n in items:
        points.append((first, count + 1))
        count += n
        if last != first:
            points.append((last, count))
    return points
