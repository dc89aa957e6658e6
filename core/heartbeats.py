"""Signs of life of the background roles, for ``/readyz``.

A role beats from its own loop (the QPU worker's lease renewal, the VM
scheduler's pass loop, a one-minute django-q2 schedule for the task cluster).
Beats are one UPDATE (or INSERT the first time) and are throttled per process,
so a busy loop costs at most one write every ``min_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime, timedelta

from django.utils import timezone

from core.models import Heartbeat

logger = logging.getLogger(__name__)

QPU_WORKERS = "qpu-workers"
VM_SCHEDULER = "vm-scheduler"
TASK_CLUSTER = "task-cluster"

_last: dict[str, float] = {}
_lock = threading.Lock()
_WHO = f"{socket.gethostname()}:{os.getpid()}"


def heartbeat_beat(*, name: str, now: datetime | None = None, min_interval: float = 5.0) -> bool:
    """Record that ``name`` is alive; returns True when a row was written.
    Never raises: a heartbeat must not take down the loop that sends it."""
    with _lock:
        if time.monotonic() - _last.get(name, -1e9) < min_interval:
            return False
        _last[name] = time.monotonic()
    try:
        Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": now or timezone.now(), "by": _WHO})
    except Exception:
        logger.warning("could not record the %s heartbeat", name, exc_info=True)
        return False
    return True


def heartbeat_age(*, name: str, now: datetime | None = None) -> timedelta | None:
    """How long ago ``name`` last beat, or None if it never did."""
    beat_at = Heartbeat.objects.filter(name=name).values_list("beat_at", flat=True).first()
    return None if beat_at is None else (now or timezone.now()) - beat_at


def task_cluster_beat() -> str:
    """The django-q2 schedule's target: proves a cluster process picks up work."""
    heartbeat_beat(name=TASK_CLUSTER, min_interval=0)
    return "alive"


HEARTBEAT_SCHEDULE = "Task cluster heartbeat"


def ensure_heartbeat_schedule() -> None:
    """A one-minute django-q2 schedule whose only job is to beat: it proves a
    cluster process takes work off the queue, which is what /readyz asks."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=HEARTBEAT_SCHEDULE,
        defaults={
            "func": "core.heartbeats.task_cluster_beat",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
