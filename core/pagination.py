"""Pages of the API's lists.

Every list but the jobs' is ``?limit=&offset=`` with a total ``count``. The
jobs table holds millions of rows, so its pages are keyset ("cursor") pages:
no COUNT, no OFFSET; each page is one index range read after the last row
of the previous one, whatever the page number. Bad paging input is a 400
naming the parameter (never silently the first page: a client looping on
``next`` must not loop forever).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1


def single_value(params, name: str) -> str | None:
    """The one value of a query parameter; given twice is a 400 naming it
    (which value would win is not the client's guess to make)."""
    values = params.getlist(name)
    if len(values) > 1:
        raise ValidationError({name: ["Give this parameter at most once."]})
    return values[0] if values else None


def non_empty_params(params, names) -> dict[str, str]:
    """The given parameters, each at most once and not empty (an empty value
    is not the enum or integer the schema promises: a 400 naming it)."""
    values = {}
    for name in names:
        value = single_value(params, name)
        if value == "":
            raise ValidationError({name: ["May not be empty; leave the parameter out instead."]})
        if value is not None:
            values[name] = value
    return values


def bounded_int(params, name: str, *, default: int, low: int, high: int) -> int:
    raw = non_empty_params(params, [name]).get(name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise ValidationError({name: ["A valid integer is required."]}) from None
    if not low <= value <= high:
        raise ValidationError({name: [f"Must be between {low} and {high}."]})
    return value


class Pagination(LimitOffsetPagination):
    """``?limit=`` (1 to 1,000, default 100) and ``?offset=`` (0 or more)."""

    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request):
        return bounded_int(request.query_params, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)

    def get_offset(self, request):
        return bounded_int(request.query_params, "offset", default=0, low=0, high=MAX_OFFSET)

    def get_schema_operation_parameters(self, view):
        return [
            _int_param("limit", f"Rows per page: 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).", 1, MAX_LIMIT),
            _int_param("offset", "Rows to skip (default 0).", 0, MAX_OFFSET),
        ]


def _int_param(name: str, description: str, low: int, high: int) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": low, "maximum": high},
    }


class KeysetPagination(BasePagination):
    """``?limit=`` (1 to 1,000) and ``?cursor=`` (opaque, from ``next``).

    The view gives a queryset ordered by ``order_by_for(ordering)``: one
    column and the id. The cursor carries the ordering and the last row's
    (column value, id); the next page is the rows strictly after it, so rows
    inserted or removed meanwhile neither repeat nor skip others. Pages go
    forward only; the answer is ``{"next", "results"}``.

    A page needs the ordering, which DRF's ``paginate_queryset(queryset,
    request, view)`` cannot pass, so the view calls ``paginate_ordered``.
    """

    def paginate_ordered(
        self, queryset: QuerySet, request: Request, *, ordering: str, order_by: tuple[str, str]
    ) -> list:
        self.request, self.ordering, self.order_by = request, ordering, order_by
        limit = bounded_int(request.query_params, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        if request.query_params.get("offset") is not None:
            raise ValidationError({"offset": ["Job lists are paged with `cursor` (follow `next`), not `offset`."]})
        cursor = self._decode(single_value(request.query_params, "cursor"))
        if cursor is not None:
            queryset = queryset.filter(self._after(*cursor))
        rows = list(queryset[: limit + 1])
        self.has_next = len(rows) > limit
        self.page = rows[:limit]
        return self.page

    def _column(self) -> str:
        return self.order_by[0].lstrip("-")

    def _after(self, value, last_id: int):
        from django.db.models import Q

        column_desc = self.order_by[0].startswith("-")
        id_desc = self.order_by[1].startswith("-")
        id_after = Q(id__lt=last_id) if id_desc else Q(id__gt=last_id)
        if self._column() == "id":
            return id_after
        column = self._column()
        beyond = Q(**{f"{column}__lt" if column_desc else f"{column}__gt": value})
        return beyond | (Q(**{column: value}) & id_after)

    def _decode(self, raw: str | None):
        if raw is None:
            return None
        # An empty `?cursor=` is no cursor a page ever gave (the schema's pattern says so).
        if not raw or len(raw) > 1000 or not raw.isascii():
            raise ValidationError({"cursor": ["Invalid cursor: use the `next` link of a previous page."]})
        try:
            data = json.loads(base64.urlsafe_b64decode(raw.encode("ascii") + b"=" * (-len(raw) % 4)))
            ordering, value, last_id = data["o"], data["v"], data["i"]
        except (ValueError, UnicodeError, binascii.Error, KeyError, TypeError):
            raise ValidationError({"cursor": ["Invalid cursor: use the `next` link of a previous page."]}) from None
        if ordering != self.ordering:
            raise ValidationError({"cursor": ["This cursor belongs to another `ordering`: keep the one it came with."]})
        expected = int if self._column() in ("id", "priority") else str
        if type(last_id) is not int or type(value) is not expected or (isinstance(value, str) and "\x00" in value):
            raise ValidationError({"cursor": ["Invalid cursor: use the `next` link of a previous page."]})
        return value, last_id

    def _encode(self, row) -> str:
        value = getattr(row, self._column())
        payload = json.dumps({"o": self.ordering, "v": value, "i": row.pk}, separators=(",", ":"))
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, "cursor", self._encode(self.page[-1]))

    def get_paginated_response(self, data):
        return Response(OrderedDict([("next", self.get_next_link()), ("results", data)]))

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "The next page (same filters and ordering); null on the last page.",
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            _int_param("limit", f"Rows per page: 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).", 1, MAX_LIMIT),
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "Opaque position from a previous page's `next`; absent for the first page.",
                "schema": {"type": "string", "maxLength": 1000, "pattern": "^[A-Za-z0-9_-]+$"},
            },
        ]
