from core.exceptions import Conflict, DomainError, NotFound

__all__ = [
    "DomainError",
    "NotFound",
    "Conflict",
    "JobNotFound",
    "ProgramNotFound",
    "JobNotCancellable",
    "DuplicateId",
    "ProgramMismatch",
    "PriorityTooHigh",
    "QueuedJobsLimit",
    "NoDeviceCanRun",
]


class JobNotFound(NotFound):
    pass


class ProgramNotFound(NotFound):
    pass


class JobNotCancellable(Conflict):
    """Only queued jobs can be cancelled (``field="status"``)."""


class DuplicateId(Conflict):
    """A client-given id is already taken by an existing job or program."""


class ProgramMismatch(DomainError):
    """A flat-form job does not fit the program it names (device type,
    priority or owner differ): a well-formed request that conflicts with
    what exists, so 409 naming the field, like a taken id."""

    status_code = 409


class PriorityTooHigh(DomainError):
    """Priority above USER_MAX_PRIORITY for a user without the right to it:
    a 400 naming ``priority`` with the limit (docs/security.md: fair-use
    refusals are 400 or 429, each saying which limit and its value)."""

    status_code = 400


class QueuedJobsLimit(DomainError):
    """The submission would take the user above USER_MAX_QUEUED_JOBS (429)."""

    status_code = 429


class NoDeviceCanRun(Conflict):
    """?require_device=true and no registered device could run the job
    (none of its type, or all smaller than min_size): 409, nothing created."""
