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
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef

from vms.models import VM, CallEndpoint, CallOutcome, ProviderCall, VMState

logger = logging.getLogger(__name__)


def vm_start_intent(*, exam_id: int, now: datetime, expected_ready_at: datetime, used: bool) -> int:
    """Record that a start is about to be called; returns the VM row id."""
    vm = VM.objects.create(
        exam_id=exam_id,
        exam_ref=exam_id,
        state=VMState.REQUESTING,
        requested_at=now,
        ready_at=expected_ready_at,
        used_at=now if used else None,
    )
    return vm.id


def vm_start_succeeded(*, vm_id: int, exam_id: int, uuid: str, t: datetime) -> None:
    ProviderCall.objects.create(
        t=t, endpoint=CallEndpoint.START, vm_id=vm_id, vm_uuid=uuid, exam_ref=exam_id, outcome=CallOutcome.OK
    )
    VM.objects.filter(pk=vm_id).update(uuid=uuid, state=VMState.WAITING)


def vm_start_failed(*, vm_id: int, exam_id: int, t: datetime, outcome: str, error: str, may_exist: bool) -> None:
    """The start call raised. Refused (rate limit, definite error): no VM.
    Ambiguous (timeout after sending): the provider may hold a VM we cannot
    name: ``lost``, surfaced to operators."""
    ProviderCall.objects.create(
        t=t, endpoint=CallEndpoint.START, vm_id=vm_id, exam_ref=exam_id, outcome=outcome, error=error[:2000]
    )
    VM.objects.filter(pk=vm_id).update(state=VMState.LOST if may_exist else VMState.FAILED, error=error[:2000])
    if may_exist:
        logger.warning("start for exam %s may have created a VM we cannot name (lost): %s", exam_id, error)


def vms_mark_stopping(*, vm_ids: list[int], now: datetime) -> None:
    VM.objects.filter(pk__in=vm_ids).exclude(state=VMState.STOPPING).update(
        state=VMState.STOPPING, stop_requested_at=now
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


def vms_record_stop_calls(*, calls: list[StopCall]) -> None:
    if not calls:
        return
    ProviderCall.objects.bulk_create(
        [
            ProviderCall(
                t=c.t, endpoint=CallEndpoint.STOP, vm_id=c.vm_id, vm_uuid=c.uuid, exam_ref=c.exam_id,
                outcome=c.outcome, error=c.error[:2000],
            )
            for c in calls
        ]
    )
    by_time: dict[datetime, list[int]] = {}
    for c in calls:
        if c.gone:
            by_time.setdefault(c.t, []).append(c.vm_id)
    # one statement per instant: the calls of a batch share it in the simulation
    for t, ids in by_time.items():
        VM.objects.filter(pk__in=ids).update(state=VMState.STOPPED, stopped_at=t)


def vm_assign(*, vm_id: int, uuid: str | None, exam_id: int, t: datetime) -> None:
    """Re-bind a fresh (never used) VM to another exam; logged as an ``assign``."""
    VM.objects.filter(pk=vm_id, used_at__isnull=True).update(exam_id=exam_id, exam_ref=exam_id)
    ProviderCall.objects.create(
        t=t, endpoint=CallEndpoint.ASSIGN, vm_id=vm_id, vm_uuid=uuid, exam_ref=exam_id, outcome=CallOutcome.OK
    )


def vms_mark_used(*, exam_ids: list[int], now: datetime) -> int:
    """The exams started: their VMs may be in use and are never re-bound."""
    return VM.objects.filter(exam_id__in=exam_ids, used_at__isnull=True, state__in=[
        VMState.REQUESTING, VMState.WAITING, VMState.READY,
    ]).update(used_at=now)


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
            uuid = ProviderCall.objects.filter(vm_id=vm.id, endpoint=CallEndpoint.START, outcome=CallOutcome.OK).values_list(
                "vm_uuid", flat=True
            ).first()
            VM.objects.filter(pk=vm.id).update(uuid=uuid, state=VMState.WAITING)
            restored += 1
        else:
            VM.objects.filter(pk=vm.id).update(
                state=VMState.LOST,
                error="start outcome unknown: the scheduler stopped between recording the intent and the answer",
            )
            logger.warning(
                "VM row %s (exam %s, requested %s): start outcome unknown, marked lost", vm.id, vm.exam_ref, vm.requested_at
            )
    lost = VM.objects.filter(state=VMState.LOST).count()
    pending = VM.objects.filter(state=VMState.STOPPING).count()
    return Recovery(restored=restored, lost=lost, pending_stops=pending)
