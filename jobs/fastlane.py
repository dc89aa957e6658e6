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
door answers: ``core.throttling.COUNTED_BY_LANE``). A refusal by the
submission service (a taken id, a program that does not match, a fair-use
limit) is also passed on: it wrote nothing, and the view refuses the same
request in the same words. Any other error once the service has been called
is answered here (``NotRepeatable``): the job may exist, so it must not be
submitted a second time.
"""

from __future__ import annotations

import re

from rest_framework.exceptions import ParseError
from rest_framework.renderers import JSONRenderer

from core.exceptions import DomainError
from core.fastlane import Answer, NotRepeatable, Route, json_body
from core.parsers import loads as json_loads
from core.throttling import lane_submit_allowed
from jobs import selectors, services
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
    body = json_body(environ, max_bytes=MAX_BODY_BYTES)
    if body is None:
        return None
    try:
        values = job_submit_values(json_loads(body.decode("utf-8")))
    except (UnicodeDecodeError, ParseError):
        return None
    if values is None:
        return None
    found = selectors.submitter_by_token(token=token, device_type=values["device_type"])
    if found is None:
        return None
    user, devices = found
    if not lane_submit_allowed(user=user, environ=environ):
        return None
    try:
        job = services.job_submit(owner=user, devices=devices, **job_submit_arguments(values))
        data = _renderer.render(job_detail_data(job))
    except DomainError:
        return None  # nothing written: the view refuses it in its own words
    except Exception as exc:
        raise NotRepeatable from exc  # the job may exist: never submitted twice
    return Answer(body=data, headers=_LIST_HEADERS, username=user.get_username(), status=201)


# The views' URLs (jobs/urls.py: "jobs" and "jobs/<str:job_id>", mounted at the root).
ROUTES = [
    Route("GET", re.compile(r"/jobs/(?P<job_id>[^/]+)"), job_detail),
    Route("POST", re.compile(r"/jobs"), job_submit),
]
