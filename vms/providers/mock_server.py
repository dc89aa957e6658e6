"""``MockCloudServer``: a ``FakeProvider`` behind the HTTP routes ``HttpProvider`` speaks.

What ``manage.py run_mock_cloud`` serves, and what the HTTP tests talk to: the
exact provider model, reachable over the network, so the scheduler's HTTP
path (status codes, ``Retry-After``, 404 on an unknown VM) is exercised
against the same model the simulation judges by.

Routes: ``POST /start`` -> 200 ``{"id"}``; ``POST /stop/<uuid>`` -> 204;
429 with ``{"retry_after"}`` and ``Retry-After`` when rate limited; 404 for an
unknown VM; ``GET /vms`` (snapshot and every VM), ``GET /health`` (snapshot).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from vms.exceptions import RateLimitExceeded, UnknownVM
from vms.providers.fake import FakeProvider

__all__ = ["MockCloudServer"]

logger = logging.getLogger(__name__)


class _MockCloudHandler(BaseHTTPRequestHandler):
    server: MockCloudServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._drain_body()
        path = urlsplit(self.path).path
        provider = self.server.provider
        try:
            if path.rstrip("/") == "/start":
                self._json(HTTPStatus.OK, {"id": provider.start()})
            elif path.startswith("/stop/") and len(path) > len("/stop/"):
                provider.stop(unquote(path[len("/stop/") :]))
                self._reply(HTTPStatus.NO_CONTENT, b"", None)
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such route: POST {path}"})
        except RateLimitExceeded as exc:
            self._json(
                HTTPStatus.TOO_MANY_REQUESTS,
                {"error": str(exc), "retry_after": exc.retry_after},
                extra={"Retry-After": str(max(1, round(exc.retry_after or 1)))},
            )
        except UnknownVM as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except Exception as exc:  # a bug in the fake must not hang the client
            logger.exception("mock cloud: %s failed", path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {exc}"})

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path.rstrip("/")
        provider = self.server.provider
        if path == "/vms":
            self._json(HTTPStatus.OK, {**provider.snapshot(), "vms": provider.vms()})
        elif path in ("", "/health"):
            self._json(HTTPStatus.OK, provider.snapshot())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such route: GET {path}"})

    def _drain_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > 0:
            self.rfile.read(min(length, 1 << 20))

    def _json(self, status: HTTPStatus, payload: dict, extra: dict | None = None) -> None:
        self._reply(status, json.dumps(payload).encode(), "application/json", extra)

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str | None, extra: dict | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("mock cloud %s - %s", self.address_string(), format % args)


class MockCloudServer(ThreadingHTTPServer):
    """A FakeProvider behind the HTTP routes ``HttpProvider`` speaks.

    ``MockCloudServer(("127.0.0.1", 0), provider)`` picks a free port
    (``server.port``); run ``serve_forever()`` in a thread, ``shutdown()`` to stop.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], provider: FakeProvider):
        self.provider = provider
        super().__init__(address, _MockCloudHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]  # typed str | bytes (other address families); text for AF_INET
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{self.port}"
