"""Honest queue feedback: why a job cannot start yet, and when it likely will.

A job that no registered device can run is still accepted (a device of the
right type and size may register later), but the client is told so in
``warnings`` instead of waiting in silence. Every queued job also gets an
``estimated_start``: its place in the queue, the online devices able to run
it, and the recent run time of its device type (the median of the last
JOB_ESTIMATE_SAMPLE_JOBS finished jobs, cached for JOB_ESTIMATE_CACHE_SECONDS
so a busy API does not re-read history per request). When it cannot be
estimated the answer is null with the reason, never a made-up time.

The arithmetic (``estimate_start``) is pure: devices, run time, queue place
and ``now`` in, a time or a reason out, so it is tested on injected history
and measured against a simulated workload (``manage.py bench_estimates``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from functools import cache
from statistics import median

from django.conf import settings
from django.db import connection
from django.utils.dateparse import parse_datetime

from core import prepared
from jobs.models import JobStatus


@dataclass(frozen=True, slots=True)
class DeviceSlot:
    """A registered device of one type, as the estimate sees it."""

    size: int
    online: bool
    # started_at of the job it is running, if any.
    running_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Estimate:
    start: datetime | None
    reason: str | None


def type_devices_sql(device_type: str) -> str:
    """An SQL expression: the registered devices of ``device_type`` (an SQL
    expression) as a JSON array of ``[size, status, started_at of the job it
    runs]``, or NULL when there are none. One subquery (the devices table is
    small; the running jobs are found through the device foreign-key index),
    so a larger read can carry it (``jobs.selectors.job_get_detail``)."""
    agg, array = (
        ("json_agg", "json_build_array") if connection.vendor == "postgresql" else ("json_group_array", "json_array")
    )
    # Aliases of their own: ``device_type`` may name a column of an outer query.
    return f"""(SELECT {agg}({array}(td.size, td.status, tr.started_at))
                  FROM devices_device td
                  LEFT JOIN jobs_job tr ON tr.device_id = td.id AND tr.status = '{JobStatus.RUNNING}'
                 WHERE td.type = {device_type})"""


def devices_from_json(value) -> list[DeviceSlot]:
    """``type_devices_sql``'s answer as DeviceSlots (psycopg2 parses JSON;
    SQLite hands it back as text)."""
    if isinstance(value, str):
        value = json.loads(value)
    return [
        DeviceSlot(size=size, online=status == "online", running_since=_aware(started))
        for size, status, started in value or ()
    ]


@cache
def _type_devices_statement(vendor: str) -> str:
    return f"SELECT {type_devices_sql('%s')}"


def type_devices(device_type: str) -> list[DeviceSlot]:
    """The type's registered devices with the start of their running job."""
    with connection.cursor() as cursor:
        prepared.execute(cursor, _type_devices_statement(connection.vendor), [device_type])
        return devices_from_json(cursor.fetchone()[0])


def _aware(value):
    # JSON and SQLite hand timestamps back as text.
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt_timezone.utc)
    return value


def can_run(size: int, *, min_size: int | None, shots: int) -> bool:
    """The claim's own rule (jobs.claims): big enough, and the result fits."""
    return size >= (min_size or 1) and shots <= settings.RESULT_MAX_BITS // max(1, size)


def capacity_warnings(*, device_type: str, sizes: Sequence[int], min_size: int | None) -> list[str]:
    """Why no registered device (online or not) could ever take the job:
    none of its type, or all too small. Empty when one could."""
    if not sizes:
        return [f"No device of type {device_type!r} is registered: the job waits until one is."]
    largest = max(sizes)
    if min_size is not None and min_size > largest:
        return [
            f"The job needs at least {min_size} qubits (min_size) and the largest registered {device_type!r} "
            f"device has {largest}: it waits until a large enough one is registered."
        ]
    return []


def submission_warnings(*, device_type: str, sizes: Sequence[int], min_sizes: Sequence[int | None]) -> list[str]:
    """``capacity_warnings`` for a whole submission, said once: for a program,
    how many of its jobs are too large for every registered device."""
    if not sizes or len(min_sizes) == 1:
        return capacity_warnings(device_type=device_type, sizes=sizes, min_size=min_sizes[0] if min_sizes else None)
    largest = max(sizes)
    too_big = [m for m in min_sizes if m is not None and m > largest]
    if not too_big:
        return []
    return [
        f"{len(too_big)} of {len(min_sizes)} jobs need more qubits (min_size up to {max(too_big)}) than the largest "
        f"registered {device_type!r} device has ({largest}): they wait until a large enough one is registered."
    ]


# --- run times ----------------------------------------------------------------

_cache: dict[str, tuple[float, float | None]] = {}
_cache_lock = threading.Lock()


def recent_run_seconds(device_type: str) -> float | None:
    """Median run time (start to finish) of the type's last finished jobs;
    None without history. Read through ``job_done_recent_idx``."""
    from jobs.models import Job

    rows = (
        Job.objects.filter(
            status=JobStatus.DONE, device_type=device_type, finished_at__isnull=False, started_at__isnull=False
        )
        .order_by("-finished_at")
        .values_list("started_at", "finished_at")[: settings.JOB_ESTIMATE_SAMPLE_JOBS]
    )
    # The filter leaves no None; the comprehension says so for the type checker.
    durations = [(finished - started).total_seconds() for started, finished in rows if started and finished]
    return max(0.0, median(durations)) if durations else None


def cached_run_seconds(device_type: str) -> float | None:
    """``recent_run_seconds`` kept for JOB_ESTIMATE_CACHE_SECONDS per type."""
    ttl = settings.JOB_ESTIMATE_CACHE_SECONDS
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(device_type)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    value = recent_run_seconds(device_type)
    with _cache_lock:
        if len(_cache) > 10_000:  # device types are few; never let hostile input grow it
            _cache.clear()
        _cache[device_type] = (now, value)
    return value


# --- the estimate ---------------------------------------------------------------


def estimate_start(
    *,
    device_type: str,
    position: int,
    min_size: int | None,
    shots: int,
    devices: Sequence[DeviceSlot],
    run_seconds: float | None,
    now: datetime,
) -> Estimate:
    """When the job at ``position`` (1-based) likely starts.

    Model: the online devices able to run it serve the queue in order, each
    job taking ``run_seconds``. A busy device is free once its current job
    has run that long (now, if it already has); the ``position - 1`` jobs
    ahead take the free slots first. Since no device is more than one run
    from free, the slots come in rounds: the job starts at round
    ``ahead // k`` on the ``ahead % k``-th device to be free (k devices).
    """
    able = [d for d in devices if d.online and can_run(d.size, min_size=min_size, shots=shots)]
    if not able:
        need = f" with at least {min_size} qubits" if min_size else ""
        return Estimate(None, f"No online {device_type!r} device{need} can run it now.")
    if run_seconds is None:
        return Estimate(None, f"No {device_type!r} job has finished yet to learn run times from.")
    free_in = sorted(
        0.0
        if d.running_since is None
        else min(run_seconds, max(0.0, run_seconds - (now - d.running_since).total_seconds()))
        for d in able
    )
    ahead = max(0, position - 1)
    rounds, index = divmod(ahead, len(able))
    return Estimate(now + timedelta(seconds=free_in[index] + rounds * run_seconds), None)
