"""What each caller sees of a device (issue 6, section 2).

Everyone authenticated: id, type, size, status (busy included), whether it is
simulated, times and jobs done. The address: staff and the device's own
account. The running job (another user's): staff only. Checked on the list,
the detail and every action's response; the OpenAPI schema says so too.
"""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from devices.accounts import device_account_ensure
from devices.models import Device
from jobs.models import JobStatus
from tests.conftest import _client_for
from tests.factories import make_job, make_program

pytestmark = pytest.mark.django_db

ADDRESS = "http://10.0.0.1:9000"
PUBLIC = {"id", "type", "size", "status", "status_reason", "simulated", "registered_at", "last_seen_at", "jobs_done"}
# role -> (sees the address, sees the running job)
SEES = {"owner": (True, False), "other": (False, False), "user": (False, False), "staff": (True, True)}


@pytest.fixture
def clients(api, staff_api):
    owner = _client_for(device_account_ensure(name="lab-a").user)
    other = _client_for(device_account_ensure(name="lab-b").user)
    return {"owner": owner, "other": other, "user": api, "staff": staff_api}


@pytest.fixture
def busy_device(clients, other_user):
    register = {"id": "qpu-a", "address": ADDRESS, "type": "analog", "size": 4}
    assert clients["owner"].post("/devices", register, format="json").status_code == 201
    return make_job(make_program(other_user), status=JobStatus.RUNNING, device=Device.objects.get(pk="qpu-a"))


def assert_shown_as(role, shown, job_key):
    sees_address, sees_job = SEES[role]
    assert PUBLIC <= set(shown), shown
    assert shown["simulated"] is False
    assert ("address" in shown) is sees_address, (role, shown)
    assert ("current_job" in shown) is sees_job, (role, shown)
    if sees_address:
        assert shown["address"] == ADDRESS
    if sees_job:
        assert shown["current_job"] == job_key
    assert set(shown) <= PUBLIC | {"address", "current_job"}


@pytest.mark.parametrize("role", sorted(SEES))
def test_list_and_detail_show_each_role_what_it_may_see(clients, busy_device, role):
    client = clients[role]
    listed = client.get("/devices").json()["results"]
    assert [d["id"] for d in listed] == ["qpu-a"]
    assert listed[0]["status"] == "busy"
    assert_shown_as(role, listed[0], busy_device.key)
    assert_shown_as(role, client.get("/devices/qpu-a").json(), busy_device.key)
    assert [d["id"] for d in client.get("/devices?status=busy").json()["results"]] == ["qpu-a"]


@pytest.mark.parametrize("role", ["owner", "staff"])
def test_every_action_answers_with_what_the_caller_may_see(clients, busy_device, role):
    client = clients[role]
    for action in ("heartbeat", "drain", "resume"):
        response = client.post(f"/devices/qpu-a/{action}")
        assert response.status_code == 200, response.content
        assert_shown_as(role, response.json(), busy_device.key)
    response = client.post("/devices", {"id": "qpu-a", "address": ADDRESS, "type": "analog", "size": 4}, format="json")
    assert response.status_code == 200
    shown = response.json()
    assert shown["address"] == ADDRESS and ("current_job" in shown) is (role == "staff")
    if role == "staff":
        assert shown["current_job"] is None  # re-registering requeued the job: idle is null, not absent


def test_a_staff_registered_device_shows_its_address_to_no_device_account(clients):
    response = clients["staff"].post(
        "/devices", {"id": "op-1", "address": ADDRESS, "type": "a", "size": 2}, format="json"
    )
    assert response.json()["address"] == ADDRESS
    for role in ("owner", "other", "user"):
        assert "address" not in clients[role].get("/devices/op-1").json()


@pytest.mark.parametrize(
    "address, simulated",
    [("sim", True), ("", True), ("addr1", True), ("10.0.0.7:9000", True), (ADDRESS, False), ("https://qpu.lab", False)],
)
def test_simulated_says_whether_the_builtin_simulator_runs_the_device(clients, address, simulated):
    body = {"id": "d1", "address": address, "type": "analog", "size": 2}
    assert clients["owner"].post("/devices", body, format="json").json()["simulated"] is simulated
    assert clients["user"].get("/devices/d1").json()["simulated"] is simulated


def test_the_schema_declares_hidden_fields_optional_and_simulated_boolean():
    device = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]["Device"]
    props, required = device["properties"], set(device["required"])
    assert {"address", "current_job"}.isdisjoint(required)
    assert props["current_job"].get("nullable") is True
    assert props["simulated"]["type"] == "boolean"
    assert PUBLIC <= required
