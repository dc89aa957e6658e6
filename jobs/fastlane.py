"""``GET /jobs/<id>`` on the fast lane (``core.fastlane``): the happy path of
``jobs.views.JobDetailView``, answered without Django's middleware and DRF's
view machinery. The same selector and the same output function as the view,
so only the plumbing differs; anything but "this user's (or, for staff, any)
job exists" is declined and answered by the view itself."""

from __future__ import annotations

import re

from rest_framework.renderers import JSONRenderer

from core.fastlane import Answer, Route
from jobs import selectors
from jobs.serializers import job_detail_data

_renderer = JSONRenderer()
# What DRF adds to the view's answers (its allowed methods, its negotiation).
_HEADERS = {"Allow": "GET, HEAD, OPTIONS", "Vary": "Accept"}


def job_detail(token: str, *, job_id: str) -> Answer | None:
    found = selectors.job_get_detail_by_token(token=token, key=job_id)
    if found is None:
        return None
    username, job = found
    return Answer(body=_renderer.render(job_detail_data(job)), headers=_HEADERS, username=username)


# The view's URL (jobs/urls.py: "jobs/<str:job_id>", mounted at the root).
ROUTES = [Route("GET", re.compile(r"/jobs/(?P<job_id>[^/]+)"), job_detail)]
