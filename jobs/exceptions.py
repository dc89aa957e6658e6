from config.exceptions import Conflict, DomainError, NotFound

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
    a well-formed request this user may not make (403, ``priority``)."""

    status_code = 403


class QueuedJobsLimit(DomainError):
    """The submission would take the user above USER_MAX_QUEUED_JOBS (429)."""

    status_code = 429
