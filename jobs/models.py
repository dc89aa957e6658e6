from __future__ import annotations

import base64
import secrets
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

if TYPE_CHECKING:
    from jobs.estimates import DeviceSlot
    from jobs.selectors import QueueInfo


class JobStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


class CallbackStatus(models.TextChoices):
    NONE = "", "no callback"
    PENDING = "pending", "pending"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed"


def new_webhook_secret() -> str:
    """A Standard Webhooks signing key: "whsec_" + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Program(models.Model):
    """A set of jobs sharing one priority and one device type."""

    key = models.CharField(max_length=100, unique=True, help_text="Public id (client-given or generated).")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="programs")
    client_user_id = models.CharField(
        max_length=100, blank=True, default="", help_text="The client's own user reference (brief's user_id)."
    )
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    device_type = models.CharField(max_length=100)
    callback_url = models.URLField(max_length=1000, blank=True, default="")
    # Standard Webhooks signing key of this program's deliveries ("whsec_" +
    # base64 of 32 random bytes): shown once at creation, rotatable by the owner.
    webhook_secret = models.CharField(max_length=100, blank=True, default=new_webhook_secret)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        # Lifts USER_MAX_PRIORITY for a user or group (jobs.limits).
        permissions = [("high_priority", "Can submit programs above USER_MAX_PRIORITY")]

    def __str__(self) -> str:
        return self.key


class Job(models.Model):
    """One unit of work for a QPU.

    ``id`` (auto-increment) is the submission order used as the tie-breaker of
    the queue; ``key`` is the public id. Priority, device type and owner are
    copied from the program so the queue claim reads one table through one
    partial index.
    """

    key = models.CharField(max_length=100, unique=True)
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="jobs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    priority = models.IntegerField()
    device_type = models.CharField(max_length=100)
    instructions = models.JSONField(default=list, blank=True)
    shots = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    min_size = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # No database constraint: a job keeps the id of the device it ran on after
    # that device is removed from the pool.
    device = models.ForeignKey(
        "devices.Device", null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="jobs"
    )
    attempts = models.PositiveIntegerField(default=0)
    # The device its last failed attempt ran on: while another online device
    # could run the job, that device does not take it again (jobs.claims).
    last_failed_device = models.CharField(max_length=100, null=True, blank=True)
    # Times the job went back to the queue through no fault of its own (device
    # removed, silent, or its worker died): bounded by JOB_MAX_REQUEUES.
    requeues = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # Fencing token of the current run: only the runner holding it may store
    # the result, so a result is stored exactly once even after a requeue.
    lease_token = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    callback_status = models.CharField(
        max_length=16, choices=CallbackStatus.choices, default=CallbackStatus.NONE, blank=True
    )
    callback_attempts = models.PositiveIntegerField(default=0)
    callback_error = models.TextField(blank=True, default="")
    callback_delivered_at = models.DateTimeField(null=True, blank=True)
    # When the next delivery attempt is due (or the running one should be over).
    # A pending delivery far past this was lost (worker or cluster died) and is
    # queued again by the sweeper.
    callback_due_at = models.DateTimeField(null=True, blank=True)
    # Not columns (declared for the type checker; absent until set):
    # jobs.selectors.job_queue_info memoises its answer on the loaded row, and
    # a submission leaves what its statement already knew for that answer -
    # the job's place and its type's devices (jobs.services).
    _queue_info: QueueInfo
    _queue_position: int
    _type_devices: list[DeviceSlot]

    class Meta:
        ordering = ["id"]
        indexes = [
            # Matches the claim's WHERE and ORDER BY exactly, and only holds
            # queued rows, so it stays small however many jobs have finished.
            models.Index(
                "device_type",
                models.F("priority").desc(),
                "id",
                name="job_queue_idx",
                condition=models.Q(status="queued"),
            ),
            # Every index costs each claim and each result an index write
            # (neither update is HOT), so beyond the foreign keys there are only
            # small partial ones: running jobs for the lease reaper, and below.
            models.Index(
                fields=["lease_expires_at"], name="job_running_lease_idx", condition=models.Q(status="running")
            ),
            # A user's queued jobs, counted (up to USER_MAX_QUEUED_JOBS) at each
            # submission. Only queued rows: written on insert and requeue, never
            # by a claim or a result (the new row version is not queued).
            models.Index(fields=["owner"], name="job_owner_queued_idx", condition=models.Q(status="queued")),
            # The last finished jobs of a type, newest first: their median run
            # time drives estimated_start (jobs.estimates). One entry per job
            # when it is done; claims and requeues never touch it.
            models.Index(
                "device_type",
                models.F("finished_at").desc(),
                name="job_done_recent_idx",
                condition=models.Q(status="done"),
            ),
        ]

    def __str__(self) -> str:
        return self.key


class SlowReceiver(models.Model):
    """A callback receiver (scheme://host:port) whose last delivery timed out
    or could not connect. Until ``until`` no delivery calls it: they are
    rescheduled without using an attempt, so one slow receiver costs the
    delivery workers one timeout, not one per pending delivery. In the
    database because several django-q2 workers in several processes share it.
    """

    receiver = models.CharField(max_length=300, unique=True)
    since = models.DateTimeField(help_text="First failure of the current slow spell.")
    until = models.DateTimeField(help_text="No call before this; then one delivery probes.")

    def __str__(self) -> str:
        return self.receiver


# Queue counters are kept at four levels of job-id blocks: level i counts the
# queued jobs per block of 2**QUEUE_LEVEL_SHIFTS[i] ids (1,024, 32,768, about a
# million, and one block for every id: the priority's total). Fixed by
# migration 0010 (its trigger and backfill compute the same blocks): change
# both together, with a rebuild (``manage.py queue_counters --rebuild``).
QUEUE_LEVEL_SHIFTS = (10, 15, 20, 62)
QUEUE_BUCKET_SHIFT = QUEUE_LEVEL_SHIFTS[0]


class QueueCounter(models.Model):
    """How many queued jobs there are per (device type, priority, block of
    ids), at four block sizes, so an exact queue position is a sum of a few
    dozen counters plus a count within one 1,024-id block, however deep the
    queue (``jobs.selectors.job_queue_position``): the totals of the higher
    priorities, then at each level the blocks before the job's inside the
    enclosing block of the level above.

    PostgreSQL only: kept exact by statement-level triggers on ``jobs_job``
    (migration 0010), in the same transaction as the change that queued or
    unqueued the jobs, so no application statement has to remember it. On
    SQLite (development, small queues) the table stays empty and positions
    are counted directly. ``n`` may rest at 0 (an emptied block); such rows
    are pruned by ``manage.py queue_counters --prune``.
    """

    pk = models.CompositePrimaryKey("device_type", "level", "priority", "bucket", "slot")
    device_type = models.CharField(max_length=100)
    level = models.SmallIntegerField(help_text="index into QUEUE_LEVEL_SHIFTS")
    priority = models.IntegerField()
    bucket = models.BigIntegerField(help_text="job id >> QUEUE_LEVEL_SHIFTS[level]")
    # Concurrent claimers of a type all take the head of its queue: keyed by
    # the writing backend too, they update different rows instead of waiting
    # for each other's commits. A block's count is the sum of its slots.
    slot = models.SmallIntegerField(default=0, help_text="the writer's backend pid % 8")
    n = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.device_type} L{self.level} p{self.priority} b{self.bucket} s{self.slot}: {self.n}"
