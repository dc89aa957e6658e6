"""Fair use of the queue: how high a user may prioritise, how much one user
may have queued. Called by ``jobs.services`` on every path that queues work.

Staff are exempt from both (operators, benchmarks); the priority ceiling is
also lifted by the ``jobs.high_priority`` permission, which an operator can
grant a user or group in the admin.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model

from jobs.exceptions import PriorityTooHigh, QueuedJobsLimit
from jobs.models import Job, JobStatus

HIGH_PRIORITY_PERMISSION = "jobs.high_priority"


def check_priority(*, user, priority: int) -> None:
    """400 naming ``priority`` when it is above what ``user`` may ask for."""
    ceiling = settings.USER_MAX_PRIORITY
    if priority <= ceiling or user.is_staff or user.has_perm(HIGH_PRIORITY_PERMISSION):
        return
    raise PriorityTooHigh(
        f"Ensure this value is less than or equal to {ceiling} (USER_MAX_PRIORITY); higher priorities "
        f"need the {HIGH_PRIORITY_PERMISSION} permission.",
        field="priority",
    )


def queued_jobs_of(*, user_id: int, limit: int) -> int:
    """The user's queued jobs, counted up to ``limit`` only.

    ``SELECT count(*) FROM (SELECT id ... LIMIT n)`` over the partial index
    ``job_owner_queued_idx``: it reads at most ``limit`` index entries of this
    user's queued jobs, however many jobs others queued or this user finished.
    """
    return Job.objects.filter(owner_id=user_id, status=JobStatus.QUEUED).order_by().values("pk")[:limit].count()


def _lock_user(user_id: int) -> None:
    """Hold the user's row until the transaction ends (a no-op on SQLite)."""
    users = get_user_model().objects.select_for_update(no_key=True).filter(pk=user_id)
    list(users.values_list("pk", flat=True))


def queued_cap_applies(user) -> bool:
    """Whether ``check_queued_cap`` has anything to check (and so needs a
    transaction) for this user: staff and a disabled cap skip it."""
    return settings.USER_MAX_QUEUED_JOBS > 0 and not user.is_staff


def check_queued_cap(*, user, adding: int) -> None:
    """429 when queueing ``adding`` more jobs would take ``user`` above
    USER_MAX_QUEUED_JOBS. Call inside the submission's transaction.

    The user's row is locked first (FOR NO KEY UPDATE on PostgreSQL; SQLite
    transactions are serialised anyway), so two submissions by the same user
    are counted one after the other and never overshoot together. Other
    users never wait on it, and the jobs' foreign-key checks (KEY SHARE) do
    not conflict with it.
    """
    cap = settings.USER_MAX_QUEUED_JOBS
    if not queued_cap_applies(user):
        return
    if adding > cap:
        raise QueuedJobsLimit(
            f"At most {cap} queued jobs per user (USER_MAX_QUEUED_JOBS); this submission alone has {adding}."
        )
    _lock_user(user.pk)
    queued = queued_jobs_of(user_id=user.pk, limit=cap)
    if queued + adding > cap:
        have = f"at least {queued}" if queued == cap else str(queued)
        raise QueuedJobsLimit(
            f"At most {cap} queued jobs per user (USER_MAX_QUEUED_JOBS): you have {have} queued and this "
            f"submission adds {adding}. Wait for some to finish, or cancel some."
        )
