"""End to end: `manage.py serve` keeps answering the API while 1,000 clients
hold connections open after sending half a request line (slowloris), and
closes those connections itself once they idle past its channel timeout.

The service runs as a subprocess (as in test_serve_e2e.py) on a SQLite file
of its own: what is under test is the HTTP server, which is the same on
either database. The timeout of 5 s on the API call is the failure bound,
not a speed check (docs/benchmarks.md has the measured latencies).
"""

from __future__ import annotations

import time

import pytest
import requests

from config.connection_bench import open_half_open, wait_closed
from config.http_server import raise_fd_limit
from tests.e2e_helpers import ServeProcess, create_user_tokens, manage, service_env

HALF_OPEN = 1000
CHANNEL_TIMEOUT = 15  # the flood is still in place when the first call is answered (bound: 5 s)


@pytest.mark.slow
def test_api_answers_during_a_half_open_flood_which_the_server_then_closes(tmp_path):
    if raise_fd_limit(wanted=HALF_OPEN + 500).soft < HALF_OPEN + 200:
        pytest.skip("the open-files limit of this machine is too low to hold 1,000 connections")
    env = service_env(
        f"sqlite:///{tmp_path / 'flood.sqlite3'}",
        SECRET_KEY="some-test-key",
        DEBUG="1",
        HTTP_CHANNEL_TIMEOUT_SECONDS=str(CHANNEL_TIMEOUT),
        HTTP_CLEANUP_INTERVAL_SECONDS="1",
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    token = create_user_tokens(env, ("flood-alice", False))["flood-alice"]
    service = ServeProcess(env, tmp_path / "serve.log")
    socks = []
    try:
        service.start()
        socks = open_half_open(host="127.0.0.1", port=service.port, count=HALF_OPEN, until=time.monotonic() + 60)
        assert len(socks) == HALF_OPEN

        for i in range(3):  # a new client each time: it has to get past accept() too
            r = requests.get(
                service.base + "/devices", timeout=5, headers={"Authorization": f"Token {token}", "Connection": "close"}
            )
            assert r.status_code == 200, r.text
            if i == 0:  # the flood was in place while it was answered: none closed yet
                assert wait_closed(socks, timeout=0) == (0, None)

        closed, _ = wait_closed(socks, timeout=CHANNEL_TIMEOUT + 60)
        assert closed == HALF_OPEN, f"the server closed {closed} of {HALF_OPEN} idle half-open connections"
        r = requests.get(service.base + "/devices", timeout=5, headers={"Authorization": f"Token {token}"})
        assert r.status_code == 200, r.text
        log = service.log()
        assert "Traceback" not in log and "out of range" not in log, log
    finally:
        for sock in socks:
            sock.close()
        service.kill()
        print(f"---- serve log ({service.log_path}) ----\n{service.log()[-20000:]}")  # shown when the test fails
