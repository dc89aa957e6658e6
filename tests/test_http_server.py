"""The HTTP server `serve` builds (config/http_server.py), run in-process on a
loopback port with a tiny WSGI app: the connection limit and the open-files
limit, the poll loop past descriptor 1024, batch accepts, and which peers
may set X-Forwarded-Proto/-For."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from config.connection_bench import open_half_open, wait_closed
from config.http_server import FD_RESERVE, create_http_server, effective_connection_limit, raise_fd_limit


def echo_app(environ, start_response):
    body = json.dumps(
        {
            "scheme": environ["wsgi.url_scheme"],
            "remote": environ["REMOTE_ADDR"],
            "forwarded_proto": environ.get("HTTP_X_FORWARDED_PROTO"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class RunningServer:
    """The server's loop in a thread, stopped between turns (never closed
    under a running loop), every socket closed afterwards."""

    def __init__(self, server):
        from waitress import wasyncore

        self.server, self.wasyncore = server, wasyncore
        self.base = f"http://127.0.0.1:{server.effective_port}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop.is_set():
            self.wasyncore.loop(timeout=0.05, map=self.server._map, use_poll=self.server.adj.asyncore_use_poll, count=1)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()
        self.wasyncore.close_all(self.server._map)


@pytest.fixture
def running(settings):
    started = []

    def start(**overrides):
        for name, value in overrides.items():
            setattr(settings, name, value)
        running = RunningServer(create_http_server(echo_app, host="127.0.0.1", port=0, threads=2))
        started.append(running)
        return running

    yield start
    for running in started:
        running.close()


def test_connection_limit_never_exceeds_the_open_files_limit():
    assert effective_connection_limit(requested=10_000, fd_soft=1024) == 1024 - FD_RESERVE
    assert effective_connection_limit(requested=500, fd_soft=100_000) == 500
    assert effective_connection_limit(requested=10_000, fd_soft=10) == 1


def test_open_files_soft_limit_is_raised_up_to_the_hard_limit():
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip(f"hard open-files limit {hard} too low to lower and raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    try:
        limit = raise_fd_limit(wanted=600)
        assert (limit.soft, limit.raised_from) == (600, 512)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 600
        if hard != resource.RLIM_INFINITY:
            assert raise_fd_limit(wanted=hard + 1000).soft == hard  # never past the hard limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_answers_with_1100_half_open_connections_held(running):
    """This process holds both ends, so the server's descriptors go past
    1024: a select() loop would die there, and waitress's default limit of
    100 connections would leave the request waiting in the backlog."""
    limit = raise_fd_limit(wanted=4000)
    if limit.soft < 3000:
        pytest.skip(f"open-files limit {limit.soft} too low for this test")
    server = running(HTTP_CONNECTION_LIMIT=2000)
    socks = []
    try:
        socks = open_half_open(host="127.0.0.1", port=server.server.effective_port, count=1100, until=float("inf"))
        assert len(socks) == 1100
        for _ in range(3):
            r = requests.get(server.base + "/", timeout=5, headers={"Connection": "close"})
            assert r.status_code == 200 and r.json()["scheme"] == "http"
        assert server.thread.is_alive()
    finally:
        for sock in socks:
            sock.close()


def test_proxy_headers_are_dropped_unless_from_the_trusted_proxy(running):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    untrusted = running(HTTP_TRUSTED_PROXY="")
    body = requests.get(untrusted.base + "/", headers=headers, timeout=5).json()
    assert body == {"scheme": "http", "remote": "127.0.0.1", "forwarded_proto": None}

    other = running(HTTP_TRUSTED_PROXY="192.0.2.1")  # a proxy, but not the peer we connect from
    body = requests.get(other.base + "/", headers=headers, timeout=5).json()
    assert body == {"scheme": "http", "remote": "127.0.0.1", "forwarded_proto": None}

    trusted = running(HTTP_TRUSTED_PROXY="127.0.0.1")
    body = requests.get(trusted.base + "/", headers=headers, timeout=5).json()
    assert body == {"scheme": "https", "remote": "203.0.113.9", "forwarded_proto": "https"}


def test_serve_on_a_name_with_two_addresses_reports_its_port(settings):
    """``--host localhost`` may listen on 127.0.0.1 and ::1: one port, both."""
    try:
        socket.getaddrinfo("localhost", 0, family=socket.AF_INET6)
    except socket.gaierror:
        pytest.skip("no IPv6 localhost here")
    port = _free_port_on_both()
    server = create_http_server(echo_app, host="localhost", port=port, threads=1)
    try:
        assert server.effective_port in (port, str(port))
    finally:
        server.close()


def _free_port_on_both() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return s.getsockname()[1]


def test_a_trickling_request_is_dropped_at_its_read_deadline_while_others_are_served(running):
    """A byte every 0.2 s is never idle for the channel timeout (30 s); the
    request read deadline (2 s here) still closes the connection."""
    server = running(HTTP_REQUEST_READ_TIMEOUT_SECONDS=2, HTTP_CLEANUP_INTERVAL_SECONDS=1)
    trickler = socket.create_connection(("127.0.0.1", int(server.server.effective_port)), timeout=5)
    try:
        started = time.monotonic()
        closed = 0
        for byte in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 150:  # never completes; 30 s at most
            try:
                trickler.sendall(bytes([byte]))
            except OSError:
                closed = 1  # reset: closed already
            closed = closed or wait_closed([trickler], timeout=0.2)[0]
            if closed:
                break
            assert requests.get(server.base + "/", timeout=5).status_code == 200
        assert closed, "a request trickled for 30 s was still being read"
        assert time.monotonic() - started >= 2  # and not before its deadline
    finally:
        trickler.close()


def test_a_stop_lets_the_request_in_progress_finish_and_its_answer_go_out(settings):
    """Ctrl-C while a request runs: the loop has ended, ``stop_gracefully``
    accepts nothing new, turns the loop until the answer is written, then
    closes (waitress's close() would close the socket under the running
    request: no answer, and EBADF in the thread)."""
    from waitress import wasyncore

    from config.http_server import stop_gracefully

    entered, release = threading.Event(), threading.Event()
    body = b"x" * (16 * 1024 * 1024)  # more than the socket buffers: the loop must write the rest

    def slow_app(environ, start_response):
        entered.set()
        release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    server = create_http_server(slow_app, host="127.0.0.1", port=0, threads=2)
    loop = RunningServer(server)
    answers: list = []
    client = threading.Thread(target=lambda: answers.append(requests.get(f"{loop.base}/slow", timeout=15)))
    client.start()
    try:
        assert entered.wait(20)
        loop.stop.set()  # the serving loop ends, as on Ctrl-C, with the request still running
        loop.thread.join(timeout=10)
        threading.Timer(0.3, release.set).start()  # the request finishes during the stop
        assert stop_gracefully(server, grace=20) is True
        client.join(timeout=20)
        assert [(a.status_code, len(a.content)) for a in answers] == [(200, len(body))]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{loop.base}/again", timeout=5)
    finally:
        release.set()
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)
