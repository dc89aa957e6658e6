"""The API's fast lane routes (``core.fastlane``): the happy paths of
``GET /jobs/<id>`` (``jobs.views.JobDetailView``) and ``POST /jobs``
(``jobs.views.JobListView.post``), answered without Django's middleware and
DRF's view machinery. The same services, selectors and output function as the
views, so only the plumbing differs; whatever is not the happy path is
declined and answered by the views themselves.

A submission is declined, before anything is written, unless: the body is
JSON that ``jobs.serializers.job_submit_values`` accepts as it is (the
serializer's rules, narrowed), the token's user is active, and the
submission rate limit allows it (DRF's own throttle, counted once whichever
door answers: ``core.throttling.COUNTED_BY_LANE``). The token is checked by
the statement that writes (``jobs.services.job_submit_by_token``: one round
trip); with the rate limit on, the user it charges is the one the token was
last seen with (``_TokenOwners``), read first when the token is new to this
process. A refusal by the submission service (a taken id, a program that
does not match, a fair-use limit) is also passed on: it wrote nothing, and
the view refuses the same request in the same words. Any other error once
the service has been called is answered here (``NotRepeatable``): the job
may exist, so it must not be submitted a second time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.renderers import JSONRenderer

from core.exceptions import DomainError
from core.fastlane import Answer, NotRepeatable, Route, json_body
from core.parsers import loads as json_loads
from core.throttling import lane_submit_allowed
from jobs import selectors, services
from jobs.models import Job
from jobs.serializers import job_detail_data, job_submit_arguments, job_submit_values

# Larger submissions (big instructions) take the view: reading them is not
# what the lane saves time on.
MAX_BODY_BYTES = 64 * 1024

_renderer = JSONRenderer()
# What DRF adds to the views' answers (their allowed methods, its negotiation).
_DETAIL_HEADERS = {"Allow": "GET, HEAD, OPTIONS", "Vary": "Accept"}
_LIST_HEADERS = {"Allow": "GET, POST, HEAD, OPTIONS", "Vary": "Accept"}


def job_detail(token: str, environ, *, job_id: str) -> Answer | None:
    found = selectors.job_get_detail_by_token(token=token, key=job_id)
    if found is None:
        return None
    username, job = found
    return Answer(body=_renderer.render(job_detail_data(job)), headers=_DETAIL_HEADERS, username=username)


def job_submit(token: str, environ) -> Answer | None:
    values = _submission(environ)
    if values is None:
        return None
    known = _token_owners.get(token)
    if (known is None and settings.THROTTLE_SUBMIT_RATE) or (known is not None and _capped(known)):
        # The user first: the rate limit counts per user before anything is
        # written (a token new to this process), or the submission needs the
        # queued-jobs cap's transaction, which the one statement leaves alone.
        found = selectors.submitter_by_token(token=token, device_type=values["device_type"])
        if found is None:
            return None
        _token_owners.remember(token, found[0])
        if not lane_submit_allowed(user_id=found[0].pk, environ=environ):
            return None
        submit: Callable[..., Job | None] = partial(services.job_submit, owner=found[0], devices=found[1])
    else:
        if known is not None and not lane_submit_allowed(user_id=known.id, environ=environ):
            return None
        submit = partial(services.job_submit_by_token, token=token)
    try:
        job = submit(**job_submit_arguments(values))
        if job is None:  # no active user has this token: nothing written
            return None
        data = _renderer.render(job_detail_data(job))
    except DomainError:
        return None  # nothing written: the view refuses it in its own words
    except Exception as exc:
        raise NotRepeatable from exc  # the job may exist: never submitted twice
    _token_owners.remember(token, job.owner)
    return Answer(body=data, headers=_LIST_HEADERS, username=job.owner.get_username(), status=201)


def _submission(environ) -> dict | None:
    """The body's values when the serializer would take them as they are."""
    body = json_body(environ, max_bytes=MAX_BODY_BYTES)
    if body is None:
        return None
    try:
        return job_submit_values(json_loads(body.decode("utf-8")))
    except (UnicodeDecodeError, ParseError):
        return None


@dataclass(frozen=True, slots=True)
class _Owner:
    id: int
    is_staff: bool


class _TokenOwners:
    """Which user an API key belongs to, as last read (bounded): the user
    the rate limit charges before the statement that authenticates the key
    and writes runs, and whether that statement can write for them. A key's
    user never changes (a new key is a new token); the statement still
    refuses a key whose user is gone or inactive, and the submission
    service judges the user as it is now, whatever was remembered."""

    LIMIT = 10_000

    def __init__(self):
        self._owners: dict[str, _Owner] = {}

    def get(self, token: str) -> _Owner | None:
        return self._owners.get(token)

    def remember(self, token: str, user) -> None:
        if len(self._owners) >= self.LIMIT:
            self._owners.clear()
        self._owners[token] = _Owner(id=user.pk, is_staff=user.is_staff)


def _capped(owner: _Owner) -> bool:
    """The queued-jobs cap applies (``jobs.limits.queued_cap_applies``)."""
    return settings.USER_MAX_QUEUED_JOBS > 0 and not owner.is_staff


_token_owners = _TokenOwners()


# The views' URLs (jobs/urls.py: "jobs" and "jobs/<str:job_id>", mounted at the root).
ROUTES = [
    Route("GET", re.compile(r"/jobs/(?P<job_id>[^/]+)"), job_detail),
    Route("POST", re.compile(r"/jobs"), job_submit),
]
