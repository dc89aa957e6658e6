"""The planner's interface: the frozen inputs (config, exams, live VMs) and
the frozen plan it returns (runs, per-exam outcomes, stops, assigns).

Frozen so that one plan can be shared by the loop, the API and the preview
without anyone changing it under another; slotted because 1,000-exam plans
build thousands of them per pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from vms.planner.times import SECOND_MS, iso_ms

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
        if (
            min(
                self.ready_margin_ms,
                self.request_lead_ms,
                self.release_slack_ms,
                self.idle_lead_ms,
                self.late_min_useful_ms,
                self.queue_ahead_ms,
            )
            < 0
        ):
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
        when = "unknown" if last is None else iso_ms(last)
        text = f"{late} late VM{'s' if late != 1 else ''} planned, the last ready at {when}"
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
    _by_exam: dict | None = field(default=None, compare=False, repr=False)

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
