"""A fast lane in front of Django for the API's hottest calls.

Why: ``GET /jobs/<id>`` is what every client polls, and ``POST /jobs`` what
every client submits with. Through Django's middleware, URL resolver and
DRF's view machinery (request wrapping, content negotiation, parsers,
permission and throttle hooks, response rendering) each cost about twice the
CPU of the work itself - the token, one or two prepared statements, the
answer's JSON - in a process whose threads share one GIL
(docs/benchmarks.md).

What it does: a WSGI wrapper around Django's application. A request that a
route accepts *exactly as its happy path* - the right method and path, no
query string, a ``Token`` header, JSON acceptable, a host in ALLOWED_HOSTS,
no cookie, and a handler that finds the token's active user allowed to do
what it asks - is answered by the route's handler with the bytes the DRF
view would have sent. Everything else, and every request the handler
declines (an unknown token, someone else's job, a body the serializer would
refuse, a taken id, any error before a write), goes to Django unchanged
(a body the handler read is put back), which answers it as it always did.
So the lane never has to produce an error answer for the client's mistakes,
and an answer it gives is tested to be byte-for-byte the full stack's
(``tests/core/test_fastlane.py``).

One exception, for writes: a handler that may already have written raises
``NotRepeatable`` on an unexpected error, and the lane answers it as Django
answers an unhandled error in a view (a 500, logged, ``got_request_exception``
sent) rather than passing the request on to be executed a second time.

Kept identical on purpose, by calling Django's own code:
- the security headers, through the response phase of ``SecurityMiddleware``
  and ``XFrameOptionsMiddleware`` (and the request phase's HTTPS redirect:
  a request it would redirect is left to Django);
- ``request_started`` / ``request_finished``, so database connections age
  and are closed as for any request. One difference: with CONN_HEALTH_CHECKS
  Django checks a connection (``SELECT 1``, one more round trip) before each
  request's first statement; the lane checks only a connection that has been
  idle (no lane request on it for ``HEALTH_CHECK_IDLE_SECONDS``), where a
  dead one would be found - a connection that was answering a moment ago is
  used as it is. Should one die in between all the same, a read fails and
  its request goes to Django (which checks and reconnects), and a write is
  answered with an error, as when the database fails during any request;
- the request log line (``core.logs.log_request``).

``API_FAST_LANE=false`` turns it off (every request through Django).
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest, get_path_info
from django.db import connections
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

# A connection the lane used less than this long ago is not health-checked
# again (see the module docstring); kept on the connection's wrapper.
HEALTH_CHECK_IDLE_SECONDS = 1.0
_USED_AT = "_fastlane_used_at"


@dataclass(frozen=True)
class Answer:
    """A handler's answer: the rendered body, the headers DRF adds, the user
    it was for (for the log line) and the status (200, or 201 for a write)."""

    body: bytes
    headers: dict[str, str]
    username: str
    status: int = 200


class NotRepeatable(Exception):
    """Raised by a handler, from the original error, once it may have
    written: the lane answers that error itself (as Django answers an error
    in a view) instead of passing the request on, so the write is never
    carried out twice."""


# handler(token key, WSGI environ, **path groups) -> Answer, or None to leave
# the request to Django. The handler authenticates the token itself and must
# decline whatever the full stack would not answer with success; one that
# reads the body uses ``json_body``, which leaves it readable for Django.
Handler = Callable[..., "Answer | None"]


@dataclass(frozen=True)
class Route:
    method: str
    path: re.Pattern[str]
    handler: Handler


def _no_view(request):  # the middlewares' get_response; never called
    raise AssertionError("the fast lane runs middleware hooks only")


def json_body(environ, *, max_bytes: int) -> bytes | None:
    """The body of a request labelled exactly ``application/json`` (so DRF
    would parse it as UTF-8 JSON) with a length of 1 to ``max_bytes``; None
    otherwise. What it read is put back as the request's input, so a
    request declined afterwards reaches Django with its body whole."""
    if environ.get("CONTENT_TYPE") != "application/json":
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= max_bytes:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body if len(body) == length else None


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
        # On a copy: WSGIRequest rewrites PATH_INFO in the environ it is given
        # (to the decoded path), and a declined request reaches Django with
        # the environ exactly as the server made it.
        request = WSGIRequest(dict(environ))
        # Made per request (they read their settings when made; a few microseconds).
        security, xframe = SecurityMiddleware(_no_view), XFrameOptionsMiddleware(_no_view)
        if security.process_request(request) is not None:  # an HTTPS redirect: Django's to send
            return None
        signals.request_started.send(sender=self.__class__, environ=environ)
        _check_only_idle_connections()
        try:
            try:
                answer = self._run(route, match, header[len("Token ") :], environ)
            except NotRepeatable as exc:
                error = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
                response, body, username = response_for_exception(request, error), None, "-"
            else:
                if answer is None:
                    return None
                response = HttpResponse(answer.body, status=answer.status, content_type="application/json")
                for name, value in answer.headers.items():
                    response[name] = value
                body, username = answer.body, answer.username or "-"
            response = xframe.process_response(request, security.process_response(request, response))
            body = response.content if body is None else body
            response["Content-Length"] = str(len(body))
            start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
            log_request(
                method=route.method,
                path=path,
                full_path=path,
                status=response.status_code,
                ms=round((time.perf_counter() - started) * 1000, 1),
                user=username,
            )
            return [body]
        finally:
            _note_connections_used()
            signals.request_finished.send(sender=self.__class__)

    @staticmethod
    def _run(route: Route, match: re.Match, token: str, environ) -> Answer | None:
        try:
            return route.handler(token, environ, **match.groupdict())
        except NotRepeatable:
            raise
        except Exception:  # noqa: BLE001 - Django answers it, and its handling reports the error
            logger.debug("fast lane declined after an error; Django answers", exc_info=True)
            return None


def _check_only_idle_connections() -> None:
    """Mark this thread's connections used by a lane request less than
    HEALTH_CHECK_IDLE_SECONDS ago as checked for this request (see the
    module docstring); the others get Django's check before their first
    statement."""
    now = time.monotonic()
    for db in connections.all(initialized_only=True):
        if now - db.__dict__.get(_USED_AT, float("-inf")) < HEALTH_CHECK_IDLE_SECONDS:
            db.health_check_done = True  # type: ignore[attr-defined]


def _note_connections_used() -> None:
    now = time.monotonic()
    for db in connections.all(initialized_only=True):
        if db.connection is not None:
            db.__dict__[_USED_AT] = now


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
