"""The HTTP device client against the simulated HTTP QPU, and the device's
side of the pool protocol against a live scheduler."""

from __future__ import annotations

import threading

import pytest

from devices.clients import DeviceBusy, DeviceError, DeviceRef, HttpQPU, JobPayload, SimulatedQPU, client_for
from devices.simulator import SchedulerLink, SimulatedDeviceServer
from tests.factories import make_token


@pytest.fixture
def qpu():
    servers = []

    def make(**kwargs):
        kwargs.setdefault("device_id", "http-1")
        kwargs.setdefault("size", 5)
        kwargs.setdefault("seconds", 0)
        server = SimulatedDeviceServer(**kwargs)
        server.serve_in_thread()
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


def ref(server, size=5):
    return DeviceRef(id=server.device_id, type="analog", size=size, address=server.address)


def test_http_client_returns_one_bitstring_per_shot_of_device_size(qpu):
    server = qpu()
    result = HttpQPU(timeout=5).run(device=ref(server), job=JobPayload(key="j1", instructions=[{"op": "h"}], shots=3))
    assert len(result) == 3 and all(len(b) == 5 and set(b) <= {"0", "1"} for b in result)


def test_http_client_reports_device_faults_and_timeouts(qpu):
    failing = qpu(fail_rate=1.0)
    with pytest.raises(DeviceError, match="HTTP 500"):
        HttpQPU(timeout=5).run(device=ref(failing), job=JobPayload(key="j", instructions=[], shots=1))
    slow = qpu(device_id="slow", seconds=2)
    with pytest.raises(DeviceError, match="timed out"):
        HttpQPU(timeout=0.2).run(device=ref(slow), job=JobPayload(key="j", instructions=[], shots=1))
    with pytest.raises(DeviceError, match="connection failed"):
        HttpQPU(timeout=1).run(
            device=DeviceRef(id="x", type="a", size=1, address="http://127.0.0.1:9"),
            job=JobPayload(key="j", instructions=[], shots=1),
        )


def test_simulated_device_runs_one_job_at_a_time(qpu):
    server = qpu(seconds=0.5)
    errors = []

    def call():
        try:
            HttpQPU(timeout=5).run(device=ref(server), job=JobPayload(key="j", instructions=[], shots=1))
        except DeviceBusy as exc:  # HTTP 409: handed back, not a failed attempt
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1 and "busy" in errors[0]


def test_wrong_size_answer_is_rejected(qpu):
    server = qpu(size=3)
    with pytest.raises(DeviceError, match="expected 5 bits"):
        HttpQPU(timeout=5).run(device=ref(server, size=5), job=JobPayload(key="j", instructions=[], shots=1))


def test_client_choice_follows_the_address():
    assert isinstance(client_for(DeviceRef(id="a", type="t", size=1, address="https://qpu.lab/x")), HttpQPU)
    assert isinstance(client_for(DeviceRef(id="a", type="t", size=1, address="localhost:5001")), SimulatedQPU)


@pytest.mark.django_db(transaction=True)
def test_simulated_device_registers_heartbeats_and_leaves(qpu, live_server, staff_user):
    from devices.models import Device

    token = make_token(staff_user)
    server = qpu(device_id="sim-http-7")
    link = SchedulerLink(scheduler_url=live_server.url, token=token)
    assert link.register(device_id="sim-http-7", address=server.address, type="analog", size=5).status_code in (
        200,
        201,
    )
    device = Device.objects.get(pk="sim-http-7")
    assert device.address == server.address and device.status == "online"
    assert link.heartbeat(device_id="sim-http-7").status_code == 200
    assert Device.objects.get(pk="sim-http-7").last_seen_at >= device.last_seen_at
    assert link.unregister(device_id="sim-http-7").status_code in (200, 204)
    assert not Device.objects.filter(pk="sim-http-7").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["http://", "ftp://qpu.lab", "https:///nohost"])
def test_registering_a_broken_url_address_is_a_400_naming_address(staff_api, address):
    from devices.models import Device

    r = staff_api.post("/devices", {"id": "bad", "address": address, "type": "a", "size": 2}, format="json")
    assert r.status_code == 400 and "address" in r.json()
    assert not Device.objects.exists()


@pytest.mark.django_db
def test_invalid_utf8_in_a_curl_style_body_is_a_400(staff_api):
    r = staff_api.generic(
        "POST", "/devices", b'{"id": "d\xff", "type": "a", "size": 2}', content_type="application/x-www-form-urlencoded"
    )
    assert r.status_code == 400


@pytest.mark.django_db
def test_list_pages_are_capped_at_1000_rows(staff_api):
    from django.utils import timezone

    from devices.models import Device

    now = timezone.now()
    Device.objects.bulk_create(
        [Device(id=f"d{i}", type="a", size=1, registered_at=now, last_seen_at=now) for i in range(1005)]
    )
    # Above the cap is a 400 naming `limit` (the schema says 1 to 1,000), not a silent cap.
    r = staff_api.get("/devices?limit=100000")
    assert r.status_code == 400 and "limit" in r.json()
    r = staff_api.get("/devices?limit=1000")
    assert r.status_code == 200 and r.json()["count"] == 1005 and len(r.json()["results"]) == 1000


@pytest.mark.django_db
def test_nan_in_a_curl_style_program_is_a_400_not_a_500(api):
    r = api.generic(
        "POST",
        "/programs",
        '{"priority": 1, "device_type": "a", "jobs": [{"instructions": [NaN]}]}',
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 400
    from jobs.models import Program

    assert not Program.objects.exists()
