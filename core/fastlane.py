"""A fast lane in front of Django for the API's hottest read.

Why: ``GET /jobs/<id>`` is what every client polls. Through Django's
middleware, URL resolver and DRF's view machinery (request wrapping, content
negotiation, permission and throttle hooks, response rendering) it cost about
twice the CPU of the work itself - the token, one prepared statement, the
answer's JSON - in a process whose threads share one GIL (docs/benchmarks.md).

What it does: a WSGI wrapper around Django's application. A request that a
route accepts *exactly as its happy path* - the right method and path, no
query string, a ``Token`` header, JSON acceptable, a host in ALLOWED_HOSTS,
no cookie, and a handler that finds the token's active user allowed to read
what it asks (token and read in one statement) - is answered by the route's
handler with the bytes the DRF view would have sent. Everything else, and every request the
handler declines (an unknown token, someone else's job, a missing one, any
error), goes to Django unchanged, which answers it as it always did. So the
lane never has to produce an error answer, and an answer it gives is tested
to be byte-for-byte the full stack's (``tests/core/test_fastlane.py``).

Kept identical on purpose, by calling Django's own code:
- the security headers, through the response phase of ``SecurityMiddleware``
  and ``XFrameOptionsMiddleware`` (and the request phase's HTTPS redirect:
  a request it would redirect is left to Django);
- ``request_started`` / ``request_finished``, so database connections age,
  are health-checked and closed as for any request;
- the request log line (``core.logs.log_request``).

``API_FAST_LANE=false`` turns it off (every request through Django).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIRequest, get_path_info
from django.http import HttpResponse
from django.http.request import split_domain_port, validate_host
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

from core.logs import log_request

logger = logging.getLogger(__name__)

# The Accept values that DRF's negotiation answers with JSON (its first
# renderer) for sure; anything else (text/html for the browsable API,
# a list with weights) is left to DRF.
JSON_ACCEPT = frozenset(["", "*/*", "application/json"])


@dataclass(frozen=True)
class Answer:
    """A handler's 200 answer: the rendered body, the headers DRF adds, and
    the user it was for (for the log line)."""

    body: bytes
    headers: dict[str, str]
    username: str


# handler(token key, **path groups) -> Answer, or None to leave the request to
# Django. The handler authenticates the token itself (with its read, in one
# statement) and must decline whatever the full stack would not answer 200.
Handler = Callable[..., "Answer | None"]


@dataclass(frozen=True)
class Route:
    method: str
    path: re.Pattern[str]
    handler: Handler


def _no_view(request):  # the middlewares' get_response; never called
    raise AssertionError("the fast lane runs middleware hooks only")


class FastLane:
    def __init__(self, app, routes: list[Route]):
        self.app = app
        self.routes = routes

    def __call__(self, environ, start_response):
        route_and_match = self._route(environ) if settings.API_FAST_LANE else None
        if route_and_match is not None:
            answered = self._answer(environ, start_response, *route_and_match)
            if answered is not None:
                return answered
        return self.app(environ, start_response)

    def _route(self, environ):
        if environ.get("QUERY_STRING") or "HTTP_COOKIE" in environ:
            return None
        if environ.get("HTTP_ACCEPT", "") not in JSON_ACCEPT:
            return None
        method = environ.get("REQUEST_METHOD")
        path = get_path_info(environ)
        for route in self.routes:
            if route.method == method and (match := route.path.fullmatch(path)):
                return route, match, path
        return None

    def _answer(self, environ, start_response, route: Route, match: re.Match, path: str):
        started = time.perf_counter()
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Token ") or not _host_allowed(environ):
            return None
        request = WSGIRequest(environ)
        # Made per request (they read their settings when made; a few microseconds).
        security, xframe = SecurityMiddleware(_no_view), XFrameOptionsMiddleware(_no_view)
        if security.process_request(request) is not None:  # an HTTPS redirect: Django's to send
            return None
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            answer = self._run(route, match, header[len("Token ") :])
            if answer is None:
                return None
            response = HttpResponse(answer.body, content_type="application/json")
            for name, value in answer.headers.items():
                response[name] = value
            response = xframe.process_response(request, security.process_response(request, response))
            response["Content-Length"] = str(len(answer.body))
            start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
            log_request(
                method=route.method,
                path=path,
                full_path=path,
                status=response.status_code,
                ms=round((time.perf_counter() - started) * 1000, 1),
                user=answer.username or "-",
            )
            return [answer.body]
        finally:
            signals.request_finished.send(sender=self.__class__)

    @staticmethod
    def _run(route: Route, match: re.Match, token: str) -> Answer | None:
        try:
            return route.handler(token, **match.groupdict())
        except Exception:  # noqa: BLE001 - Django answers it, and its handling reports the error
            logger.debug("fast lane declined after an error; Django answers", exc_info=True)
            return None


def _host_allowed(environ) -> bool:
    """Django's ALLOWED_HOSTS check on the Host header. A request whose host
    Django would take from elsewhere (X-Forwarded-Host) is declined."""
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in environ:
        return False
    host = environ.get("HTTP_HOST", "")
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)
