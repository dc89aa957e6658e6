"""The job lifecycle log: one line per event on the ``jobs.lifecycle`` logger.

Events (the ``event`` field): ``submitted`` (one line per submission, however
many jobs), ``started``, ``finished``, ``attempt_failed``, ``requeued``,
``failed`` (for good), ``cancelled`` (one line per cancel request),
``callback_delivered``, ``callback_failed`` (will retry), ``callback_gave_up``.
Every line carries its facts as record attributes too (``extra``), so
``LOG_FORMAT=json`` gives them as fields: ``job`` (public id), ``program``,
``device``, ``count``, ``attempt``, ``status``, ``ms``, ``reason``.

Volume: a worker starts and finishes thousands of jobs per second at most,
so ``started`` and ``finished`` are one line each per run; everything else
is rare. Setting the ``jobs.lifecycle`` logger to WARNING keeps only the
failures (``attempt_failed``, ``failed``, ``callback_failed``,
``callback_gave_up`` are WARNING). Nothing here queries the database: the
callers pass what they already hold. Reasons are fixed texts of ours (device
errors are worded by ``devices.clients``), never a device's or a receiver's
answer body.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

logger = logging.getLogger("jobs.lifecycle")

INFO, WARNING = logging.INFO, logging.WARNING


def _log(level: int, event: str, msg: str, *args, **fields) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, *args, extra={"event": event, **fields})


def submitted(*, program: str, job_keys: Sequence[str], device_type: str, priority: int) -> None:
    count = len(job_keys)
    if count == 1:
        _log(
            INFO,
            "submitted",
            "job %s submitted (program %s, %s, priority %d)",
            job_keys[0],
            program,
            device_type,
            priority,
            program=program,
            job=job_keys[0],
            count=1,
        )
    else:
        _log(
            INFO,
            "submitted",
            "program %s submitted: %d jobs (%s .. %s, %s, priority %d)",
            program,
            count,
            job_keys[0],
            job_keys[-1],
            device_type,
            priority,
            program=program,
            count=count,
        )


def started(*, job: str, device: str, attempt: int) -> None:
    _log(
        INFO,
        "started",
        "job %s started on %s (attempt %d)",
        job,
        device,
        attempt,
        job=job,
        device=device,
        attempt=attempt,
    )


def finished(*, job: str, device: str, ms: float) -> None:
    _log(
        INFO,
        "finished",
        "job %s done on %s in %.1f ms",
        job,
        device,
        ms,
        job=job,
        device=device,
        status="done",
        ms=round(ms, 1),
    )


def attempt_failed(*, job: str, device: str, attempt: int, reason: str, requeued: bool) -> None:
    then = "requeued" if requeued else "no attempt left"
    _log(
        WARNING,
        "attempt_failed",
        "job %s attempt %d on %s failed: %s (%s)",
        job,
        attempt,
        device,
        reason,
        then,
        job=job,
        device=device,
        attempt=attempt,
        reason=reason,
    )


def requeued(*, job: str, why: str) -> None:
    _log(INFO, "requeued", "job %s requeued: %s", job, why, job=job, reason=why)


def failed(*, job: str, reason: str, device: str | None = None) -> None:
    _log(WARNING, "failed", "job %s failed: %s", job, reason, job=job, device=device, status="failed", reason=reason)


def cancelled(*, count: int, job: str | None = None, program: str | None = None) -> None:
    if job is not None:
        _log(INFO, "cancelled", "job %s cancelled", job, job=job, program=program, count=count)
    elif program is not None:
        _log(INFO, "cancelled", "program %s: %d queued job(s) cancelled", program, count, program=program, count=count)
    else:
        _log(INFO, "cancelled", "%d queued job(s) cancelled by an operator", count, count=count)


def callback_delivered(*, job: str, attempt: int) -> None:
    _log(
        INFO, "callback_delivered", "callback of job %s delivered (attempt %d)", job, attempt, job=job, attempt=attempt
    )


def callback_failed(*, job: str, attempt: int, reason: str, final: bool) -> None:
    if final:
        _log(
            WARNING,
            "callback_gave_up",
            "callback of job %s failed (attempt %d), giving up: %s",
            job,
            attempt,
            reason,
            job=job,
            attempt=attempt,
            reason=reason,
        )
    else:
        _log(
            WARNING,
            "callback_failed",
            "callback of job %s failed (attempt %d), will retry: %s",
            job,
            attempt,
            reason,
            job=job,
            attempt=attempt,
            reason=reason,
        )
