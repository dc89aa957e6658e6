"""Reads on programs and jobs, always through the visibility rule:
users see their own programs and jobs, staff see all."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Field, IntegerField, Min, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework.authtoken.models import Token

from core import prepared
from core.authentication import key_may_exist, token_user
from core.rows import RowReader
from devices.models import Device, DeviceStatus
from jobs import estimates
from jobs.exceptions import JobNotFound, ProgramNotFound
from jobs.models import Job, JobStatus, Program
from jobs.queue_counters import jobs_ahead_sql


def jobs_visible_to(user) -> QuerySet[Job]:
    qs = Job.objects.select_related("program")
    return qs if user.is_staff else qs.filter(owner=user)


def programs_visible_to(user) -> QuerySet[Program]:
    qs = Program.objects.select_related("owner")
    return qs if user.is_staff else qs.filter(owner=user)


def job_get(*, user, key: str) -> Job:
    """A job by public id; someone else's job is as missing as a wrong id."""
    # A NUL cannot be in any stored id (and PostgreSQL refuses it in a query).
    # The key is unique: no ORDER BY (``first()`` would add one to compile and run).
    found = [] if "\x00" in key else list(jobs_visible_to(user).filter(key=key).order_by()[:1])
    job = found[0] if found else None
    if job is None:
        raise JobNotFound(f"No job with id {key!r}.")
    return job


def program_get(*, user, key: str) -> Program:
    program = None if "\x00" in key else programs_visible_to(user).filter(key=key).first()
    if program is None:
        raise ProgramNotFound(f"No program with id {key!r}.")
    return program


def job_queue_position(job: Job) -> int | None:
    """1-based place of a queued job among the queued jobs of its device
    type, in claim order (priority desc, then submission order); None when
    the job is not queued. Exact on both databases.

    PostgreSQL: from the queue counters (``QueueCounter``, kept by triggers
    in the same transactions as the jobs), so the cost does not grow with
    the queue (``jobs.queue_counters.jobs_ahead_sql``). One prepared
    statement, so one snapshot: the counters and the jobs it reads agree.

    SQLite (development, small queues): the exact count of the jobs ahead,
    two range counts over ``job_queue_idx``.
    """
    if job.status != JobStatus.QUEUED:
        return None
    known = getattr(job, "_queue_position", None)  # counted by the statement that queued it
    if known is not None:
        return known
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            prepared.execute(cursor, _POSITION_SQL, [job.device_type, job.priority, job.pk])
            return int(cursor.fetchone()[0]) + 1
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (SELECT count(*) FROM jobs_job
                     WHERE status = 'queued' AND device_type = %s AND priority > %s)
                 + (SELECT count(*) FROM jobs_job
                     WHERE status = 'queued' AND device_type = %s AND priority = %s AND id < %s)
            """,
            [job.device_type, job.priority, job.device_type, job.priority, job.pk],
        )
        return cursor.fetchone()[0] + 1


_POSITION_SQL = (
    f"SELECT {jobs_ahead_sql('q.t', 'q.p', 'q.i')} FROM (SELECT %s::varchar AS t, %s::integer AS p, %s::bigint AS i) q"
)


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """What a client is told about a job's wait (GET /jobs/<id>)."""

    position: int | None = None
    estimated_start: datetime | None = None
    estimate_reason: str | None = None
    warnings: list[str] = field(default_factory=list)


def job_queue_info(job: Job, *, now: datetime | None = None) -> QueueInfo:
    """Place, estimated start and warnings of a queued job (jobs.estimates);
    an empty QueueInfo otherwise. Memoised on the instance: the serializer
    reads it field by field."""
    cached = getattr(job, "_queue_info", None)
    if cached is not None:
        return cached
    position = job_queue_position(job)  # None unless the job is queued
    devices = None
    if position is not None:
        # A submission has just read the type's devices (jobs.services.job_submit).
        devices = getattr(job, "_type_devices", None)
        if devices is None:
            devices = estimates.type_devices(job.device_type)
    job._queue_info = info = _queue_info(job, position=position, devices=devices, now=now)
    return info


def _queue_info(job: Job, *, position: int | None, devices, now: datetime | None) -> QueueInfo:
    if position is None:
        return QueueInfo()
    estimate = estimates.estimate_start(
        device_type=job.device_type,
        position=position,
        min_size=job.min_size,
        shots=job.shots,
        devices=devices,
        run_seconds=estimates.cached_run_seconds(job.device_type),
        now=now or timezone.now(),
    )
    warnings = estimates.capacity_warnings(
        device_type=job.device_type, sizes=[d.size for d in devices], min_size=job.min_size
    )
    return QueueInfo(
        position=position, estimated_start=estimate.start, estimate_reason=estimate.reason, warnings=warnings
    )


_JOB_READER = RowReader.of(Job)
_PROGRAM_READER = RowReader.of(Program, ["id", "key", "client_user_id"])


_DETAIL_COLUMNS = """
        SELECT {job}, {program},
               CASE WHEN j.status = 'queued' THEN {ahead} END,
               CASE WHEN j.status = 'queued' THEN {devices} END"""


@cache
def _detail_sql(vendor: str, by_token: bool) -> str:
    """The job read: by the reader's id and staff flag, or (``by_token``)
    by an API token's key, joined to its user with the same rules as the
    authentication and the visibility (active user; staff, or the owner)."""
    select = _DETAIL_COLUMNS.format(
        job=_JOB_READER.columns("j"),
        program=_PROGRAM_READER.columns("p"),
        ahead=jobs_ahead_sql("j.device_type", "j.priority", "j.id"),
        devices=estimates.type_devices_sql("j.device_type"),
    )
    if not by_token:
        return f"""{select}
          FROM jobs_job j JOIN jobs_program p ON p.id = j.program_id
         WHERE j.key = %s AND (%s OR j.owner_id = %s)"""
    users, quote = get_user_model()._meta, connection.ops.quote_name
    username = quote(str(cast(Field, users.get_field(get_user_model().USERNAME_FIELD)).column))
    return f"""{select}, u.{username}
          FROM {quote(Token._meta.db_table)} t
          JOIN {quote(users.db_table)} u ON u.{quote(str(users.pk.column))} = t.user_id AND u.is_active
          JOIN jobs_job j ON j.key = %s AND (u.is_staff OR j.owner_id = u.{quote(str(users.pk.column))})
          JOIN jobs_program p ON p.id = j.program_id
         WHERE t.key = %s"""


def job_get_detail(*, user, key: str, now: datetime | None = None) -> Job:
    """``job_get`` with its queue info (``job_queue_info``) already known:
    on PostgreSQL the job, its program's id and client user, its exact
    queue position and its type's devices in one prepared statement (one
    round trip, one snapshot) - the read behind ``GET /jobs/<id>``."""
    if connection.vendor != "postgresql":
        job = job_get(user=user, key=key)
        job_queue_info(job, now=now)
        return job
    row = None
    if "\x00" not in key:
        with connection.cursor() as cursor:
            prepared.execute(cursor, _detail_sql(connection.vendor, False), [key, bool(user.is_staff), user.pk])
            row = cursor.fetchone()
    if row is None:
        raise JobNotFound(f"No job with id {key!r}.")
    return _job_from_detail_row(row, now=now)


def job_get_detail_by_token(*, token: str, key: str, now: datetime | None = None) -> tuple[str, Job] | None:
    """(username, job) when ``token`` is the API key of an active user who
    may see job ``key`` - ``job_get_detail`` and the token authentication in
    one statement, for the fast lane (``jobs.fastlane``); None otherwise,
    without saying why (the full stack then answers, and explains). SQLite:
    the same answer in two steps."""
    if "\x00" in key or not key_may_exist(token):
        return None
    if connection.vendor != "postgresql":
        found = token_user(token)
        if found is None or not found[0].is_active:
            return None
        try:
            return found[0].get_username(), job_get_detail(user=found[0], key=key, now=now)
        except JobNotFound:
            return None
    with connection.cursor() as cursor:
        prepared.execute(cursor, _detail_sql(connection.vendor, True), [key, token])
        row = cursor.fetchone()
    if row is None:
        return None
    return row[-1], _job_from_detail_row(row[:-1], now=now)


def submitter_sql(*, device_type: str, token: str, extra: str = "") -> tuple[str, RowReader]:
    """A SELECT of the token's active user (all columns) and a device type's
    devices as JSON (``estimates.type_devices_sql``), then ``extra``
    columns; ``device_type`` and ``token`` are SQL expressions. No row when
    no active user has the token. With the reader of the user's columns."""
    users_reader = RowReader.of(get_user_model())
    users, quote = get_user_model()._meta, connection.ops.quote_name
    sql = f"""SELECT {users_reader.columns("u")}, {estimates.type_devices_sql(device_type)}{extra}
          FROM {quote(Token._meta.db_table)} t
          JOIN {quote(users.db_table)} u ON u.{quote(str(users.pk.column))} = t.user_id AND u.is_active
         WHERE t.key = {token}"""
    return sql, users_reader


@cache
def _submitter_statement(vendor: str) -> tuple[str, RowReader]:
    return submitter_sql(device_type="%s", token="%s")


def submitter_by_token(*, token: str, device_type: str) -> tuple[Any, list[estimates.DeviceSlot]] | None:
    """(user, the type's devices) when ``token`` is the API key of an active
    user; None otherwise, without saying why (the full stack then answers,
    and explains). What a submission reads before it writes, in one
    statement, for the fast lane (``jobs.fastlane``); SQLite: two steps."""
    if not key_may_exist(token) or "\x00" in device_type:
        return None
    if connection.vendor != "postgresql":
        found = token_user(token)
        if found is None or not found[0].is_active:
            return None
        return found[0], estimates.type_devices(device_type)
    sql, users_reader = _submitter_statement(connection.vendor)
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, [device_type, token])
        row = cursor.fetchone()
    if row is None:
        return None
    return users_reader.instance(row[:-1]), estimates.devices_from_json(row[-1])


def _job_from_detail_row(row, *, now: datetime | None) -> Job:
    split = len(_JOB_READER.fields)
    job = _JOB_READER.instance(row[:split])
    job.program = _PROGRAM_READER.instance(row[split : split + len(_PROGRAM_READER.fields)])
    ahead, devices = row[-2], row[-1]
    position = None if ahead is None else int(ahead) + 1
    job._queue_info = _queue_info(
        job, position=position, devices=estimates.devices_from_json(devices) if position else None, now=now
    )
    return job


def program_job_counts(program_ids: list[int]) -> dict[int, dict[str, int]]:
    """Jobs per status for each program, in one grouped query."""
    counts: dict[int, dict[str, int]] = defaultdict(lambda: {s: 0 for s in JobStatus.values})
    rows = (
        Job.objects.filter(program_id__in=program_ids)
        .order_by()
        .values_list("program_id", "status")
        .annotate(n=Count("pk"))
    )
    for program_id, job_status, n in rows:
        counts[program_id][job_status] = n
    return {pid: counts[pid] for pid in program_ids}


def queue_summary(*, now: datetime | None = None) -> list[dict]:
    """Per device type: queued jobs, the oldest queued job's wait, running
    jobs and devices online — the operators' view of the queue."""
    now = now or timezone.now()
    queued = {
        row["device_type"]: row
        for row in Job.objects.filter(status=JobStatus.QUEUED)
        .order_by()
        .values("device_type")
        .annotate(queued=Count("pk"), oldest=Min("created_at"))
    }
    running = dict(
        Job.objects.filter(status=JobStatus.RUNNING)
        .order_by()
        .values("device_type")
        .annotate(n=Count("pk"))
        .values_list("device_type", "n")
    )
    devices: defaultdict[str, dict[str, int]] = defaultdict(lambda: {"online": 0, "total": 0})
    for device_type, status, n in (
        Device.objects.order_by().values("type", "status").annotate(n=Count("pk")).values_list("type", "status", "n")
    ):
        devices[device_type]["total"] += n
        if status == DeviceStatus.ONLINE:
            devices[device_type]["online"] += n
    summary = []
    for device_type in sorted(set(queued) | set(running) | set(devices)):
        q = queued.get(device_type)
        oldest = q["oldest"] if q else None
        summary.append(
            {
                "device_type": device_type,
                "queued": q["queued"] if q else 0,
                "oldest_queued_at": oldest,
                "oldest_wait_seconds": (now - oldest).total_seconds() if oldest else None,
                "running": running.get(device_type, 0),
                "devices_online": devices[device_type]["online"],
                "devices_total": devices[device_type]["total"],
            }
        )
    return summary


def annotate_device_activity(qs: QuerySet[Device]) -> QuerySet[Device]:
    """Devices with ``current_job`` (the running job's public id or None) and
    ``jobs_done``; registered as the devices app's activity annotator
    (``devices.activity``). Both subqueries use ``job_device_status_idx``."""
    running = Job.objects.filter(device_id=OuterRef("pk"), status=JobStatus.RUNNING).order_by().values("key")[:1]
    done = (
        Job.objects.filter(device_id=OuterRef("pk"), status=JobStatus.DONE)
        .order_by()
        .values("device_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return qs.annotate(
        current_job=Subquery(running),
        jobs_done=Coalesce(Subquery(done, output_field=IntegerField()), Value(0)),
    )


def jobs_recent_on_device(*, device_id: str, limit: int = 20) -> list[Job]:
    """The latest jobs a device ran or runs (newest submission first), for
    the operators' device page. Requeued jobs leave the device, so these are
    the runs that count against it."""
    return list(Job.objects.filter(device_id=device_id).order_by("-id")[:limit])
