from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class DeviceStatus(models.TextChoices):
    ONLINE = "online", "online"
    # Never stored: an online device with a running job is shown as busy.
    BUSY = "busy", "busy"
    DRAINING = "draining", "draining"
    OFFLINE = "offline", "offline"


class Device(models.Model):
    """A QPU in the pool. Devices register themselves; ids are theirs."""

    id = models.CharField(primary_key=True, max_length=100)
    address = models.CharField(max_length=500, blank=True, default="")
    type = models.CharField(max_length=100, db_index=True)
    size = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="Number of qubits.")
    status = models.CharField(
        max_length=16,
        choices=[c for c in DeviceStatus.choices if c[0] != DeviceStatus.BUSY],
        default=DeviceStatus.ONLINE,
        db_index=True,
    )
    registered_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    # Which worker process drives this device, and until when its claim holds.
    # Exactly one runner talks to a device, so a device never gets two jobs.
    runner = models.CharField(max_length=100, blank=True, default="")
    runner_expires_at = models.DateTimeField(null=True, blank=True)
    # The device account that registered it: only it (and staff) may act on
    # the device. Null for devices registered by staff.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices"
    )
    # Why the scheduler drained it (e.g. it kept answering "busy"); cleared by resume.
    status_reason = models.CharField(max_length=500, blank=True, default="")
    # Consecutive "busy" (HTTP 409) answers; reset by any other answer.
    busy_streak = models.PositiveIntegerField(default=0)
    # Consecutive jobs whose run failed on this device (device error, bad
    # result, timeout); DEVICE_QUARANTINE_FAILURES of them drain it. Reset by
    # a stored result and by resume.
    failure_streak = models.PositiveIntegerField(default=0)
    # The job of the last failure (internal id): the same job failing again
    # here is not another job in the row, so one bad job alone cannot
    # quarantine a good device (it uses up its own JOB_MAX_ATTEMPTS instead).
    failure_last_job = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} ({self.type}, {self.size} qubits)"
