"""Reads on programs and jobs, always through the visibility rule:
users see their own programs and jobs, staff see all."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from devices.models import Device, DeviceStatus
from jobs.exceptions import JobNotFound, ProgramNotFound
from jobs.models import Job, JobStatus, Program


def jobs_visible_to(user) -> QuerySet[Job]:
    qs = Job.objects.select_related("program")
    return qs if user.is_staff else qs.filter(owner=user)


def programs_visible_to(user) -> QuerySet[Program]:
    qs = Program.objects.select_related("owner")
    return qs if user.is_staff else qs.filter(owner=user)


def job_get(*, user, key: str) -> Job:
    """A job by public id; someone else's job is as missing as a wrong id."""
    # A NUL cannot be in any stored id (and PostgreSQL refuses it in a query).
    job = None if "\x00" in key else jobs_visible_to(user).filter(key=key).first()
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
    the job is not queued.

    Counted as two ranges of the partial index ``job_queue_idx``
    (device_type, priority desc, id) WHERE status = 'queued': the jobs of
    higher priority, then those of equal priority submitted earlier. Both are
    index-only range scans bounded on every column, so only the jobs ahead
    are read.
    """
    if job.status != JobStatus.QUEUED:
        return None
    queued = Job.objects.filter(status=JobStatus.QUEUED, device_type=job.device_type).order_by()
    higher = queued.filter(priority__gt=job.priority).count()
    earlier = queued.filter(priority=job.priority, id__lt=job.pk).count()
    return higher + earlier + 1


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
    devices = defaultdict(lambda: {"online": 0, "total": 0})
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


# Finished runs the admin's simple wait estimate learns from (newest first).
ESTIMATE_RECENT_RUNS = 50


def job_estimated_wait_seconds(job: Job) -> float | None:
    """A simple guess at how long a queued job still waits, for the admin's
    job page: the jobs ahead of it plus the running ones of its type, shared
    among the online devices able to run it, times the mean run time of the
    type's recent runs. None when it cannot be guessed (not queued, no such
    device online, no finished run to learn from).

    Hook (issue 8, point 4): the API's ``estimated_start`` (jobs.estimates)
    replaces this once merged; the admin calls only this function.
    """
    position = job_queue_position(job)
    if position is None:
        return None
    devices = Device.objects.filter(type=job.device_type, status=DeviceStatus.ONLINE)
    if job.min_size:
        devices = devices.filter(size__gte=job.min_size)
    n_devices = devices.count()
    runs = (
        Job.objects.filter(device_type=job.device_type, status=JobStatus.DONE, started_at__isnull=False)
        .order_by("-id")
        .values_list("started_at", "finished_at")[:ESTIMATE_RECENT_RUNS]
    )
    seconds = [(end - start).total_seconds() for start, end in runs if end is not None]
    if not n_devices or not seconds:
        return None
    running = Job.objects.filter(device_type=job.device_type, status=JobStatus.RUNNING).count()
    return (position - 1 + running) / n_devices * (sum(seconds) / len(seconds))
