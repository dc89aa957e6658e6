"""Rate limit on submissions (POST /programs, POST /jobs), per user.

DRF's ``UserRateThrottle`` (a sliding window kept in the default cache), with
the rate read from ``settings.THROTTLE_SUBMIT_RATE`` at each request so an
empty value turns it off (benchmarks) and tests can change it. The window
lets a client send the whole allowance at once (a burst) and then one
request per freed slot. Only POSTs count: reading your jobs is never limited.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.throttling import UserRateThrottle

# Set in a request's WSGI environ by the API's fast lane (``jobs.fastlane``)
# once it has counted the request against this limit, before it passes the
# request on to Django (to answer a taken id, say): counted once, not twice.
# No client can set it: a WSGI server puts request headers into the environ
# under HTTP_* names only.
COUNTED_BY_LANE = "qpu.submit_throttle_counted"


class SubmitRateThrottle(UserRateThrottle):
    scope = "submit"

    def get_rate(self) -> str | None:
        return settings.THROTTLE_SUBMIT_RATE or None

    def allow_request(self, request, view) -> bool:
        if request.method != "POST" or request.META.get(COUNTED_BY_LANE):
            return True
        if super().allow_request(request, view):
            return True
        # Raised here rather than returning False so the 429 names the limit;
        # DRF adds the Retry-After header and the seconds to wait.
        raise Throttled(
            wait=self.wait(),
            detail=f"Submission rate limit reached: THROTTLE_SUBMIT_RATE={self.rate} per user.",
        )


def lane_submit_allowed(*, user_id: int, environ) -> bool:
    """The fast lane's check, DRF's own (``SubmitRateThrottle``): True counts
    the request and marks its environ so (``COUNTED_BY_LANE``); False (the
    limit is reached) counts nothing, and the request, passed on to Django,
    is refused there with DRF's 429 and Retry-After."""
    user = SimpleNamespace(pk=user_id, is_authenticated=True)  # all DRF's throttle reads of a user
    request = SimpleNamespace(method="POST", user=user, META=environ)
    try:
        SubmitRateThrottle().allow_request(request, None)
    except Throttled:
        return False
    environ[COUNTED_BY_LANE] = True
    return True
