"""Errors of the cloud-provider seam.

The two provider errors differ in what the caller may conclude, which is what
crash-safe bookkeeping needs:

* ``RateLimitExceeded``: the provider refused the call before doing anything.
  The call had no effect; retry it later (``retry_after`` says when a slot frees).
* ``ProviderError``: anything else went wrong (HTTP 5xx, timeout, connection
  lost). ``may_have_taken_effect`` says whether the provider could have acted
  anyway (a timeout after the request was sent: a start may have created a VM
  whose id we never saw). ``UnknownVM`` is the one definite answer: the
  provider does not know that VM, so nothing happened.

They are ``DomainError``s so that, should one ever escape through an API view,
the client gets a 429/502/404 instead of a 500.
"""

from __future__ import annotations

from rest_framework import status

from core.exceptions import DomainError


class RateLimitExceeded(DomainError):
    """The endpoint refused the call (rate limit); the call had no effect."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, message: str = "rate limit exceeded", *, endpoint: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.endpoint = endpoint
        # Seconds until the endpoint accepts a call again, when the provider says.
        self.retry_after = retry_after


class ProviderError(DomainError):
    """Any other provider failure (HTTP 5xx, timeout, network error)."""

    status_code: int = status.HTTP_502_BAD_GATEWAY

    def __init__(self, message: str, *, may_have_taken_effect: bool = True, unreachable: bool = False):
        super().__init__(message)
        self.may_have_taken_effect = may_have_taken_effect and not unreachable
        # The request certainly never reached the provider (connection
        # refused, DNS, connect timeout): no effect, and nothing counted
        # toward its rate limit - worth retrying within about a second.
        self.unreachable = unreachable


class UnknownVM(ProviderError):
    """stop() of a VM id the provider never handed out: nothing happened."""

    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, vm_id: str):
        super().__init__(f"unknown VM {vm_id!r}", may_have_taken_effect=False)
        self.vm_id = vm_id
