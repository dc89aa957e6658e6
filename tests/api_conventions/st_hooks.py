"""schemathesis hooks: the rules OpenAPI cannot state, applied to every
generated *positive* case (one meant to be valid), in every phase (``map_case``
runs in the coverage phase too, where the per-operation settings of
schemathesis.toml do not reach):

- exams: ``end`` after ``start``, both within the years 2000 to 2100 UTC;
- submissions: the priority ceiling that depends on who asks, a result
  within RESULT_MAX_BITS (device size x shots), and a callback URL that the
  public-address policy and Django's URL check accept;
- a job-list ``cursor`` is only ever one the API issued;
- ``POST /api/token/``: the right username and password cannot be generated;
  with ST_LOGIN_USERNAME and ST_LOGIN_PASSWORD set, positive cases use them
  (the login then succeeds), else they are left out.

The API documents each rule in words and answers a 400 naming the field
(tested in the suite). Negative cases (meant to violate the schema) are left
alone: they must still be refused. Used by the test suite and by the
full-budget command in docs/api.md:
``SCHEMATHESIS_HOOKS=tests.api_conventions.st_hooks st run ...``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import django
import schemathesis
from django.conf import settings as django_settings
from schemathesis.generation import GenerationMode

if not django_settings.configured:  # the `st` command line: read the service's settings
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()

EXAM_BODIES = {("POST", "/exams"), ("PUT", "/exams/{id}"), ("PATCH", "/exams/{id}")}
SUBMISSIONS = {("POST", "/jobs"), ("POST", "/programs")}


def priority_within_the_ceiling(body):
    """The priority ceiling depends on who asks (USER_MAX_PRIORITY for
    ordinary users, none for staff; docs/security.md), which OpenAPI cannot
    state: generated priorities above it are folded below it, so both tokens
    may send the same body. The ceiling has its own tests (tests/security)."""
    ceiling = django_settings.USER_MAX_PRIORITY
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


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def result_within_the_cap(job):
    """``size x shots`` must stay within RESULT_MAX_BITS on some device the job
    may run on (size >= min_size, at most DEVICE_MAX_SIZE): a ``min_size``
    above any device is folded below DEVICE_MAX_SIZE, and ``shots`` below
    what the largest device allows."""
    if not isinstance(job, dict):
        return job
    largest = django_settings.DEVICE_MAX_SIZE
    if _int(job.get("min_size")) and job["min_size"] > largest:
        job["min_size"] = job["min_size"] % largest + 1
    most_shots = max(1, django_settings.RESULT_MAX_BITS // largest)
    if _int(job.get("shots")) and job["shots"] > most_shots:
        job["shots"] = job["shots"] % most_shots + 1
    return job


PUBLIC_CALLBACK = "https://example.com/hooks/qpu"


def callback_usable(body):
    """Callbacks go to public addresses only (resolved now and again at each
    delivery; docs/security.md) and must pass Django's URL check, which knows
    more than a pattern (a top-level domain...): a generated URL that would
    be refused is replaced by a public one. The policy has its own tests
    (tests/security/test_callback_urls.py)."""
    from django.core.exceptions import ValidationError
    from django.core.validators import URLValidator

    from core.outbound import callback_url_problem

    url = body.get("callback_url")
    if not isinstance(url, str) or not url:
        return
    try:
        URLValidator()(url)
        usable = callback_url_problem(url) is None
    except ValidationError:
        usable = False
    if not usable:
        body["callback_url"] = PUBLIC_CALLBACK


def submission(body):
    body = priority_within_the_ceiling(body)
    if isinstance(body, dict):
        callback_usable(body)
        result_within_the_cap(body)
        jobs = body.get("jobs")
        for job in jobs if isinstance(jobs, list) else []:
            result_within_the_cap(job)
    return body


def login(body):
    username, password = os.environ.get("ST_LOGIN_USERNAME"), os.environ.get("ST_LOGIN_PASSWORD")
    if isinstance(body, dict) and username and password:
        body["username"], body["password"] = username, password
    return body


def _where(case) -> tuple[str, str]:
    return case.operation.method.upper(), case.operation.path


@schemathesis.hook
def filter_case(context, case):
    """Without known credentials a positive login case cannot be made."""
    if _where(case) == ("POST", "/api/token/") and _positive(case):
        return bool(os.environ.get("ST_LOGIN_USERNAME") and os.environ.get("ST_LOGIN_PASSWORD"))
    return True


def _positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def map_case(context, case):
    if not _positive(case):
        return case
    where = _where(case)
    if where in EXAM_BODIES:
        case.body = exam_dates_in_window(case.body)
    elif where in SUBMISSIONS:
        case.body = submission(case.body)
    elif where == PREVIEW and isinstance(case.body, dict) and isinstance(case.body.get("changes"), list):
        for change in case.body["changes"]:
            if isinstance(change, dict):
                exam_dates_in_window(change.get("exam"))
    elif where == ("POST", "/api/token/"):
        case.body = login(case.body)
    elif where == ("GET", "/jobs") and isinstance(case.query, dict):
        # A cursor is only ever one the API issued (in ``next``), like a
        # token: a made-up one is a 400 (tested in tests/api_conventions).
        case.query.pop("cursor", None)
    return case
