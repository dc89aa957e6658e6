"""Delivering finished jobs to the program's ``callback_url``.

Each finished (done or failed) job of a program with a callback URL is POSTed
there as JSON, signed with HMAC-SHA256 over the exact body bytes
(``X-Signature-256: sha256=<hex>``, key ``CALLBACK_SECRET``). Deliveries run as
django-q2 tasks; a failed delivery is retried through a one-off django-q2
schedule after CALLBACK_BACKOFF_SECONDS * 2**(n-1) (so 15 s, 30 s, 1 min, ...
by default; django-q2 checks schedules about every 30 s) until it succeeds or
CALLBACK_MAX_ATTEMPTS have failed. The state is on the job. A delivery lost on
the way is queued again by ``callbacks_requeue_lost`` (run by the workers).
Receivers should treat deliveries as at-least-once and deduplicate on ``id``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.models import CallbackStatus, Job

logger = logging.getLogger(__name__)

TASK = "jobs.tasks.deliver_callback"
SIGNATURE_HEADER = "X-Signature-256"


def sign(body: bytes, secret: str | None = None) -> str:
    key = (secret or settings.CALLBACK_SECRET).encode()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def callback_body(job: Job) -> bytes:
    payload = {
        "id": job.key,
        "program": job.program.key,
        "status": job.status,
        "result": job.result,
        "error": job.error or None,
        "device": job.device_id,
        "attempts": job.attempts,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def callback_enqueue(*, job_id: int, attempt: int = 1) -> None:
    """Queue a delivery attempt as a django-q2 task."""
    from django_q.tasks import async_task

    try:
        async_task(TASK, job_id, attempt, task_name=f"callback-{job_id}-{attempt}")
    except Exception:  # still 'pending': the sweeper queues it again later
        logger.exception("could not queue callback delivery of job %s", job_id)


def backoff_seconds(attempt: int) -> float:
    return settings.CALLBACK_BACKOFF_SECONDS * (2 ** (attempt - 1))


def callback_deliver(*, job_id: int, attempt: int | None = None, session: requests.Session | None = None) -> str:
    """Delivery attempt number ``attempt`` (default: the next one). Returns
    the job's callback status afterwards.

    The attempt is claimed first (attempts n-1 -> n in one conditional
    UPDATE), so a duplicate task for the same attempt (a sweep racing a slow
    cluster) posts nothing.
    """
    job = Job.objects.select_related("program").filter(pk=job_id).first()
    if job is None or job.callback_status != CallbackStatus.PENDING or not job.program.callback_url:
        return job.callback_status if job else ""
    attempt = job.callback_attempts + 1 if attempt is None else attempt
    now = timezone.now()
    claimed = Job.objects.filter(
        pk=job_id, callback_status=CallbackStatus.PENDING, callback_attempts=attempt - 1
    ).update(
        callback_attempts=attempt,
        callback_due_at=now + timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS),
    )
    if not claimed:
        return Job.objects.filter(pk=job_id).values_list("callback_status", flat=True).first() or ""
    body = callback_body(job)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body), "X-Job-Id": job.key}
    error = ""
    try:
        response = (session or requests).post(
            job.program.callback_url, data=body, headers=headers, timeout=settings.CALLBACK_TIMEOUT_SECONDS
        )
        if 200 <= response.status_code < 300:
            Job.objects.filter(pk=job_id).update(
                callback_status=CallbackStatus.DELIVERED,
                callback_delivered_at=timezone.now(),
                callback_error="",
                callback_due_at=None,
            )
            return CallbackStatus.DELIVERED
        error = f"HTTP {response.status_code}: {response.text[:200]}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    gave_up = attempt >= settings.CALLBACK_MAX_ATTEMPTS
    status = CallbackStatus.FAILED if gave_up else CallbackStatus.PENDING
    delay = backoff_seconds(attempt)
    with transaction.atomic():
        Job.objects.filter(pk=job_id).update(
            callback_status=status,
            callback_error=error,
            callback_due_at=None if gave_up else timezone.now() + timedelta(seconds=delay),
        )
        if not gave_up:
            _schedule_retry(job_id=job_id, attempt=attempt + 1, delay=delay)
    logger.warning("callback of job %s failed (attempt %d): %s", job.key, attempt, error)
    return status


def _schedule_retry(*, job_id: int, attempt: int, delay: float) -> None:
    from django_q.models import Schedule

    Schedule.objects.create(
        name=f"callback-{job_id}-{attempt}",
        func=TASK,
        args=f"{job_id!r}, {attempt!r}",
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=timezone.now() + timedelta(seconds=delay),
    )


def callbacks_requeue_lost(*, now=None, limit: int = 200) -> int:
    """Queue again the pending deliveries nobody is working on: the worker
    died between storing the result and queueing the task, the task queue lost
    it, or a delivery died mid-POST. "Nobody" = due more than
    CALLBACK_SWEEP_AFTER_SECONDS ago. Each is pushed back by that much, so a
    sweep never floods the queue; a duplicate attempt posts nothing."""
    from django.db.models import F
    from django.db.models.functions import Coalesce

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CALLBACK_SWEEP_AFTER_SECONDS)
    lost = list(
        Job.objects.filter(callback_status=CallbackStatus.PENDING)
        .annotate(due=Coalesce(F("callback_due_at"), F("finished_at")))
        .filter(due__lt=cutoff)
        .values_list("pk", "callback_attempts")[:limit]
    )
    for job_id, attempts in lost:
        Job.objects.filter(pk=job_id).update(callback_due_at=now)
        callback_enqueue(job_id=job_id, attempt=attempts + 1)
    if lost:
        logger.warning("re-queued %d lost callback deliveries", len(lost))
    return len(lost)
