"""Writes on the device pool.

Every change that may let a device take work (a registration, a resume, a
device coming back online) sends ``devices.signals.pool_changed``; the jobs
app turns it into a wake-up of the workers once the transaction commits. A
device that disappears while running a job (removed, restarted, silent) never
loses the job: ``devices.signals.device_work_lost`` goes out with the device's
row locked, and the jobs app puts the job back in its original place
(``jobs.claims.jobs_requeue_for_device``) without using up an attempt (a job requeued JOB_MAX_REQUEUES times fails
instead, so none bounces forever). A device that keeps answering "busy" is
drained with the reason recorded (``device_record_busy``), and so is one
whose jobs keep failing (``device_record_failure``: quarantine, kept across
re-registrations and silences until ``resume``).

Ownership: the functions the API calls take the acting user as ``actor``.
A device account may only act on the devices it registered (the rule is
``devices.permissions.may_manage_device``); it is checked here, on the locked
row, so the check and the change are one transaction and a refused call
changes nothing. ``actor=None`` is the scheduler itself or an operator's
internal call (admin actions pass the staff user anyway).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from devices.exceptions import DeviceNotFound, DeviceNotYours
from devices.models import Device, DeviceStatus
from devices.permissions import may_manage_device
from devices.signals import device_work_lost, pool_changed

if TYPE_CHECKING:
    # The project's AUTH_USER_MODEL (Device.owner points at it).
    from django.contrib.auth.models import User

DEVICES_CHANGED = "devices"
# device_update's default: leave the owner as it is.
_KEEP = object()


def _check_actor(device: Device, actor: User | None) -> None:
    if actor is not None and not may_manage_device(actor, device):
        raise DeviceNotYours(device.pk)


def _locked(device_id: str, *, actor: User | None = None) -> Device:
    """The device's row, locked; DeviceNotYours when ``actor`` may not act on it."""
    if "\x00" in device_id:  # cannot exist, and PostgreSQL refuses it in a query
        raise DeviceNotFound(device_id)
    device = Device.objects.select_for_update().filter(pk=device_id).first()
    if device is None:
        raise DeviceNotFound(device_id)
    _check_actor(device, actor)
    return device


def _requeue(device: Device) -> int:
    """Hand the device's lost work back (``device_work_lost``); returns how
    many jobs went back to the queue."""
    replies = device_work_lost.send(sender=Device, device=device)
    # Receivers answer a count (or None); the stubs type every reply as str | None.
    return sum(count for _receiver, count in replies if count)  # type: ignore[misc]


def _pool_changed(topic: str = DEVICES_CHANGED) -> None:
    pool_changed.send(sender=Device, topic=topic)


def device_register(
    *,
    device_id: str,
    address: str,
    type: str,
    size: int,
    actor: User | None = None,
    now: datetime | None = None,
) -> tuple[Device, bool]:
    """Add a device to the pool, or update it when it registers again.

    A device registers again after a restart, so whatever it was running is
    lost on its side: that job is requeued. The device comes back online
    (even if it was draining: a restart is a fresh start). Returns
    ``(device, created)``.

    A new id registered by a non-staff ``actor`` (a device account) belongs
    to it; staff registrations have no owner. Registering an existing id
    again needs ``may_manage_device``; staff doing so keep the owner (an
    operator fixing an address does not take the device from its lab).
    Two accounts racing for one new id: the insert of one wins, the other
    finds the row and is refused.
    """
    now = now or timezone.now()
    owner = actor if actor is not None and not actor.is_staff else None
    with transaction.atomic():
        device, created = Device.objects.select_for_update().get_or_create(
            pk=device_id,
            defaults={
                "address": address,
                "type": type,
                "size": size,
                "status": DeviceStatus.ONLINE,
                "registered_at": now,
                "last_seen_at": now,
                "owner": owner,
            },
        )
        if not created:
            _check_actor(device, actor)
            _requeue(device)
            device.address = address
            device.type = type
            device.size = size
            device.last_seen_at = now
            device.busy_streak = 0  # a restart is a fresh start...
            if is_quarantined(device):  # ...but failing jobs need an operator's resume
                device.status = DeviceStatus.DRAINING
            else:
                device.status, device.status_reason = DeviceStatus.ONLINE, ""
            device.save(
                update_fields=["address", "type", "size", "status", "last_seen_at", "status_reason", "busy_streak"]
            )
        _pool_changed()
    return device, created


def device_update(*, device_id: str, address: str, type: str, size: int, owner=_KEEP) -> Device:
    """Operator edit (admin) of a device's address, type, size or owner.

    Setting the owner hands a device to a device account (e.g. one registered
    by staff before the lab had an account); None leaves it to staff only.
    """
    with transaction.atomic():
        device = _locked(device_id)
        device.address, device.type, device.size = address, type, size
        fields = ["address", "type", "size"]
        if owner is not _KEEP:
            device.owner = owner
            fields.append("owner")
        device.save(update_fields=fields)
        _pool_changed()
    return device


def device_remove(*, device_id: str, actor: User | None = None) -> int:
    """Remove a device from the pool; its running job goes back to the queue.

    Returns how many jobs were requeued (0 or 1).
    """
    with transaction.atomic():
        device = _locked(device_id, actor=actor)
        requeued = _requeue(device)
        device.delete()
    return requeued


def device_heartbeat(*, device_id: str, actor: User | None = None, now: datetime | None = None) -> Device:
    """Record contact; an offline device that speaks again is back online
    (a quarantined one comes back draining: silence does not lift it)."""
    now = now or timezone.now()
    with transaction.atomic():
        device = _locked(device_id, actor=actor)
        device.last_seen_at = now
        fields = ["last_seen_at"]
        if device.status == DeviceStatus.OFFLINE:
            device.status = DeviceStatus.DRAINING if is_quarantined(device) else DeviceStatus.ONLINE
            fields.append("status")
            _pool_changed()
        device.save(update_fields=fields)
    return device


def device_drain(*, device_id: str, actor: User | None = None) -> Device:
    """Let the device finish its current job and take no more.

    The runners only claim work for online devices, so the status alone is
    enough; the running job is left alone.
    """
    with transaction.atomic():
        device = _locked(device_id, actor=actor)
        if device.status != DeviceStatus.DRAINING:
            device.status = DeviceStatus.DRAINING
            device.save(update_fields=["status"])
    return device


def device_resume(*, device_id: str, actor: User | None = None) -> Device:
    """Undo a drain or a quarantine (or bring an offline device back by
    hand): online again, with the scheduler's drain reason and its busy and
    failure counts cleared."""
    with transaction.atomic():
        device = _locked(device_id, actor=actor)
        if (
            device.status != DeviceStatus.ONLINE
            or device.status_reason
            or device.busy_streak
            or device.failure_streak
            or device.failure_last_job is not None
        ):
            device.status, device.status_reason, device.busy_streak = DeviceStatus.ONLINE, "", 0
            device.failure_streak, device.failure_last_job = 0, None
            device.save(update_fields=["status", "status_reason", "busy_streak", "failure_streak", "failure_last_job"])
        _pool_changed()
    return device


def busy_drain_reason(streak: int) -> str:
    return f"drained by the scheduler: answered busy (HTTP 409) {streak} times in a row"


def device_record_busy(*, device_id: str, max_busy: int) -> Device | None:
    """Count a "busy" (HTTP 409) answer. A device that keeps answering busy
    would otherwise take jobs and hand them straight back forever: after
    ``max_busy`` in a row it is drained, with the reason recorded for the
    operator (and shown in the API); ``resume`` clears both. Returns the
    device, or None when it is gone."""
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(pk=device_id).first()
        if device is None:
            return None
        device.busy_streak += 1
        fields = ["busy_streak"]
        if device.busy_streak >= max_busy and device.status == DeviceStatus.ONLINE:
            device.status, device.status_reason = DeviceStatus.DRAINING, busy_drain_reason(device.busy_streak)
            fields += ["status", "status_reason"]
        device.save(update_fields=fields)
    return device


def device_reset_busy_streak(*, device_id: str) -> int:
    """The device answered for real (a result or an error, not "busy"): its
    run of busy answers is over. One conditional UPDATE, nothing when already 0."""
    return Device.objects.filter(pk=device_id, busy_streak__gt=0).update(busy_streak=0)


QUARANTINE_PREFIX = "quarantined: "


def _quarantine_tail(last_error: str) -> str:
    return f" jobs failed in a row (last: {last_error})"


def quarantine_reason(*, failures: int, last_error: str) -> str:
    return f"{QUARANTINE_PREFIX}{failures}{_quarantine_tail(last_error)}"[:500]


def is_quarantined(device: Device) -> bool:
    return device.status_reason.startswith(QUARANTINE_PREFIX)


@dataclass(frozen=True)
class FailureRecord:
    failure_streak: int
    status: str
    status_reason: str
    # This very failure drained the device.
    quarantined_now: bool


def device_record_failure(*, device_id: str, job_id: int, error: str, max_failures: int) -> FailureRecord | None:
    """Count a job that failed on the device (device error, bad result,
    timeout; "busy" has its own count). After ``max_failures`` different
    jobs in a row (0: never) an online device is drained: quarantined, with
    the count and the last error as its reason (shown in the API and the
    admin) until ``resume``. The same job failing here again does not add
    to the count: one bad job alone must not quarantine a good device (it
    uses up its own JOB_MAX_ATTEMPTS instead).

    One conditional UPDATE (every CASE reads the row as it was), like the
    busy count, so concurrent writers never lose a count. Returns the new
    state, or None when the device is gone."""
    streak = "(CASE WHEN failure_last_job = %s THEN failure_streak ELSE failure_streak + 1 END)"
    drain = f"(%s > 0 AND status = 'online' AND {streak} >= %s)"
    # The reason is quarantine_reason() built in SQL around the new count.
    head, tail = QUARANTINE_PREFIX, _quarantine_tail(error)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE devices_device
               SET failure_streak = {streak}, failure_last_job = %s,
                   status = CASE WHEN {drain} THEN 'draining' ELSE status END,
                   status_reason = CASE WHEN {drain}
                                        THEN SUBSTR(%s || CAST({streak} AS VARCHAR(10)) || %s, 1, 500)
                                        ELSE status_reason END
             WHERE id = %s
            RETURNING failure_streak, status, status_reason
            """,
            [
                job_id,
                job_id,
                max_failures,
                job_id,
                max_failures,
                max_failures,
                job_id,
                max_failures,
                head,
                job_id,
                tail,
                device_id,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    reason = quarantine_reason(failures=row[0], last_error=error)
    return FailureRecord(
        failure_streak=row[0],
        status=row[1],
        status_reason=row[2],
        quarantined_now=row[1] == DeviceStatus.DRAINING and row[2] == reason,
    )


def device_reset_failure_streak(*, device_id: str) -> int:
    """A job succeeded on the device: its run of failures is over. One
    conditional UPDATE, nothing when already 0 (a quarantine stays until
    ``resume``: no job reaches a draining device anyway)."""
    return Device.objects.filter(pk=device_id, failure_streak__gt=0).update(failure_streak=0, failure_last_job=None)


def devices_mark_offline_stale(*, now: datetime, timeout_s: float) -> list[str]:
    """Mark offline every device silent for more than ``timeout_s`` seconds
    and requeue the jobs they were running. Returns the ids marked offline.

    The rows are locked while deciding, so a heartbeat that arrives at the
    same moment waits and then brings the device straight back online.

    Only HTTP devices heartbeat. A built-in simulated device lives inside the
    worker driving it: while no worker runs it is not "gone", it just waits
    (and keeps its online/draining state); the job of a dead worker comes back
    through the job lease.
    """
    cutoff = now - timedelta(seconds=timeout_s)
    with transaction.atomic():
        stale = list(
            Device.objects.select_for_update()
            .filter(last_seen_at__lt=cutoff)
            .filter(Q(address__startswith="http://") | Q(address__startswith="https://"))
            .exclude(status=DeviceStatus.OFFLINE)
            .order_by("pk")
        )
        if not stale:
            return []
        Device.objects.filter(pk__in=[d.pk for d in stale]).update(status=DeviceStatus.OFFLINE)
        for device in stale:
            _requeue(device)
    return [d.pk for d in stale]
