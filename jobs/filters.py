"""Query-string filters of `GET /jobs` and `GET /programs`.

``status`` takes one status or a comma-separated list (``queued,running``);
an unknown status is a 400 naming ``status`` rather than an empty page.
``program`` is a program's public id, ``device_type`` a device type.
For programs, ``status=S`` keeps the programs having at least one job in S.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from jobs.exceptions import DomainError
from jobs.models import Job, JobStatus, Program

FILTER_PARAMS = ("status", "program", "device_type")


def parse_statuses(raw: str | None) -> list[str] | None:
    if raw is None or raw.strip() == "":
        return None
    statuses = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in statuses if s not in JobStatus.values]
    if unknown:
        raise DomainError(
            f"Unknown status {unknown[0]!r}; use one of {', '.join(JobStatus.values)}.", field="status"
        )
    return statuses


def _text(params, name: str) -> str | None:
    value = params.get(name)
    if not value:
        return None
    if "\x00" in value:
        # PostgreSQL refuses NUL in a query; no stored value has one anyway.
        raise DomainError("Null characters are not allowed.", field=name)
    return value


def filter_jobs(qs: QuerySet[Job], params) -> QuerySet[Job]:
    statuses = parse_statuses(params.get("status"))
    if statuses:
        qs = qs.filter(status__in=statuses)
    if program := _text(params, "program"):
        qs = qs.filter(program__key=program)
    if device_type := _text(params, "device_type"):
        qs = qs.filter(device_type=device_type)
    return qs


def filter_programs(qs: QuerySet[Program], params) -> QuerySet[Program]:
    statuses = parse_statuses(params.get("status"))
    if statuses:
        qs = qs.filter(Exists(Job.objects.filter(program_id=OuterRef("pk"), status__in=statuses)))
    if program := _text(params, "program"):
        qs = qs.filter(key=program)
    if device_type := _text(params, "device_type"):
        qs = qs.filter(device_type=device_type)
    return qs
