"""HttpProvider against the mock cloud (a FakeProvider served over HTTP), and the command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from django.core.management import CommandError, call_command

from vms.clock import VirtualClock
from vms.exceptions import ProviderError, RateLimitExceeded, UnknownVM
from vms.providers.fake import FakeProvider
from vms.providers.http import HttpProvider
from vms.providers.mock_server import MockCloudServer

T0 = datetime(2030, 5, 1, 9, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def cloud(clock):
    """A mock cloud on a free port whose fake runs on a virtual clock (deterministic rate limits)."""
    fake = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3)
    server = MockCloudServer(("127.0.0.1", 0), fake)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_start_and_stop_over_http(cloud, clock):
    provider = HttpProvider(cloud.url)
    vm = provider.start()
    assert cloud.provider.vm_state(vm) == "allocating"
    clock.advance_to(T0 + timedelta(seconds=6))
    assert cloud.provider.vm_state(vm) == "ready"
    provider.stop(vm)
    assert cloud.provider.vm_state(vm) == "stopped"
    provider.stop(vm)  # stopping again is harmless
    assert cloud.provider.snapshot()["stopped"] == 1


def test_429_becomes_rate_limit_exceeded(cloud, clock):
    provider = HttpProvider(cloud.url)
    vms = [provider.start() for _ in range(3)]
    clock.advance_to(T0 + timedelta(seconds=0.75))
    with pytest.raises(RateLimitExceeded) as excinfo:
        provider.start()
    assert excinfo.value.retry_after == pytest.approx(0.25)
    assert cloud.provider.snapshot()["total"] == 3  # the refused call did nothing
    for vm in vms:
        provider.stop(vm)
    with pytest.raises(RateLimitExceeded):
        provider.stop(vms[0])
    clock.advance_to(T0 + timedelta(seconds=1))
    assert provider.start() not in vms


def test_stop_of_an_unknown_vm_is_404(cloud):
    with pytest.raises(UnknownVM) as excinfo:
        HttpProvider(cloud.url).stop("not/a real id")
    assert excinfo.value.may_have_taken_effect is False


def test_get_vms_lists_the_snapshot_and_every_vm(cloud, clock):
    provider = HttpProvider(cloud.url)
    first, second = provider.start(), provider.start()
    clock.advance_to(T0 + timedelta(seconds=7))
    body = requests.get(cloud.url + "/vms", timeout=5).json()
    assert body["total"] == 2 and body["ready"] == 1 and body["allocating"] == 1
    states = {vm["id"]: vm["state"] for vm in body["vms"]}
    assert states == {first: "ready", second: "allocating"}
    assert requests.post(cloud.url + "/nowhere", timeout=5).status_code == 404
    assert requests.get(cloud.url + "/nowhere", timeout=5).status_code == 404


# --- failures of the provider -------------------------------------------------------


class _ScriptedHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        status, body, delay = self.server.script
        time.sleep(delay)
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    """An HTTP server answering every POST with (status, body) after a delay."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ScriptedHandler)
    server.daemon_threads = True
    server.script = (200, "{}", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_5xx_is_a_provider_error_that_may_have_happened(scripted):
    scripted.script = (503, "overloaded", 0)
    with pytest.raises(ProviderError) as excinfo:
        HttpProvider(_url(scripted)).start()
    assert not isinstance(excinfo.value, RateLimitExceeded)
    assert excinfo.value.may_have_taken_effect is True
    assert "503" in str(excinfo.value)


def test_malformed_start_answer_is_a_provider_error(scripted):
    scripted.script = (200, json.dumps({"vm": "x"}), 0)
    with pytest.raises(ProviderError, match="without a VM id"):
        HttpProvider(_url(scripted)).start()
    scripted.script = (200, "not json", 0)
    with pytest.raises(ProviderError, match="without a VM id"):
        HttpProvider(_url(scripted)).start()


def test_other_4xx_is_a_provider_error_that_did_not_happen(scripted):
    scripted.script = (400, "bad request", 0)
    with pytest.raises(ProviderError) as excinfo:
        HttpProvider(_url(scripted)).stop("vm-1")
    assert excinfo.value.may_have_taken_effect is False
    assert excinfo.value.unreachable is False  # it reached the provider (and may count toward its limit)


def test_429_without_a_json_body_uses_retry_after_header_or_nothing(scripted):
    scripted.script = (429, "slow down", 0)
    with pytest.raises(RateLimitExceeded) as excinfo:
        HttpProvider(_url(scripted)).start()
    assert excinfo.value.retry_after is None


def test_timeout_is_a_provider_error_that_may_have_happened(scripted):
    scripted.script = (200, json.dumps({"id": "late"}), 1.0)
    with pytest.raises(ProviderError) as excinfo:
        HttpProvider(_url(scripted), timeout=0.2).start()
    assert excinfo.value.may_have_taken_effect is True


def test_refused_connection_is_a_provider_error_that_did_not_happen():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProviderError) as excinfo:
        HttpProvider(f"http://127.0.0.1:{port}", timeout=2).start()
    assert excinfo.value.may_have_taken_effect is False
    assert excinfo.value.unreachable is True  # the scheduler retries it within a second


# --- the command --------------------------------------------------------------------


def test_command_refuses_bad_settings():
    with pytest.raises(CommandError, match="requests_per_second"):
        call_command("run_mock_cloud", "--port", "0", "--rps", "0")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_command_serves_until_signalled(sig):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_mock_cloud", "--port", "0", "--allocation-interval", "0.5", "--rps", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "Mock cloud listening on http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split(" on ", 1)[1].split()[0]
        provider = HttpProvider(url)
        vm = provider.start()
        started, refused = 1, False
        # the --rps 2 from the command line: rapid calls soon hit the limit
        for _ in range(50):
            try:
                provider.start()
                started += 1
            except RateLimitExceeded:
                refused = True
                break
        assert refused
        provider.stop(vm)
        body = requests.get(url + "/vms", timeout=5).json()
        assert body["allocation_interval_s"] == 0.5 and body["requests_per_second"] == 2
        assert {v["id"]: v["state"] for v in body["vms"]}[vm] == "stopped"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert f"Mock cloud stopped: {started} VMs started, 1 stopped" in out
