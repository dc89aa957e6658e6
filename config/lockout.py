"""Login lockout glue for django-axes: which address a login comes from, and
what a locked-out client is told.

django-axes counts wrong passwords per username + client address (settings:
"Login lockout"). These two callables are named in settings
(``AXES_CLIENT_IP_CALLABLE``, ``AXES_LOCKOUT_CALLABLE``) so that every login
path (admin, browsable API, ``POST /api/token/``) answers a lockout the same
way: 429 with a message naming the limit and a ``Retry-After``.
"""

from __future__ import annotations

import ipaddress
import math

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The peer address, or behind ``LOGIN_PROXY_COUNT`` trusted proxies the
    entry that many places from the right of X-Forwarded-For (the left part
    is written by the client and proves nothing). A malformed value falls
    back to the peer address: it must never reach axes' IP column."""
    remote = _valid_ip(request.META.get("REMOTE_ADDR") or "")
    hops = settings.LOGIN_PROXY_COUNT
    if hops > 0:
        forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return _valid_ip(forwarded[-hops]) or remote
    return remote


def lockout_message() -> str:
    minutes = settings.AXES_COOLOFF_MINUTES
    return (
        f"Too many failed logins for this account from this address: locked out for "
        f"{minutes:g} minutes (AXES_FAILURE_LIMIT={settings.AXES_FAILURE_LIMIT} failures, "
        f"AXES_COOLOFF_MINUTES={minutes:g})."
    )


def retry_after_seconds() -> int:
    return max(1, math.ceil(settings.AXES_COOLOFF_MINUTES * 60))


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """429 for a locked-out login: a small HTML page for a browser form (admin,
    /api-auth/login/), JSON for API clients."""
    message = lockout_message()
    if "text/html" in request.headers.get("Accept", ""):
        response = HttpResponse(
            f"<!doctype html><title>Login locked</title><h1>Login locked</h1><p>{escape(message)}</p>",
            status=429,
        )
    else:
        response = JsonResponse({"detail": message}, status=429)
    response["Retry-After"] = str(retry_after_seconds())
    return response
