"""Writes of the VM scheduler: every provider call is recorded around the call.

The order of writes is what makes a crash at any moment safe:

* start: ``vm_start_intent`` inserts the VM row (``requesting``) *before*
  ``start()``; ``vm_start_succeeded`` then writes the call-log row carrying
  the provider's uuid (one INSERT: from that moment a restart knows the VM) and
  marks the VM ``waiting``. A restart that finds a ``requesting`` row whose
  start call was logged restores it; one without a logged call is the single
  call that was in flight: it is marked ``lost`` and counted
  (``vms_recover``). The scheduler makes one start call at a time, so at most
  one VM can ever be lost per crash.
* stop: ``vms_mark_stopping`` before ``stop()``, ``vms_record_stop_calls``
  after. A restart re-issues pending stops; stopping a stopped VM is harmless.

The hot paths (tens of thousands of calls in a simulation) issue single
statements and no savepoints.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Case, Exists, F, OuterRef, Value, When

from vms.models import VM, CallEndpoint, CallOutcome, ExamPlanSummary, ProviderCall, VMState
from vms.plan_summary import ExamSummary
from vms.planner import from_ms

logger = logging.getLogger(__name__)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _dt(value: datetime | None):
    return connection.ops.adapt_datetimefield_value(value)


def vm_start_intent(*, exam_id: int, now: datetime, expected_ready_at: datetime, used: bool) -> int:
    """Record that a start is about to be called; returns the VM row id."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_table(VM)} (uuid, exam_id, exam_ref, state, requested_at, ready_at, used_at,"
            " stop_requested_at, stopped_at, error) VALUES (NULL, %s, %s, %s, %s, %s, %s, NULL, NULL, '') RETURNING id",
            [exam_id, exam_id, VMState.REQUESTING, _dt(now), _dt(expected_ready_at), _dt(now) if used else None],
        )
        return cursor.fetchone()[0]


_CALL_COLUMNS = "(t, endpoint, vm_id, vm_uuid, exam_ref, outcome, error)"


def vm_start_succeeded(*, vm_id: int, exam_id: int, uuid: str, t: datetime) -> None:
    """Log the call (with the uuid: from here a restart knows the VM), then
    mark the VM waiting. On PostgreSQL both in one statement."""
    call = [_dt(t), CallEndpoint.START, vm_id, uuid, exam_id, CallOutcome.OK, ""]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH logged AS (INSERT INTO {_table(ProviderCall)} {_CALL_COLUMNS} VALUES (%s, %s, %s, %s, %s, %s, %s))"
                f" UPDATE {_table(VM)} SET uuid = %s, state = %s WHERE id = %s",
                [*call, uuid, VMState.WAITING, vm_id],
            )
        else:
            cursor.execute(
                f"INSERT INTO {_table(ProviderCall)} {_CALL_COLUMNS} VALUES (%s, %s, %s, %s, %s, %s, %s)", call
            )
            cursor.execute(
                f"UPDATE {_table(VM)} SET uuid = %s, state = %s WHERE id = %s", [uuid, VMState.WAITING, vm_id]
            )


def vm_start_failed(*, vm_id: int, exam_id: int, t: datetime, outcome: str, error: str, may_exist: bool) -> None:
    """The start call raised. Refused (rate limit, definite error): no VM.
    Ambiguous (timeout after sending): the provider may hold a VM we cannot
    name: ``lost``, surfaced to operators."""
    ProviderCall.objects.create(
        t=t, endpoint=CallEndpoint.START, vm_id=vm_id, exam_ref=exam_id, outcome=outcome, error=error[:2000]
    )
    VM.objects.filter(pk=vm_id).update(state=VMState.LOST if may_exist else VMState.FAILED, error=error[:2000])
    if may_exist:
        logger.warning(
            "start of VM %s for exam %s may have created a VM we cannot name (lost): %s",
            vm_id,
            exam_id,
            error,
            extra={"event": "vm_lost", "vm": vm_id, "exam": exam_id},
        )


def vms_mark_stopping(*, vm_ids: list[int], now: datetime) -> None:
    if not vm_ids:
        return
    marks = ", ".join(["%s"] * len(vm_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(VM)} SET state = %s, stop_requested_at = %s WHERE id IN ({marks})",
            [VMState.STOPPING, _dt(now), *vm_ids],
        )


@dataclass(frozen=True, slots=True)
class StopCall:
    vm_id: int
    uuid: str
    exam_id: int | None
    t: datetime
    outcome: str
    error: str = ""
    # True when the VM is certainly gone (stopped now, or unknown to the provider).
    gone: bool = False
    # The provider answered 404: it does not know the VM (stored as ``gone``,
    # which never counts as ready, not as an ordinary stop).
    unknown: bool = False


def vms_record_stop_calls(*, calls: list[StopCall]) -> None:
    """Log a batch of stop calls and mark the VMs that are gone stopped
    (on PostgreSQL one statement for a batch whose calls share an instant)."""
    if not calls:
        return
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(calls))
    params: list = []
    for c in calls:
        params += [_dt(c.t), CallEndpoint.STOP, c.vm_id, c.uuid, c.exam_id, c.outcome, c.error[:2000]]
    by_time: dict[tuple[datetime, str], list[int]] = {}
    for c in calls:
        if c.gone:
            by_time.setdefault((c.t, VMState.GONE if c.unknown else VMState.STOPPED), []).append(c.vm_id)
    updates = list(by_time.items())
    insert = f"INSERT INTO {_table(ProviderCall)} {_CALL_COLUMNS} VALUES {rows}"

    def update_sql(ids):
        return f"UPDATE {_table(VM)} SET state = %s, stopped_at = %s WHERE id IN ({', '.join(['%s'] * len(ids))})"

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(updates) == 1:
            (t, state), ids = updates[0]
            cursor.execute(f"WITH logged AS ({insert}) {update_sql(ids)}", [*params, state, _dt(t), *ids])
            return
        cursor.execute(insert, params)
        for (t, state), ids in updates:
            cursor.execute(update_sql(ids), [state, _dt(t), *ids])


def vm_assign(*, vm_id: int, uuid: str | None, exam_id: int, t: datetime) -> None:
    """Re-bind a fresh (never used) VM to another exam; logged as an ``assign``."""
    VM.objects.filter(pk=vm_id, used_at__isnull=True).update(exam_id=exam_id, exam_ref=exam_id)
    ProviderCall.objects.create(
        t=t, endpoint=CallEndpoint.ASSIGN, vm_id=vm_id, vm_uuid=uuid, exam_ref=exam_id, outcome=CallOutcome.OK
    )


def vms_mark_used(*, exam_ids: list[int], now: datetime) -> int:
    """The exams started: their VMs may be in use and are never re-bound.
    Those whose allocation has finished are stored as ready on the way."""
    return VM.objects.filter(
        exam_id__in=exam_ids, used_at__isnull=True, state__in=[VMState.REQUESTING, VMState.WAITING, VMState.READY]
    ).update(
        used_at=now,
        state=Case(When(state=VMState.WAITING, ready_at__lte=now, then=Value(VMState.READY)), default=F("state")),
    )


def vms_promote_ready(*, now: datetime) -> int:
    """Waiting VMs whose allocation has finished (by the FIFO model) are ready."""
    return VM.objects.filter(state=VMState.WAITING, ready_at__lte=now).update(state=VMState.READY)


def vms_set_expected_ready(*, ready_at: dict[int, datetime]) -> None:
    """A stop moved VMs up the provider's queue: store their new expected times."""
    for vm_id, t in ready_at.items():
        VM.objects.filter(pk=vm_id).update(ready_at=t)


@dataclass(frozen=True, slots=True)
class Recovery:
    restored: int
    lost: int
    pending_stops: int


def vms_recover(*, now: datetime) -> Recovery:
    """Run by a scheduler before its first action (holding the scheduler lock,
    so no other scheduler has a call in flight)."""
    logged_start = ProviderCall.objects.filter(
        vm_id=OuterRef("pk"), endpoint=CallEndpoint.START, outcome=CallOutcome.OK
    )
    restored = 0
    for vm in VM.objects.filter(state=VMState.REQUESTING).annotate(logged=Exists(logged_start)):
        if vm.logged:
            # crashed after logging the call but before updating the row
            uuid = (
                ProviderCall.objects.filter(vm_id=vm.id, endpoint=CallEndpoint.START, outcome=CallOutcome.OK)
                .values_list("vm_uuid", flat=True)
                .first()
            )
            VM.objects.filter(pk=vm.id).update(uuid=uuid, state=VMState.WAITING)
            restored += 1
        else:
            VM.objects.filter(pk=vm.id).update(
                state=VMState.LOST,
                error="start outcome unknown: the scheduler stopped between recording the intent and the answer",
            )
            logger.warning(
                "VM row %s (exam %s, requested %s): start outcome unknown, marked lost",
                vm.id,
                vm.exam_ref,
                vm.requested_at,
                extra={"event": "vm_lost", "vm": vm.id, "exam": vm.exam_ref},
            )
    lost = VM.objects.filter(state=VMState.LOST).count()
    pending = VM.objects.filter(state=VMState.STOPPING).count()
    return Recovery(restored=restored, lost=lost, pending_stops=pending)


def exam_plan_summaries_store(
    *, summaries: list[ExamSummary], planned_at: datetime, drop: Sequence[int] = (), keep_only: list[int] | None = None
) -> None:
    """Store the scheduler's plan summary: upsert ``summaries`` (exams whose
    figures changed), delete the rows of exams ``drop`` (no longer planned)
    and, with ``keep_only``, every row of an exam not in it (a scheduler that
    has just taken the lock does not know what its predecessor wrote)."""
    if keep_only is not None:
        ExamPlanSummary.objects.exclude(exam_id__in=keep_only).delete()
    elif drop:
        ExamPlanSummary.objects.filter(exam_id__in=drop).delete()
    if not summaries:
        return
    rows = [_summary_row(s, planned_at) for s in summaries]
    fields = [f.name for f in ExamPlanSummary._meta.concrete_fields if not f.primary_key]
    ExamPlanSummary.objects.bulk_create(rows, update_conflicts=True, unique_fields=["exam_id"], update_fields=fields)


def _summary_row(s: ExamSummary, planned_at: datetime) -> ExamPlanSummary:
    return ExamPlanSummary(
        exam_id=s.exam_id,
        planned_at=planned_at,
        start=from_ms(s.start_ms),
        end=from_ms(s.end_ms),
        students=s.students,
        started=s.started,
        expected_ready_at_start=s.expected_ready_at_start,
        shortfall=s.shortfall,
        late_planned=s.late_planned,
        planned_requests=s.planned_requests,
        requesting_starts_at=None if s.requesting_starts_ms is None else from_ms(s.requesting_starts_ms),
        last_late_ready_at=None if s.last_late_ready_ms is None else from_ms(s.last_late_ready_ms),
        shortfall_note=s.shortfall_note,
        runs=[list(r) for r in s.runs],
        timeline=[list(p) for p in s.timeline],
    )
