"""The plan summary: what the scheduler keeps of each plan, and what readers get.

The planner is cheap per exam but its input is every live VM, so reads (the
admin's list and change pages, ``GET /exams/<id>/plan``) must not run it: the
scheduler summarises each plan it makes (``summarize``, pure, O(exams + live
VMs)), stores the exams whose figures changed, and readers build the typed
``ExamPlanReport`` from the stored rows plus the VM records
(``vms.selectors.exam_plan_report``). Writes that ask "what will this change
do" (exam create/update answers, the preview) still plan: they need a new plan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from vms.planner import ExamPlan, Plan, from_ms
from vms.planner.chart import ready_points

# At most this many points per timeline (charts stay small, rows too).
MAX_POINTS = 200


def iso_ms(t: datetime | None) -> str | None:
    """The API's time format (milliseconds, ``Z``), also used inside notes."""
    return None if t is None else t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def thin(points: list, limit: int = MAX_POINTS) -> list:
    """At most ``limit`` points, always keeping the first and the last."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


# --- what the scheduler stores (ms integers, compared to skip unchanged writes) ------


@dataclass(frozen=True, slots=True)
class ExamSummary:
    """One exam's figures in one plan. ``timeline[0]`` is ``(plan time,
    ready then)``; ``same_figures`` ignores that time, so a replan that
    changes nothing for an exam writes nothing for it."""

    exam_id: int
    start_ms: int
    end_ms: int
    students: int
    started: bool
    expected_ready_at_start: int
    shortfall: int
    late_planned: int
    planned_requests: int
    requesting_starts_ms: int | None
    last_late_ready_ms: int | None
    shortfall_note: str
    # (first_request_ms, count, interval_ms, first_ready_ms, last_ready_ms, late)
    runs: tuple[tuple[int, int, int, int, int, bool], ...]
    timeline: tuple[tuple[int, int], ...]

    def same_figures(self, other: ExamSummary | None) -> bool:
        if other is None:
            return False
        mine, theirs = self.timeline, other.timeline
        return (
            self.without_timeline() == other.without_timeline()
            and len(mine) == len(theirs)
            and mine[0][1] == theirs[0][1]
            and mine[1:] == theirs[1:]
        )

    def without_timeline(self) -> tuple:
        return (
            self.exam_id,
            self.start_ms,
            self.end_ms,
            self.students,
            self.started,
            self.expected_ready_at_start,
            self.shortfall,
            self.late_planned,
            self.planned_requests,
            self.requesting_starts_ms,
            self.last_late_ready_ms,
            self.shortfall_note,
            self.runs,
        )


def summarize(
    plan: Plan, *, vms: Iterable[tuple[int, int | None, int]], max_points: int = MAX_POINTS
) -> dict[int, ExamSummary]:
    """Per exam of ``plan``: its figures and planned ready timeline.

    ``vms`` are the live ready-or-allocating VMs as ``(vm_id, exam_id,
    ready_ms)``. Same points as ``vms.planner.timeline`` for every exam, in
    one pass over the VMs instead of one per exam.
    """
    stopped = {s.vm_id for s in plan.stops}
    moved = {a.vm_id: a.exam_id for a in plan.assigns}
    ready_by_exam: dict[int, list[int]] = defaultdict(list)
    for vm_id, bound, ready in vms:
        if vm_id in stopped:
            continue
        exam_id = moved.get(vm_id, bound)
        if exam_id is not None:
            ready_by_exam[exam_id].append(ready)
    return {
        ep.exam_id: _exam_summary(ep, plan.now_ms, ready_by_exam.get(ep.exam_id, ()), max_points) for ep in plan.exams
    }


def _exam_summary(ep: ExamPlan, now_ms: int, ready_times, max_points: int) -> ExamSummary:
    return ExamSummary(
        exam_id=ep.exam_id,
        start_ms=ep.start_ms,
        end_ms=ep.end_ms,
        students=ep.students,
        started=ep.started,
        expected_ready_at_start=ep.expected_ready_at_start,
        shortfall=ep.shortfall,
        late_planned=ep.late_planned,
        planned_requests=sum(r.count for r in ep.runs),
        requesting_starts_ms=ep.requesting_starts_ms,
        last_late_ready_ms=ep.last_late_ready_ms,
        shortfall_note=ep.shortfall_note(),
        runs=tuple(
            (r.first_request_ms, r.count, r.interval_ms, r.ready_ms(0), r.ready_ms(r.count - 1), r.late)
            for r in ep.runs
        ),
        timeline=tuple(thin(ready_points(now_ms, ready_times, ep.runs), max_points)),
    )


# --- what readers get (datetimes) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class VmCounts:
    requested: int
    ready: int
    stopped: int
    gone: int


@dataclass(frozen=True, slots=True)
class PlannedRun:
    first_request_at: datetime
    count: int
    spacing_s: float
    first_ready_at: datetime
    last_ready_at: datetime
    late: bool

    @classmethod
    def from_stored(cls, row: list) -> PlannedRun:
        first_request, count, interval, first_ready, last_ready, late = row
        return cls(
            from_ms(first_request), count, interval / 1000, from_ms(first_ready), from_ms(last_ready), bool(late)
        )


@dataclass(frozen=True, slots=True)
class ReadyPoint:
    t: datetime
    ready: int


@dataclass(frozen=True, slots=True)
class PlanTimeline:
    planned: tuple[ReadyPoint, ...] = ()
    actual: tuple[ReadyPoint, ...] = ()


@dataclass(frozen=True, slots=True)
class ExamPlanReport:
    """One exam's VM plan as an operator reads it (API and admin).

    Plan figures come from the scheduler's stored summary (``planned_at``:
    when it computed them; None when it has not planned the exam yet, and
    then they are None or empty and ``plan_note`` says so); VM counts, the
    actual timeline and, once started, what was ready at the start come from
    the VM records. The admin's list builds it without runs and timelines.
    """

    id: int
    name: str
    start: datetime
    end: datetime
    students: int
    started: bool
    ended: bool
    planned_at: datetime | None
    stale: bool
    plan_note: str
    vms: VmCounts
    requesting_starts_at: datetime | None
    expected_ready_at_start: int | None
    shortfall: int | None
    planned_requests: int
    late_planned: int
    last_late_ready_at: datetime | None
    shortfall_note: str
    runs: tuple[PlannedRun, ...] = ()
    timeline: PlanTimeline = PlanTimeline()

    @property
    def at_risk(self) -> bool | None:
        return None if self.shortfall is None else self.shortfall > 0
