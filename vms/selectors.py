"""Reads for the VM scheduler, the API and the admin."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypedDict

from django.conf import settings
from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from exams.models import Exam
from vms.models import ALIVE_STATES, VM, ExamPlanSummary, VMState
from vms.plan_summary import ExamPlanReport, PlannedRun, PlanTimeline, ReadyPoint, VmCounts, iso_ms, thin
from vms.planner import ExamIn, Plan, PlannerConfig, VmIn, from_ms, plan, to_ms, to_ms_floor


def planner_config_from_settings(**overrides) -> PlannerConfig:
    values = {
        "allocation_interval_ms": round(settings.VM_ALLOCATION_INTERVAL_SECONDS * 1000),
        "requests_per_second": int(settings.VM_REQUESTS_PER_SECOND),
        "ready_margin_ms": round(settings.VM_READY_MARGIN_SECONDS * 1000),
        "late_min_useful_ms": round(settings.VM_LATE_MIN_USEFUL_SECONDS * 1000),
        "queue_ahead_ms": round(settings.VM_QUEUE_AHEAD_SECONDS * 1000),
    }
    values.update(overrides)
    return PlannerConfig(**values)


def exams_for_planning(*, now: datetime | None = None) -> list[ExamIn]:
    """Exams the planner needs: every one not yet over, and past ones still
    holding live VMs (their stops are ordered by end). Years of history stay
    out of every pass."""
    qs = Exam.objects.all()
    if now is not None:
        holding = VM.objects.filter(state__in=ALIVE_STATES, exam_id__isnull=False).values("exam_id")
        qs = qs.filter(Q(end__gt=now) | Q(id__in=holding))
    # Starts are deadlines: rounded down to the ms, so no VM is late by
    # rounding; ends round up, so no VM is stopped before the true end.
    return [
        ExamIn(id=pk, start_ms=to_ms_floor(start), end_ms=to_ms(end), students=students)
        for pk, start, end, students in qs.values_list("id", "start", "end", "students")
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
    # the exam it was last bound to, kept when that exam is deleted (call log)
    exam_ref: int | None = None

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
        "id", "uuid", "exam_id", "state", "requested_at", "ready_at", "used_at", "exam_ref"
    )
    out = [
        LiveVM(
            pk,
            uuid,
            exam_id,
            state,
            to_ms(req),
            to_ms(ready) if ready else to_ms(req) + interval_ms,
            used is not None,
            ref,
        )
        for pk, uuid, exam_id, state, req, ready, used, ref in rows
    ]
    if include_lost:
        # A lost start may still be in the provider's queue: plan around it.
        horizon = from_ms(now_ms)
        for pk, exam_id, req, ready in VM.objects.filter(state=VMState.LOST, ready_at__gt=horizon).values_list(
            "id", "exam_id", "requested_at", "ready_at"
        ):
            assert ready is not None  # ready_at__gt excludes NULL
            out.append(LiveVM(pk, None, exam_id, VMState.LOST, to_ms(req), to_ms(ready), True, exam_id))
    return out


def vm_list(*, now: datetime, exam: int | None = None, state: str | None = None) -> QuerySet[VM]:
    """VMs in request order; ``exam`` matches the exam a VM is bound to (or
    was, if that exam was deleted); ``state`` is the state as of ``now``
    (a waiting VM whose ready time has passed is ready)."""
    qs = VM.objects.all()
    if exam is not None:
        qs = qs.filter(Q(exam_id=exam) | Q(exam__isnull=True, exam_ref=exam))
    if state == VMState.READY:
        qs = qs.filter(Q(state=VMState.READY) | Q(state=VMState.WAITING, ready_at__lte=now))
    elif state == VMState.WAITING:
        qs = qs.filter(state=VMState.WAITING, ready_at__gt=now)
    elif state is not None:
        qs = qs.filter(state=state)
    return qs.order_by("requested_at", "id")


class ExamVmCounts(TypedDict, total=False):
    """One exam's row of ``exam_vm_counts`` (``{}``: the exam has no VMs)."""

    requested: int
    ready: int
    stopped: int
    gone: int
    first_requested: datetime | None


def exam_vm_counts(*, exam_ids: list[int] | None = None, now: datetime) -> dict[int | None, ExamVmCounts]:
    """Per exam (``exam_ref``; None for VMs never bound): VMs requested
    (ever), ready now, stopped."""
    qs = VM.objects.exclude(state=VMState.FAILED)
    if exam_ids is not None:
        qs = qs.filter(exam_ref__in=exam_ids)
    rows = qs.values("exam_ref").annotate(
        requested=Count("id"),
        ready=Count("id", filter=Q(state__in=[VMState.WAITING, VMState.READY], ready_at__lte=now)),
        stopped=Count("id", filter=Q(state=VMState.STOPPED)),
        gone=Count("id", filter=Q(state=VMState.GONE)),
        first_requested=Min("requested_at"),
    )
    return {
        r["exam_ref"]: {
            "requested": r["requested"],
            "ready": r["ready"],
            "stopped": r["stopped"],
            "gone": r["gone"],
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
        exams=exams_for_planning(now=now), vms=[v.as_planner_input() for v in vms], now_ms=now_ms, config=config
    )


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_ms(from_ms(ms))


def exam_plan_report(*, exam: Exam, now: datetime) -> ExamPlanReport:
    """Everything an operator needs about one exam's VMs (API and admin
    change page), from the scheduler's stored plan summary and the VM
    records: never runs the planner."""
    row = ExamPlanSummary.objects.filter(exam_id=exam.id).first()
    counts = exam_vm_counts(exam_ids=[exam.id], now=now).get(exam.id, {})
    at_start = ready_at_start_from_records(exam_ids=[exam.id]) if exam.start <= now else {}
    report = _report(
        exam.id,
        exam.name,
        exam.start,
        exam.end,
        exam.students,
        row=row,
        counts=counts,
        at_start=at_start.get(exam.id, 0),
        now=now,
    )
    # Over: nothing is planned for it any more; ``actual`` tells the story.
    planned = () if row is None or report.ended else tuple(ReadyPoint(from_ms(t), n) for t, n in row.timeline)
    actual = tuple(ReadyPoint(from_ms(t), n) for t, n in thin(_actual_timeline(exam_id=exam.id, until=now)))
    runs = () if row is None else tuple(PlannedRun.from_stored(r) for r in row.runs)
    return replace(report, runs=runs, timeline=PlanTimeline(planned=planned, actual=actual))


def exam_plan_reports(*, exam_ids: list[int], now: datetime) -> dict[int, ExamPlanReport]:
    """The admin list's columns for many exams, without runs and timelines:
    one query each for the exams, the stored summaries, the VM counts and
    what was ready at the starts. Never runs the planner."""
    exams = list(Exam.objects.filter(id__in=exam_ids).values_list("id", "name", "start", "end", "students"))
    rows = {r.exam_id: r for r in ExamPlanSummary.objects.filter(exam_id__in=exam_ids).defer("runs", "timeline")}
    counts = exam_vm_counts(exam_ids=exam_ids, now=now)
    # Started exams (running or over): what was ready at the start, from the
    # VM records (the plan forgets exams once over).
    started_ids = [pk for pk, _, start, _, _ in exams if start <= now]
    at_start = ready_at_start_from_records(exam_ids=started_ids) if started_ids else {}
    return {
        pk: _report(
            pk,
            name,
            start,
            end,
            students,
            row=rows.get(pk),
            counts=counts.get(pk, {}),
            at_start=at_start.get(pk, 0),
            now=now,
        )
        for pk, name, start, end, students in exams
    }


def _report(
    pk, name, start, end, students, *, row, counts: ExamVmCounts, at_start: int, now: datetime
) -> ExamPlanReport:
    started, ended = start <= now, end <= now
    requesting = None if row is None else row.requesting_starts_at
    first_requested = counts.get("first_requested")
    if first_requested is not None:
        requesting = first_requested if requesting is None else min(first_requested, requesting)
    expected: int | None
    shortfall: int | None
    if started:
        expected, shortfall = at_start, max(0, students - at_start)
    else:
        expected = None if row is None else row.expected_ready_at_start
        shortfall = None if row is None else row.shortfall
    return ExamPlanReport(
        id=pk,
        name=name,
        start=start,
        end=end,
        students=students,
        started=started,
        ended=ended,
        planned_at=None if row is None else row.planned_at,
        stale=row is not None and not _planned_as_is(row, start=start, end=end, students=students),
        plan_note=_plan_note(row, start=start, end=end, students=students, ended=ended),
        vms=VmCounts(
            counts.get("requested", 0), counts.get("ready", 0), counts.get("stopped", 0), counts.get("gone", 0)
        ),
        requesting_starts_at=requesting,
        expected_ready_at_start=expected,
        shortfall=shortfall,
        planned_requests=0 if row is None else row.planned_requests,
        late_planned=0 if row is None else row.late_planned,
        last_late_ready_at=None if row is None else row.last_late_ready_at,
        shortfall_note=_shortfall_note(row, shortfall=shortfall, started=started, ended=ended),
    )


def _planned_as_is(row, *, start: datetime, end: datetime, students: int) -> bool:
    """Whether the stored figures were planned for the exam as it is now
    (times as the planner rounds them: starts down, ends up, to the ms)."""
    return (to_ms(row.start), to_ms(row.end), row.students) == (to_ms_floor(start), to_ms(end), students)


def _plan_note(row, *, start: datetime, end: datetime, students: int, ended: bool) -> str:
    """Where the plan figures come from and how fresh they are, in words."""
    if ended:
        return "the exam is over: nothing is planned for it any more"
    if row is None:
        return (
            "not planned yet: the VM scheduler has not planned this exam (it plans when it runs and "
            "whenever an exam changes)"
        )
    if not _planned_as_is(row, start=start, end=end, students=students):
        return (
            f"planned by the VM scheduler at {iso_ms(row.planned_at)} for the exam before its last change; "
            "it replans at its next pass"
        )
    return f"as planned by the VM scheduler at {iso_ms(row.planned_at)}"


def exam_plan_brief(*, exam_id: int, now: datetime) -> dict:
    """The plan summary a write answers with (POST /exams, PATCH /exams/<id>):
    how many VMs can be ready at the start, the shortfall, when requesting
    starts, and what late VMs are planned - so a teacher knows at once."""
    plan_ = current_plan(now=now)
    ep = plan_.exam(exam_id)
    if ep is None:  # over, or nothing to plan
        return {
            "expected_ready_at_start": None,
            "shortfall": None,
            "requesting_starts_at": None,
            "late_planned": 0,
            "last_late_ready_at": None,
            "note": "nothing is planned for this exam",
        }
    first = exam_vm_counts(exam_ids=[exam_id], now=now).get(exam_id, {}).get("first_requested")
    requesting = ep.requesting_starts_ms
    if first is not None:
        requesting = to_ms(first) if requesting is None else min(requesting, to_ms(first))
    return {
        "expected_ready_at_start": ep.expected_ready_at_start,
        "shortfall": ep.shortfall,
        "requesting_starts_at": _iso(requesting),
        "late_planned": ep.late_planned,
        "last_late_ready_at": _iso(ep.last_late_ready_ms),
        "note": ep.shortfall_note() or f"all {ep.students} VMs can be ready at the start",
    }


def _shortfall_note(row, *, shortfall: int | None, started: bool, ended: bool) -> str:
    """What is planned about an exam's missing VMs, promising nothing more."""
    if not shortfall or ended:
        return ""
    if not started:
        return row.shortfall_note if row is not None else "nothing is planned for this exam"
    if row is not None and row.late_planned:
        n = row.late_planned
        return f"{n} late VM{'s' if n != 1 else ''} planned, the last ready at {iso_ms(row.last_late_ready_at)}"
    return "no further late VM is planned"


def ready_at_start_from_records(*, exam_ids: list[int]) -> dict[int, int]:
    """Per started exam: VMs that were ready at its start (ready by then and
    not stopped before it), from the VM records, in one query. Counts VMs
    bound to the exam, or last bound to it and since unbound."""
    starts = Exam.objects.filter(pk=OuterRef("key")).values("start")[:1]
    rows = (
        VM.objects.filter(Q(exam_id__in=exam_ids) | Q(exam__isnull=True, exam_ref__in=exam_ids))
        .filter(state__in=[VMState.WAITING, VMState.READY, VMState.STOPPING, VMState.STOPPED], ready_at__isnull=False)
        .annotate(key=Coalesce("exam_id", "exam_ref"))
        .annotate(exam_start=Subquery(starts))
        .filter(ready_at__lte=F("exam_start"))
        .filter(Q(stopped_at__isnull=True) | Q(stopped_at__gt=F("exam_start")))
        .values("key")
        .annotate(n=Count("id"))
        .values_list("key", "n")
    )
    return dict(rows)


def _actual_timeline(*, exam_id: int, until: datetime) -> list[tuple[int, int]]:
    """Ready VMs of the exam over time so far, from the VM records."""
    events: list[tuple[int, int]] = []
    rows = VM.objects.filter(
        Q(exam_id=exam_id) | Q(exam__isnull=True, exam_ref=exam_id), ready_at__lte=until
    ).values_list("ready_at", "stopped_at", "state")
    until_ms = to_ms(until)
    for ready, stopped, state in rows:
        if state in (VMState.FAILED, VMState.LOST, VMState.REQUESTING, VMState.GONE):
            continue  # never (known to be) ready; a gone VM's provider disowned it
        assert ready is not None  # ready_at__lte excludes NULL
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


def exam_changes_preview(*, changes: list, now: datetime, config: PlannerConfig | None = None) -> list[dict]:
    """What the changes would do to every exam's VMs, saving nothing: the
    pure planner before and after (``vms.preview``). Exams a change names
    that the planner would not load (over, without VMs) are added as they are."""
    from vms.preview import exam_changes_impact

    config = config or planner_config_from_settings()
    now_ms = to_ms(now)
    exams = {e.id: e for e in exams_for_planning(now=now)}
    named = {c.exam_id for c in changes if c.action != "create" and c.exam_id not in exams}
    for pk, start, end, students in Exam.objects.filter(id__in=named).values_list("id", "start", "end", "students"):
        exams[pk] = ExamIn(id=pk, start_ms=to_ms_floor(start), end_ms=to_ms(end), students=students)
    vms = [v.as_planner_input() for v in vms_alive(now_ms=now_ms, interval_ms=config.allocation_interval_ms)]
    return exam_changes_impact(exams=list(exams.values()), vms=vms, now_ms=now_ms, config=config, changes=changes)


@dataclass(frozen=True, slots=True)
class PredictedShortfall:
    exam_id: int
    name: str
    shortfall: int
    planned_at: datetime


def exams_predicted_shortfall(*, now: datetime) -> list[PredictedShortfall]:
    """Students the scheduler's latest stored plan leaves without a VM at the
    start, for every exam not yet started that it has planned (``/metrics``).
    One query; never runs the planner (an exam the scheduler has not planned
    yet has no figure)."""
    rows = (
        ExamPlanSummary.objects.filter(exam_id__in=Exam.objects.filter(start__gt=now).values("id"))
        .annotate(name=Subquery(Exam.objects.filter(id=OuterRef("exam_id")).values("name")[:1]))
        .values_list("exam_id", "name", "shortfall", "planned_at")
        .order_by("exam_id")
    )
    return [PredictedShortfall(pk, name or "", shortfall, planned_at) for pk, name, shortfall, planned_at in rows]
