"""The jobs app's answers to what the device pool tells it (``devices.signals``),
connected in ``JobsConfig.ready()``: jobs depends on devices, never the reverse.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction

from jobs.claims import jobs_requeue_for_device
from jobs.notify import notify_changed
from jobs.webhooks import callback_enqueue


def requeue_lost_work(sender, *, device, **kwargs) -> int:
    """The device lost what it ran: its jobs go back to the queue in their
    original place (a job requeued JOB_MAX_REQUEUES times fails instead, and
    its callback goes out once the transaction commits). Returns the count."""
    requeued = jobs_requeue_for_device(device_id=device.pk)
    if requeued.queued:
        # The jobs are queued again: any free device of the type may take them.
        notify_changed(device.type)
    for job_id in requeued.callbacks:
        transaction.on_commit(partial(callback_enqueue, job_id=job_id))
    return requeued.count


def wake_workers(sender, *, topic: str, **kwargs) -> None:
    """A device may take work now: wake the workers after the commit."""
    notify_changed(topic)
