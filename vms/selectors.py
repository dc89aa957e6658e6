"""Reads for the VM scheduler, the API and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet

from exams.models import Exam
from vms.models import ALIVE_STATES, VM, ProviderCall, VMState
from vms.planner import ExamIn, Plan, PlannerConfig, VmIn, from_ms, plan, timeline, to_ms


def planner_config_from_settings(**overrides) -> PlannerConfig:
    values = {
        "allocation_interval_ms": round(settings.VM_ALLOCATION_INTERVAL_SECONDS * 1000),
        "requests_per_second": int(settings.VM_REQUESTS_PER_SECOND),
        "ready_margin_ms": round(settings.VM_READY_MARGIN_SECONDS * 1000),
    }
    values.update(overrides)
    return PlannerConfig(**values)


def exams_for_planning() -> list[ExamIn]:
    return [
        ExamIn(id=pk, start_ms=to_ms(start), end_ms=to_ms(end), students=students)
        for pk, start, end, students in Exam.objects.values_list("id", "start", "end", "students")
    ]


def exams_fingerprint() -> tuple:
    """Changes whenever an exam is created, deleted or saved through the ORM:
    the loop compares it between passes to catch writes that sent no signal."""
    row = Exam.objects.aggregate(n=Count("id"), latest=Max("updated_at"), ids=Max("id"))
    return (row["n"], row["latest"], row["ids"])


@dataclass(slots=True)
class LiveVM:
    """A live VM as the scheduler holds it in memory between passes."""

    id: int
    uuid: str | None
    exam_id: int | None
    state: str
    requested_ms: int
    ready_ms: int
    used: bool

    def as_planner_input(self) -> VmIn:
        return VmIn(
            id=self.id,
            exam_id=self.exam_id,
            requested_ms=self.requested_ms,
            ready_ms=self.ready_ms,
            used=self.used,
            stopping=self.state == VMState.STOPPING,
            unknown=self.state in (VMState.REQUESTING, VMState.LOST),
        )


def vms_alive(*, now_ms: int, interval_ms: int, include_lost: bool = True) -> list[LiveVM]:
    """VMs the provider holds or may hold. Lost ones only while they could
    still occupy the allocator (they are planned around, never acted on)."""
    states = list(ALIVE_STATES)
    rows = VM.objects.filter(state__in=states).values_list(
        "id", "uuid", "exam_id", "state", "requested_at", "ready_at", "used_at"
    )
    out = [
        LiveVM(pk, uuid, exam_id, state, to_ms(req), to_ms(ready) if ready else to_ms(req) + interval_ms, used is not None)
        for pk, uuid, exam_id, state, req, ready, used in rows
    ]
    if include_lost:
        # A lost start may still be in the provider's queue: plan around it.
        horizon = from_ms(now_ms)
        for pk, exam_id, req, ready in VM.objects.filter(state=VMState.LOST, ready_at__gt=horizon).values_list(
            "id", "exam_id", "requested_at", "ready_at"
        ):
            out.append(LiveVM(pk, None, exam_id, VMState.LOST, to_ms(req), to_ms(ready), True))
    return out


def lost_vm_count() -> int:
    return VM.objects.filter(state=VMState.LOST).count()


def vm_list(*, exam_id: int | None = None, state: str | None = None) -> QuerySet[VM]:
    qs = VM.objects.all()
    if exam_id is not None:
        qs = qs.filter(Q(exam_id=exam_id) | Q(exam__isnull=True, exam_ref=exam_id))
    if state is not None:
        qs = qs.filter(state=state)
    return qs.order_by("requested_at", "id")


def exam_vm_counts(*, exam_ids: list[int] | None = None, now: datetime) -> dict[int, dict[str, int]]:
    """Per exam: VMs requested (ever), ready now, stopped."""
    qs = VM.objects.exclude(state=VMState.FAILED)
    if exam_ids is not None:
        qs = qs.filter(exam_ref__in=exam_ids)
    rows = qs.values("exam_ref").annotate(
        requested=Count("id"),
        ready=Count("id", filter=Q(state__in=[VMState.WAITING, VMState.READY], ready_at__lte=now)),
        stopped=Count("id", filter=Q(state=VMState.STOPPED)),
        first_requested=Min("requested_at"),
    )
    return {
        r["exam_ref"]: {
            "requested": r["requested"],
            "ready": r["ready"],
            "stopped": r["stopped"],
            "first_requested": r["first_requested"],
        }
        for r in rows
    }


def current_plan(*, now: datetime, config: PlannerConfig | None = None) -> Plan:
    """The plan the scheduler would make now, from what the database says."""
    config = config or planner_config_from_settings()
    now_ms = to_ms(now)
    vms = vms_alive(now_ms=now_ms, interval_ms=config.allocation_interval_ms)
    return plan(
        exams=exams_for_planning(), vms=[v.as_planner_input() for v in vms], now_ms=now_ms, config=config
    )


def _iso(ms: int | None) -> str | None:
    return None if ms is None else from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def exam_plan_summary(*, exam: Exam, now: datetime, plan_: Plan | None = None, max_points: int = 200) -> dict:
    """Everything an operator needs about one exam's VMs (API and admin)."""
    config = planner_config_from_settings()
    if plan_ is None:
        plan_ = current_plan(now=now, config=config)
    ep = plan_.exam(exam.id)
    counts = exam_vm_counts(exam_ids=[exam.id], now=now).get(exam.id, {})
    start_ms, end_ms = to_ms(exam.start), to_ms(exam.end)
    alive = list(
        VM.objects.filter(exam_id=exam.id, state__in=[VMState.WAITING, VMState.READY]).values_list("ready_at", flat=True)
    )
    planned = timeline(plan_, exam.id, ready_ms_of_vms=[to_ms(r) for r in alive if r is not None])
    actual = _actual_timeline(exam_id=exam.id, until=now)
    first_requested = counts.get("first_requested")
    requesting_starts = ep.requesting_starts_ms if ep else None
    if first_requested is not None:
        fr = to_ms(first_requested)
        requesting_starts = fr if requesting_starts is None else min(fr, requesting_starts)
    started = start_ms <= to_ms(now)
    ready_at_start = ep.expected_ready_at_start if ep else 0
    if started:
        ready_at_start = VM.objects.filter(
            Q(exam_id=exam.id) | Q(exam__isnull=True, exam_ref=exam.id),
            ready_at__lte=exam.start,
            state__in=[VMState.WAITING, VMState.READY, VMState.STOPPING, VMState.STOPPED],
        ).filter(Q(stopped_at__isnull=True) | Q(stopped_at__gt=exam.start)).count()
    shortfall = max(0, exam.students - ready_at_start)
    return {
        "id": exam.id,
        "name": exam.name,
        "start": _iso(start_ms),
        "end": _iso(end_ms),
        "students": exam.students,
        "started": started,
        "vms": {
            "requested": counts.get("requested", 0),
            "ready": counts.get("ready", 0),
            "stopped": counts.get("stopped", 0),
        },
        "requesting_starts_at": _iso(requesting_starts),
        "expected_ready_at_start": ready_at_start,
        "shortfall": shortfall,
        "at_risk": shortfall > 0,
        "planned_requests": sum(r.count for r in ep.runs) if ep else 0,
        "late_planned": ep.late_planned if ep else 0,
        "runs": [
            {
                "first_request_at": _iso(r.first_request_ms),
                "count": r.count,
                "spacing_s": r.interval_ms / 1000,
                "first_ready_at": _iso(r.ready_ms(0)),
                "last_ready_at": _iso(r.ready_ms(r.count - 1)),
                "late": r.late,
            }
            for r in (ep.runs if ep else ())
        ],
        "timeline": {
            "planned": [{"t": _iso(t), "ready": n} for t, n in _thin(planned, max_points)],
            "actual": [{"t": _iso(t), "ready": n} for t, n in _thin(actual, max_points)],
        },
    }


def _actual_timeline(*, exam_id: int, until: datetime) -> list[tuple[int, int]]:
    """Ready VMs of the exam over time so far, from the VM records."""
    events: list[tuple[int, int]] = []
    rows = VM.objects.filter(Q(exam_id=exam_id) | Q(exam__isnull=True, exam_ref=exam_id), ready_at__lte=until).values_list(
        "ready_at", "stopped_at", "state"
    )
    until_ms = to_ms(until)
    for ready, stopped, state in rows:
        if state in (VMState.FAILED, VMState.LOST, VMState.REQUESTING):
            continue
        r = to_ms(ready)
        if stopped is not None and to_ms(stopped) <= r:
            continue  # stopped before it was ever ready
        events.append((r, 1))
        if stopped is not None and to_ms(stopped) <= until_ms:
            events.append((to_ms(stopped), -1))
    events.sort()
    points: list[tuple[int, int]] = []
    count = 0
    for t, delta in events:
        count += delta
        if points and points[-1][0] == t:
            points[-1] = (t, count)
        else:
            points.append((t, count))
    return points


def _thin(points: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """At most ``limit`` points, always keeping the first and the last."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def calls_in_order() -> QuerySet[ProviderCall]:
    return ProviderCall.objects.order_by("t", "id")
