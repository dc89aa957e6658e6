"""The provider's rate limit: at most R accepted calls per endpoint in any rolling second.

A call at ``t`` is refused when R calls of that endpoint were accepted in
``(t - 1 s, t]``; a refused call has no effect and does not count. One
``RateWindow`` per endpoint (start and stop are limited separately). Its own
module because the rule is the model's second, independent constraint, and
its boundary (the half-open window) is easy to get wrong when mixed in.
"""

from __future__ import annotations

from collections import deque

from vms.providers.instants import SECOND

__all__ = ["RateWindow"]


class RateWindow:
    """Accepted calls of one endpoint in the rolling window ``(t - 1 s, t]``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.accepted: deque[int] = deque()

    def refusal(self, t: int) -> int | None:
        """None when a call at ``t`` is accepted, else microseconds until one would be."""
        accepted = self.accepted
        while accepted and accepted[0] <= t - SECOND:
            accepted.popleft()
        if len(accepted) >= self.limit:
            return accepted[0] + SECOND - t
        return None

    def record(self, t: int) -> None:
        self.accepted.append(t)
