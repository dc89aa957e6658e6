"""schemathesis hooks: the cross-field rules of exams that OpenAPI cannot
state (``end`` after ``start``, both within the years 2000 to 2100 UTC; the
API documents them in words and answers a 400 naming the field).

Generated exam bodies whose dates parse are moved into that window, so the
"schema-valid request rejected" check tests the other fields instead of
tripping on a rule it cannot know. Bodies that are invalid anyway (a date
that is not a date, a number for a string) are left alone. Used by the
test suite and by the full-budget command in docs/api.md:
``SCHEMATHESIS_HOOKS=tests.api_conventions.st_hooks st run ...``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import schemathesis

EXAM_BODIES = {("POST", "/exams"), ("PUT", "/exams/{id}"), ("PATCH", "/exams/{id}")}
SUBMISSIONS = {("POST", "/jobs"), ("POST", "/programs")}


def priority_within_the_ceiling(body):
    """The priority ceiling depends on who asks (USER_MAX_PRIORITY for
    ordinary users, none for staff; docs/security.md), which OpenAPI cannot
    state: generated priorities above it are folded below it, so both tokens
    may send the same body. The ceiling has its own tests (tests/security)."""
    from django.conf import settings

    ceiling = settings.USER_MAX_PRIORITY
    if isinstance(body, dict) and isinstance(body.get("priority"), int) and not isinstance(body["priority"], bool):
        if body["priority"] > ceiling:
            body["priority"] = body["priority"] % (ceiling + 1)
    return body


PREVIEW = ("POST", "/exams/preview")


def _parse(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def exam_dates_in_window(body):
    if not isinstance(body, dict):
        return body
    start, end = _parse(body.get("start")), _parse(body.get("end"))
    if start is None or end is None:
        # A PATCH may carry one date: it would be checked against the stored
        # other one, so it is left out (the date rules have their own tests).
        for name, value in (("start", start), ("end", end)):
            if value is not None:
                body.pop(name)
        return body
    start = start.astimezone(timezone.utc)
    start = start.replace(year=2030 + start.year % 50, month=1, day=min(start.day, 28))
    length = min(max(end - start if end > start else timedelta(hours=1), timedelta(minutes=1)), timedelta(days=30))
    body["start"] = start.isoformat()
    body["end"] = (start + length).isoformat()
    return body


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    where = (operation.method.upper(), operation.path) if operation is not None else None
    if where in EXAM_BODIES:
        return exam_dates_in_window(body)
    if where in SUBMISSIONS:
        return priority_within_the_ceiling(body)
    if where == PREVIEW and isinstance(body, dict) and isinstance(body.get("changes"), list):
        for change in body["changes"]:
            if isinstance(change, dict):
                exam_dates_in_window(change.get("exam"))
    return body


@schemathesis.hook
def map_query(context, query):
    """A job list ``cursor`` is only ever one the API issued (in ``next``),
    like a token: a generated one is refused with a 400 (tested in
    tests/api_conventions), so it is left out."""
    operation = context.operation
    if operation is not None and operation.path == "/jobs" and isinstance(query, dict):
        query.pop("cursor", None)
    return query
