"""Log lines an operator can read or a log pipeline can parse.

``RequestLogMiddleware`` writes one line per HTTP request (method, path,
status, milliseconds, user) on the ``http.request`` logger; health probes go
at DEBUG so they do not drown the rest. ``JsonFormatter`` (``LOG_FORMAT=json``)
turns every record into one JSON object per line, with the request fields as
keys of their own.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

from django.utils.functional import empty

request_logger = logging.getLogger("http.request")

QUIET_PATHS = ("/healthz", "/readyz", "/metrics")
# Extra keys a record may carry that the JSON form promotes to fields.
FIELDS = (
    "method",
    "path",
    "status",
    "ms",
    "user",
    "exam",
    "vm",
    "job",
    "device",
    # job lifecycle (jobs.lifecycle) and VM calls (vms.scheduler)
    "event",
    "program",
    "count",
    "attempt",
    "reason",
    "uuid",
    "from_exam",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _username(request) -> str:
    """The user the request ran as, without loading one just for the log
    (an anonymous health probe must not cost a session query)."""
    user = request.__dict__.get("user")
    if user is None:
        return "-"
    wrapped = getattr(user, "_wrapped", user)  # django's lazy request.user
    if wrapped is empty:
        return "-"
    return getattr(wrapped, "username", "") or "-"


def log_request(*, method: str, path: str, full_path: str, status: int, ms: float, user: str) -> None:
    """The one line per HTTP request (also written by ``core.fastlane``)."""
    level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
    if not request_logger.isEnabledFor(level):
        return
    request_logger.log(
        level,
        "%s %s %s %.1fms user=%s",
        method,
        full_path[:500],
        status,
        ms,
        user,
        extra={"method": method, "path": path[:500], "status": status, "ms": ms, "user": user},
    )


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        log_request(
            method=request.method,
            path=request.path,
            full_path=request.get_full_path(),
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
            user=_username(request),
        )
        return response
