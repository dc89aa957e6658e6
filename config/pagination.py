from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """``?limit=&offset=``; a page holds at most 1,000 rows so one request
    cannot pull a million-job queue at once."""

    default_limit = 100
    max_limit = 1000
