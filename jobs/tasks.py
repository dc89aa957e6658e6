"""django-q2 task entry points (thin: parse, call one service)."""

from jobs.webhooks import callback_deliver


def deliver_callback(job_id: int, attempt: int | None = None) -> str:
    return callback_deliver(job_id=int(job_id), attempt=None if attempt is None else int(attempt))
