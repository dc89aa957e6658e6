from core.exceptions import Conflict, DomainError, NotFound

__all__ = ["DomainError", "NotFound", "Conflict", "ExamNotFound", "ExamIdTaken"]


class ExamNotFound(NotFound):
    pass


class ExamIdTaken(Conflict):
    """An explicit id on create that another exam already has (409, field ``id``)."""
