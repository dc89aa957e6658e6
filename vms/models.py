"""What the VM scheduler records: one row per VM it asked for, one per call it made.

Crash safety rests on the order of writes (see ``vms.services``): the VM row
exists (state ``requesting``) *before* ``start()`` is called, the call log
row carrying the provider's uuid is written right after it returns, and a
stop is marked ``stopping`` before ``stop()`` is called. A scheduler that
restarts after a crash at any moment therefore finds every VM the provider
may hold, except during the single start call in flight (see docs/vms.md).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from exams.models import Exam


class VMState(models.TextChoices):
    REQUESTING = "requesting", "requesting (start call in flight)"
    WAITING = "waiting", "waiting (in the provider's allocation queue)"
    READY = "ready", "ready"
    STOPPING = "stopping", "stopping (stop call pending)"
    STOPPED = "stopped", "stopped"
    # The start call was refused (rate limit, definite error): no VM exists.
    FAILED = "failed", "failed (start refused, no VM)"
    # The start call's outcome is unknown (crash or timeout before the answer
    # was recorded): the provider may hold a VM we cannot name, use or stop.
    LOST = "lost", "lost (start outcome unknown)"
    # The provider answered 404 for it: it no longer knows this VM (it may
    # have been lost or reclaimed). Not ready, not ours to stop: gone.
    GONE = "gone", "gone (unknown to the provider)"


# States in which the provider holds (or may hold) the VM and we can act on it.
ALIVE_STATES = (VMState.REQUESTING, VMState.WAITING, VMState.READY, VMState.STOPPING)


class VM(models.Model):
    id = models.BigAutoField(primary_key=True)
    # The provider's id; empty until start() has answered.
    uuid = models.CharField(max_length=64, null=True, blank=True, unique=True)
    # The exam the VM is for now (a fresh VM may be re-bound); NULL once that
    # exam is deleted. ``exam_ref`` keeps the id for history and reports.
    exam = models.ForeignKey(Exam, null=True, blank=True, on_delete=models.SET_NULL, related_name="vms")
    exam_ref = models.IntegerField(null=True, blank=True, help_text="Id of the exam the VM was last bound to.")
    state = models.CharField(max_length=12, choices=VMState.choices, default=VMState.REQUESTING)
    requested_at = models.DateTimeField()
    # Expected (FIFO model) while waiting, then when it became ready.
    ready_at = models.DateTimeField(null=True, blank=True)
    # Its exam started while it was bound: a student may use it, never re-bind.
    used_at = models.DateTimeField(null=True, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = "VM"
        ordering = ["requested_at", "id"]
        indexes = [
            # The loop loads live VMs on every (re)start and exam change.
            models.Index(fields=["state", "requested_at"], name="vm_alive_idx", condition=Q(state__in=ALIVE_STATES)),
            # /vms?exam=&state= and the per-exam counts of the admin and plan.
            models.Index(fields=["exam", "state"], name="vm_exam_state_idx"),
            models.Index(fields=["exam_ref", "state"], name="vm_examref_state_idx"),
        ]

    def __str__(self) -> str:
        return f"VM {self.uuid or '#' + str(self.id)} ({self.state})"


class CallEndpoint(models.TextChoices):
    START = "start"
    STOP = "stop"
    # Not a provider call: a fresh VM re-bound to another exam. Logged with the
    # calls so the log tells the whole story of every VM.
    ASSIGN = "assign"


class CallOutcome(models.TextChoices):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"


class ProviderCall(models.Model):
    id = models.BigAutoField(primary_key=True)
    t = models.DateTimeField(help_text="When the call was made (millisecond precision or better).")
    endpoint = models.CharField(max_length=8, choices=CallEndpoint.choices)
    vm = models.ForeignKey(VM, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls")
    # Copied so the log survives the VM row and stays readable on its own.
    vm_uuid = models.CharField(max_length=64, null=True, blank=True)
    exam_ref = models.IntegerField(null=True, blank=True, help_text="Exam id the call was for.")
    outcome = models.CharField(max_length=14, choices=CallOutcome.choices)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["t", "id"]
        indexes = [
            models.Index(fields=["t", "id"], name="providercall_t_idx"),
            # crash recovery: the start call of a VM still marked requesting
            models.Index(fields=["vm", "endpoint"], name="providercall_vm_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.t:%Y-%m-%d %H:%M:%S.%f} {self.endpoint} {self.vm_uuid or '-'} {self.outcome}"


class ExamPlanSummary(models.Model):
    """The VM scheduler's latest plan for one exam, as the readers show it.

    Written by the scheduler when it (re)plans, only for exams whose figures
    changed, so the admin and ``GET /exams/<id>/plan`` never run the planner.
    One row per exam of the latest plan (exams over and without live VMs, or
    deleted, have none). No foreign key: the row is the scheduler's record,
    and the simulation empties the exams table under it inside its rolled-back
    transaction. ``start``/``end``/``students`` are the inputs the figures
    were planned for: an exam edited since reads as stale until the next pass.
    """

    exam_id = models.IntegerField(primary_key=True)
    planned_at = models.DateTimeField(help_text="When the scheduler computed these figures.")
    start = models.DateTimeField()
    end = models.DateTimeField()
    students = models.IntegerField()
    started = models.BooleanField()
    expected_ready_at_start = models.IntegerField()
    shortfall = models.IntegerField()
    late_planned = models.IntegerField()
    planned_requests = models.IntegerField()
    requesting_starts_at = models.DateTimeField(null=True)
    last_late_ready_at = models.DateTimeField(null=True)
    shortfall_note = models.TextField(blank=True, default="")
    # [[first_request_ms, count, interval_ms, first_ready_ms, last_ready_ms, late], ...]
    runs = models.JSONField(default=list)
    # planned ready VMs over time, thinned: [[t_ms, ready], ...]; the first point is planned_at
    timeline = models.JSONField(default=list)

    class Meta:
        verbose_name = "exam plan summary"

    def __str__(self) -> str:
        return f"plan of exam {self.exam_id} at {self.planned_at:%Y-%m-%d %H:%M:%S}"
