"""Plain factory functions for tests: sensible defaults, override anything."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.contrib.auth import get_user_model
from django.utils import timezone

from devices.models import Device, DeviceStatus
from jobs.models import Job, JobStatus, Program

_seq = itertools.count(1)


def make_user(username: str | None = None, **fields):
    username = username or f"user{next(_seq)}"
    return get_user_model().objects.create_user(username=username, password="pw-" + username, **fields)


def make_device(
    id: str | None = None,
    *,
    type: str = "analog",
    size: int = 8,
    status: str = DeviceStatus.ONLINE,
    address: str = "",
    last_seen_at: datetime | None = None,
    registered_at: datetime | None = None,
) -> Device:
    now = timezone.now()
    return Device.objects.create(
        id=id or f"dev-{next(_seq)}",
        type=type,
        size=size,
        status=status,
        address=address,
        registered_at=registered_at or now,
        last_seen_at=last_seen_at or now,
    )


def make_program(owner, *, key: str | None = None, priority: int = 0, device_type: str = "analog", **fields) -> Program:
    return Program.objects.create(
        key=key or f"prog-{next(_seq)}", owner=owner, priority=priority, device_type=device_type, **fields
    )


def make_job(
    program: Program,
    *,
    key: str | None = None,
    status: str = JobStatus.QUEUED,
    device: Device | None = None,
    **fields,
) -> Job:
    """A job of ``program`` (priority, device type and owner copied from it)."""
    now = timezone.now()
    if status == JobStatus.RUNNING:
        fields.setdefault("started_at", now)
        fields.setdefault("attempts", 1)
        fields.setdefault("lease_token", "token-" + str(next(_seq)))
    if status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED):
        fields.setdefault("finished_at", now)
    return Job.objects.create(
        key=key or f"job-{next(_seq)}",
        program=program,
        owner=program.owner,
        priority=program.priority,
        device_type=program.device_type,
        status=status,
        device=device,
        **fields,
    )
