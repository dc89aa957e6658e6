"""Delivering finished jobs to the program's ``callback_url``.

Each finished (done or failed) job of a program with a callback URL is POSTed
there as JSON, signed the Standard Webhooks way with the program's own
``webhook_secret``: headers ``webhook-id`` (one per job outcome, the same on
every retry, so receivers deduplicate on it), ``webhook-timestamp`` (of the
attempt, so receivers reject replays) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 over id.timestamp.body>``).

The POST goes through ``core.outbound`` (address policy checked after
resolution and pinned, no redirects, one total deadline of
CALLBACK_TIMEOUT_SECONDS, the answer's body never read), and the job keeps a
fixed reason only, never what the receiver wrote. A receiver that times out
is left alone for a while (``jobs.receivers``) so it cannot hold up other
users' deliveries.

Deliveries run as django-q2 tasks; a failed delivery is retried through a
one-off django-q2 schedule after CALLBACK_BACKOFF_SECONDS * 2**(n-1) (so 15 s,
30 s, 1 min, ... by default; django-q2 checks schedules about every 30 s)
until it succeeds or CALLBACK_MAX_ATTEMPTS have failed. The state is on the
job. A delivery lost on the way is queued again by ``callbacks_requeue_lost``
(run by the workers). Deliveries are at-least-once.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from core import metrics, outbound
from jobs import lifecycle
from jobs.models import CallbackStatus, Job
from jobs.receivers import give_up_after, receiver_gate, receiver_record

logger = logging.getLogger(__name__)

TASK = "jobs.tasks.deliver_callback"


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


def message_id(job: Job) -> str:
    """One id per job outcome: stable across retries, new when an operator
    requeues the job and it finishes again. ASCII whatever the job's key."""
    finished = int(job.finished_at.timestamp() * 1_000_000) if job.finished_at else 0
    return f"msg_{job.pk}_{finished}"


def signed_headers(*, secret: str, msg_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` (ASCII JSON) sent at ``now``."""
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
    }


def receiver_of(url: str) -> str:
    try:
        return outbound.parse_target(url).origin
    except outbound.InvalidTarget:
        return url[:300]


def callback_enqueue(*, job_id: int, attempt: int = 1) -> None:
    """Queue a delivery attempt as a django-q2 task."""
    from django_q.tasks import async_task

    try:
        async_task(TASK, job_id, attempt, task_name=f"callback-{job_id}-{attempt}")
    except Exception:  # still 'pending': the sweeper queues it again later
        logger.exception("could not queue callback delivery of job %s", job_id)


def backoff_seconds(attempt: int) -> float:
    return settings.CALLBACK_BACKOFF_SECONDS * (2 ** (attempt - 1))


def callback_deliver(*, job_id: int, attempt: int | None = None, post=outbound.post) -> str:
    """Delivery attempt number ``attempt`` (default: the next one). Returns
    the job's callback status afterwards.

    The attempt is claimed first (attempts n-1 -> n in one conditional
    UPDATE), so a duplicate task for the same attempt (a sweep racing a slow
    cluster) posts nothing. A receiver marked slow is not called: the
    attempt is rescheduled unclaimed.
    """
    job = Job.objects.select_related("program").filter(pk=job_id).first()
    if job is None or job.callback_status != CallbackStatus.PENDING or not job.program.callback_url:
        return job.callback_status if job else ""
    attempt = job.callback_attempts + 1 if attempt is None else attempt
    receiver = receiver_of(job.program.callback_url)
    now = timezone.now()
    gate = receiver_gate(receiver=receiver, now=now)
    if gate.defer_until is not None:
        _defer(job_id=job_id, attempt=attempt, until=gate.defer_until, now=now)
        return CallbackStatus.PENDING
    claimed = Job.objects.filter(
        pk=job_id, callback_status=CallbackStatus.PENDING, callback_attempts=attempt - 1
    ).update(
        callback_attempts=attempt,
        callback_due_at=now + timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS),
    )
    if not claimed:
        return Job.objects.filter(pk=job_id).values_list("callback_status", flat=True).first() or ""
    if gate.give_up:
        error = f"receiver unreachable for over {give_up_after().total_seconds():g} s; not tried again"
        return _record_failure(job=job, attempt=attempt, error=error, final=True)
    error = _post(job=job, receiver=receiver, post=post)
    if not error:
        Job.objects.filter(pk=job_id).update(
            callback_status=CallbackStatus.DELIVERED,
            callback_delivered_at=timezone.now(),
            callback_error="",
            callback_due_at=None,
        )
        lifecycle.callback_delivered(job=job.key, attempt=attempt)
        metrics.webhook_delivery(outcome="delivered")
        return CallbackStatus.DELIVERED
    return _record_failure(job=job, attempt=attempt, error=error, final=attempt >= settings.CALLBACK_MAX_ATTEMPTS)


def _post(*, job: Job, receiver: str, post) -> str:
    """One signed POST. Returns "" on a 2xx, else a fixed reason (nothing
    the receiver wrote); tells ``jobs.receivers`` whether it was slow."""
    secret = job.program.webhook_secret
    if not secret:
        return "program has no webhook secret; rotate it to get one"
    body = callback_body(job)
    headers = signed_headers(secret=secret, msg_id=message_id(job), body=body, now=timezone.now())
    try:
        answer = post(
            job.program.callback_url,
            body=body,
            headers=headers,
            timeout=settings.CALLBACK_TIMEOUT_SECONDS,
            allowed=outbound.callback_address_allowed,
        )
    except outbound.OutboundError as exc:
        receiver_record(receiver=receiver, slow=exc.slow, now=timezone.now())
        logger.warning("callback of job %s to %s: %s (%s)", job.key, receiver, exc.reason, exc.detail)
        return exc.reason
    receiver_record(receiver=receiver, slow=False, now=timezone.now())
    if 200 <= answer.status < 300:
        return ""
    if 300 <= answer.status < 400:
        return f"receiver answered with a redirect (HTTP {answer.status}), not followed"
    return f"receiver answered HTTP {answer.status}"


def _record_failure(*, job: Job, attempt: int, error: str, final: bool) -> str:
    status = CallbackStatus.FAILED if final else CallbackStatus.PENDING
    delay = backoff_seconds(attempt)
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            callback_status=status,
            callback_error=error,
            callback_due_at=None if final else timezone.now() + timedelta(seconds=delay),
        )
        if not final:
            _schedule_retry(job_id=job.pk, attempt=attempt + 1, delay=delay)
    lifecycle.callback_failed(job=job.key, attempt=attempt, reason=error, final=final)
    metrics.webhook_delivery(outcome="refused" if error == outbound.NOT_ALLOWED else "gave_up" if final else "failed")
    return status


def _defer(*, job_id: int, attempt: int, until: datetime, now: datetime) -> None:
    """Reschedule this attempt to when the slow receiver may be called again,
    without claiming it. Only the task that moves ``callback_due_at``
    schedules, so duplicates do not multiply."""
    moved = (
        Job.objects.filter(pk=job_id, callback_status=CallbackStatus.PENDING, callback_attempts=attempt - 1)
        .filter(Q(callback_due_at__isnull=True) | Q(callback_due_at__lt=until))
        .update(callback_due_at=until)
    )
    if moved:
        _schedule_retry(job_id=job_id, attempt=attempt, delay=(until - now).total_seconds())


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
