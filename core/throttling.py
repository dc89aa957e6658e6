"""Rate limit on submissions (POST /programs, POST /jobs), per user.

DRF's ``UserRateThrottle`` (a sliding window kept in the default cache), with
the rate read from ``settings.THROTTLE_SUBMIT_RATE`` at each request so an
empty value turns it off (benchmarks) and tests can change it. The window
lets a client send the whole allowance at once (a burst) and then one
request per freed slot. Only POSTs count: reading your jobs is never limited.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.throttling import UserRateThrottle


class SubmitRateThrottle(UserRateThrottle):
    scope = "submit"

    def get_rate(self) -> str | None:
        return settings.THROTTLE_SUBMIT_RATE or None

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        if super().allow_request(request, view):
            return True
        # Raised here rather than returning False so the 429 names the limit;
        # DRF adds the Retry-After header and the seconds to wait.
        raise Throttled(
            wait=self.wait(),
            detail=f"Submission rate limit reached: THROTTLE_SUBMIT_RATE={self.rate} per user.",
        )
