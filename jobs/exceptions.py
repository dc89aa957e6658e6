from config.exceptions import Conflict, DomainError, NotFound

__all__ = ["DomainError", "NotFound", "Conflict", "JobNotFound", "ProgramNotFound", "JobNotCancellable"]


class JobNotFound(NotFound):
    pass


class ProgramNotFound(NotFound):
    pass


class JobNotCancellable(Conflict):
    pass
