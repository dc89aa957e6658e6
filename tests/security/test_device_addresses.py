"""Device addresses: http(s) URLs in any letter case are real devices (stored
with a lowercase scheme), other schemes and broken URLs are a 400, plain
labels are the simulator; targets devices may never have are refused at
registration when literal and at every call after resolution."""

from __future__ import annotations

import pytest

from devices.clients import DeviceError, DeviceRef, HttpQPU, JobPayload, SimulatedQPU, client_for
from devices.models import Device

pytestmark = pytest.mark.django_db


def register(api, address):
    return api.post("/devices", {"id": "qpu-1", "address": address, "type": "analog", "size": 2}, format="json")


@pytest.mark.parametrize(
    "given, stored",
    [
        ("HTTP://10.0.0.5:9000", "http://10.0.0.5:9000"),
        ("HtTpS://qpu.lab.example/base", "https://qpu.lab.example/base"),
        ("http://127.0.0.1:9101", "http://127.0.0.1:9101"),
        ("http://[::1]:9101", "http://[::1]:9101"),
        ("addr1", "addr1"),
        ("sim", "sim"),
        ("localhost:5001", "localhost:5001"),
    ],
)
def test_http_urls_in_any_case_are_devices_and_labels_the_simulator(staff_api, given, stored):
    assert register(staff_api, given).status_code == 201
    device = Device.objects.get()
    assert device.address == stored
    ref = DeviceRef(id=device.id, type=device.type, size=device.size, address=device.address)
    expected = HttpQPU if stored.startswith("http") else SimulatedQPU
    assert isinstance(client_for(ref), expected)


@pytest.mark.parametrize(
    "address",
    [
        "ftp://qpu.lab.example",
        "gopher://qpu.lab.example",
        "javascript://x",
        "file:///etc/passwd",
        "http:/qpu.lab.example",
        "https:qpu.lab.example",
        "http://",
        "HTTP:///nohost",
        "http://user:pw@qpu.lab.example",
        "http://qpu.lab.example:99999",
        "http://169.254.169.254",
        "http://[fe80::1]:80",
        "http://[::ffff:169.254.169.254]",
        "http://224.0.0.1",
        "http://0.0.0.0:9000",
        "http://[::]:9000",
        "http://240.0.0.1",
        "http://255.255.255.255",
    ],
)
def test_other_schemes_broken_urls_and_forbidden_targets_are_a_400_naming_address(staff_api, address):
    response = register(staff_api, address)
    assert response.status_code == 400 and "address" in response.json()
    assert not Device.objects.exists()


def test_device_allowed_networks_restrict_where_devices_may_be(staff_api, settings):
    settings.DEVICE_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert register(staff_api, "http://192.168.1.10:9000").status_code == 400
    assert register(staff_api, "http://10.1.2.3:9000").status_code == 201


def test_a_device_name_resolving_to_a_forbidden_target_is_refused_at_call_time(fake_dns, dialed):
    fake_dns({"qpu.lab.example": [["169.254.169.254"]]})
    device = DeviceRef(id="qpu-1", type="analog", size=2, address="http://qpu.lab.example:9000")
    with pytest.raises(DeviceError) as caught:
        HttpQPU(timeout=2).run(device=device, job=JobPayload(key="j", instructions=[], shots=1))
    assert str(caught.value) == "device qpu-1: address not allowed" and dialed == []


def test_device_allowed_networks_apply_at_call_time_too(settings, dialed):
    settings.DEVICE_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    device = DeviceRef(id="qpu-1", type="analog", size=2, address="http://127.0.0.1:9")
    with pytest.raises(DeviceError, match="address not allowed"):
        HttpQPU(timeout=2).run(device=device, job=JobPayload(key="j", instructions=[], shots=1))
    assert dialed == []
