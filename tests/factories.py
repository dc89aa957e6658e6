"""The one set of test factories: one plain function per entity, sensible
defaults, every field overridable by keyword. They write straight to the
database (no services, no signals): a test that is about an entry point calls
that entry point itself."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token

from devices.models import Device, DeviceStatus
from exams.models import Exam
from jobs.models import Job, JobStatus, Program

_seq = itertools.count(1)


def make_user(username: str | None = None, *, password: str | None = None, **fields):
    """A user; ``password`` defaults to ``"pw-" + username``. Pass
    ``is_staff=True`` / ``is_superuser=True`` for operators and admins."""
    username = username or f"user{next(_seq)}"
    if fields.get("is_superuser"):
        fields.setdefault("is_staff", True)
    return get_user_model().objects.create_user(
        username=username, password=password if password is not None else "pw-" + username, **fields
    )


def make_token(user) -> str:
    """The API token key of ``user`` (created on first use, like the login view does)."""
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


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


def make_program(
    owner,
    *,
    key: str | None = None,
    priority: int = 0,
    device_type: str = "analog",
    jobs: int = 0,
    shots: int = 1,
    min_size: int | None = None,
    **fields,
) -> Program:
    """A program of ``owner``; with ``jobs=n``, also n queued jobs (keys
    ``<program key>-j<i>``, ``shots`` shots each, distinct instructions)."""
    program = Program.objects.create(
        key=key or f"prog-{next(_seq)}", owner=owner, priority=priority, device_type=device_type, **fields
    )
    Job.objects.bulk_create(
        Job(
            key=f"{program.key}-j{i}",
            program=program,
            owner=owner,
            priority=priority,
            device_type=device_type,
            instructions=[{"op": "x", "q": i}],
            shots=shots,
            min_size=min_size,
        )
        for i in range(jobs)
    )
    return program


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


def make_exam(
    *,
    id: int | None = None,
    name: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    students: int = 10,
) -> Exam:
    """An exam straight in the table (no exam_changed signal: the VM tests
    drive the scheduler themselves). ``start`` defaults to an hour from now,
    ``end`` to an hour after ``start``."""
    start = start or timezone.now() + timedelta(hours=1)
    n = next(_seq)
    return Exam.objects.create(
        id=id, name=name or f"Exam {id or n}", start=start, end=end or start + timedelta(hours=1), students=students
    )
