"""Reads for the VM scheduler, the API and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from exams.models import Exam
from vms.models import ALIVE_STATES, VM, ProviderCall, VMState
from vms.planner import ExamIn, Plan, PlannerConfig, VmIn, from_ms, plan, timeline, to_ms, to_ms_floor


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
            pk, uuid, exam_id, state, to_ms(req), to_ms(ready) if ready else to_ms(req) + interval_ms, used is not None, ref
        )
        for pk, uuid, exam_id, state, req, ready, used, ref in rows
    ]
    if include_lost:
        # A lost start may still be in the provider's queue: plan around it.
        horizon = from_ms(now_ms)
        for pk, exam_id, req, ready in VM.objects.filter(state=VMState.LOST, ready_at__gt=horizon).values_list(
            "id", "exam_id", "requested_at", "ready_at"
        ):
            out.append(LiveVM(pk, None, exam_id, VMState.LOST, to_ms(req), to_ms(ready), True, exam_id))
    return out


def lost_vm_count() -> int:
    return VM.objects.filter(state=VMState.LOST).count()


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


def exam_vm_counts(*, exam_ids: list[int] | None = None, now: datetime) -> dict[int, dict[str, int]]:
    """Per exam: VMs requested (ever), ready now, stopped."""
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
    return None if ms is None else from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def exam_plan_summary(*, exam: Exam, now: datetime, plan_: Plan | None = None, max_points: int = 200) -> dict:
    """Everything an operator needs about one exam's VMs (API and admin)."""
    config = planner_config_from_settings()
    if plan_ is None:
        plan_ = current_plan(now=now, config=config)
    ep = plan_.exam(exam.id)
    counts = exam_vm_counts(exam_ids=[exam.id], now=now).get(exam.id, {})
    start_ms, end_ms = to_ms_floor(exam.start), to_ms(exam.end)
    if end_ms <= to_ms(now):
        # Over: nothing is planned for it any more (and past plans are not
        # kept), so the planned timeline is empty; ``actual`` tells the story.
        planned = []
    else:
        alive = VM.objects.filter(state__in=[VMState.WAITING, VMState.READY], ready_at__isnull=False).values_list(
            "id", "exam_id", "ready_at"
        )
        planned = timeline(plan_, exam.id, vms=[(pk, exam_id, to_ms(ready)) for pk, exam_id, ready in alive])
    actual = _actual_timeline(exam_id=exam.id, until=now)
    first_requested = counts.get("first_requested")
    requesting_starts = ep.requesting_starts_ms if ep else None
    if first_requested is not None:
        fr = to_ms(first_requested)
        requesting_starts = fr if requesting_starts is None else min(fr, requesting_starts)
    started = start_ms <= to_ms(now)
    ready_at_start = ep.expected_ready_at_start if ep else 0
    if started:
        ready_at_start = ready_at_start_from_records(exam_ids=[exam.id]).get(exam.id, 0)
    shortfall = max(0, exam.students - ready_at_start)
    return {
        **_late_fields(ep, shortfall=shortfall, started=started, ended=end_ms <= to_ms(now)),
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
            "gone": counts.get("gone", 0),
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


def exam_plan_brief(*, exam_id: int, now: datetime) -> dict:
    """The plan summary a write answers with (POST /exams, PATCH /exams/<id>):
    how many VMs can be ready at the start, the shortfall, when requesting
    starts, and what late VMs are planned - so a teacher knows at once."""
    plan_ = current_plan(now=now)
    ep = plan_.exam(exam_id)
    if ep is None:  # over, or nothing to plan
        return {"expected_ready_at_start": None, "shortfall": None, "requesting_starts_at": None,
                "late_planned": 0, "last_late_ready_at": None, "note": "nothing is planned for this exam"}
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


def _late_fields(ep, *, shortfall: int, started: bool, ended: bool) -> dict:
    """What is planned about an exam's missing VMs, promising nothing more."""
    last = _iso(ep.last_late_ready_ms) if ep is not None else None
    if not shortfall or ended:
        note = ""
    elif not started:
        note = ep.shortfall_note() if ep is not None else "nothing is planned for this exam"
    elif ep is not None and ep.late_planned:
        note = f"{ep.late_planned} late VM{'s' if ep.late_planned != 1 else ''} planned, the last ready at {last}"
    else:
        note = "no further late VM is planned"
    return {"last_late_ready_at": last, "shortfall_note": note}


def exams_overview(*, exam_ids: list[int], now: datetime, plan_: Plan | None = None) -> dict[int, dict]:
    """The admin list's columns for many exams: one plan, one aggregate."""
    if plan_ is None:
        plan_ = current_plan(now=now)
    counts = exam_vm_counts(exam_ids=exam_ids, now=now)
    exams = {pk: (start, end, students) for pk, start, end, students in
             Exam.objects.filter(id__in=exam_ids).values_list("id", "start", "end", "students")}
    # Started exams (running or over): what was ready at the start, from the
    # VM records, as on the change page (the plan forgets exams once over).
    started_ids = [pk for pk, (start, _, _) in exams.items() if start <= now]
    at_start = ready_at_start_from_records(exam_ids=started_ids) if started_ids else {}
    out = {}
    for exam_id in exam_ids:
        ep = plan_.exam(exam_id)
        c = counts.get(exam_id, {})
        requesting = ep.requesting_starts_ms if ep else None
        if c.get("first_requested") is not None:
            fr = to_ms(c["first_requested"])
            requesting = fr if requesting is None else min(requesting, fr)
        expected = ep.expected_ready_at_start if ep else None
        shortfall = ep.shortfall if ep else None
        started = ep.started if ep else None
        ended = None
        if exam_id in exams:
            start, end, students = exams[exam_id]
            started, ended = start <= now, end <= now
            if started:
                expected = at_start.get(exam_id, 0)
                shortfall = max(0, students - expected)
        out[exam_id] = {
            "requested": c.get("requested", 0),
            "ready": c.get("ready", 0),
            "stopped": c.get("stopped", 0),
            "requesting_starts_at": None if requesting is None else from_ms(requesting),
            "expected_ready_at_start": expected,
            "shortfall": shortfall,
            "started": started,
            "ended": ended,
        }
    return out


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
    rows = VM.objects.filter(Q(exam_id=exam_id) | Q(exam__isnull=True, exam_ref=exam_id), ready_at__lte=until).values_list(
        "ready_at", "stopped_at", "state"
    )
    until_ms = to_ms(until)
    for ready, stopped, state in rows:
        if state in (VMState.FAILED, VMState.LOST, VMState.REQUESTING, VMState.GONE):
            continue  # never (known to be) ready; a gone VM's provider disowned it
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
