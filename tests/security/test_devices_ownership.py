"""Devices act for themselves only (issue 6, section 2).

Every device endpoint (register, re-register, heartbeat, drain, resume,
delete) against a device owned by a device account, for: the owner, another
device account, an ordinary user, staff and anonymous callers; and against a
device staff registered (no owner). A refused call answers 403 (401 without
credentials) and changes nothing: not the device row, not its running job.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from devices.accounts import device_account_ensure
from devices.models import Device, DeviceStatus
from jobs.models import Job, JobStatus
from tests.conftest import _client_for
from tests.factories import make_device, make_job, make_program

pytestmark = pytest.mark.django_db

LAB_A = {"id": "qpu-a", "address": "http://10.0.0.1:9000", "type": "analog", "size": 4}
HIJACK = {"id": "qpu-a", "address": "http://attacker.example:9000", "type": "analog", "size": 4}
ACTIONS = ["reregister", "heartbeat", "drain", "resume", "delete"]
OK = {"reregister": 200, "heartbeat": 200, "drain": 200, "resume": 200, "delete": 204}


def account(name):
    return _client_for(device_account_ensure(name=name).user)


@pytest.fixture
def clients(api, staff_api, anon_api):
    return {"owner": account("lab-a"), "other": account("lab-b"), "user": api, "staff": staff_api, "anon": anon_api}


def act(client, action, device_id="qpu-a"):
    if action == "reregister":
        return client.post("/devices", {**HIJACK, "id": device_id}, format="json")
    if action == "delete":
        return client.delete(f"/devices/{device_id}")
    return client.post(f"/devices/{device_id}/{action}")


def snapshot(device_id="qpu-a"):
    device = Device.objects.filter(pk=device_id).values().first()
    jobs = list(Job.objects.order_by("pk").values_list("key", "status", "device_id", "attempts"))
    return device, jobs


def owned_busy_device(clients, user, status=DeviceStatus.ONLINE):
    """qpu-a registered by lab-a over the API, running one of ``user``'s jobs."""
    assert clients["owner"].post("/devices", LAB_A, format="json").status_code == 201
    Device.objects.filter(pk="qpu-a").update(status=status)
    make_job(make_program(user), status=JobStatus.RUNNING, device=Device.objects.get(pk="qpu-a"))


def test_a_new_id_belongs_to_the_device_account_that_registered_it(clients):
    response = clients["owner"].post("/devices", LAB_A, format="json")
    assert response.status_code == 201, response.content
    assert Device.objects.get(pk="qpu-a").owner.username == "lab-a"
    assert clients["staff"].post("/devices", {**LAB_A, "id": "op-1"}, format="json").status_code == 201
    assert Device.objects.get(pk="op-1").owner is None  # staff registrations belong to no account


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role, expected", [("other", 403), ("user", 403), ("anon", 401)])
def test_nobody_but_the_owner_and_staff_may_act_on_a_device_and_a_refusal_changes_nothing(
    clients, other_user, role, expected, action
):
    owned_busy_device(clients, other_user, status=DeviceStatus.DRAINING if action == "resume" else DeviceStatus.ONLINE)
    before = snapshot()
    response = act(clients[role], action)
    assert response.status_code == expected, response.content
    assert snapshot() == before
    if role == "other":
        assert "another account" in response.json()["detail"]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ["owner", "staff"])
def test_the_owner_and_staff_may_do_everything(clients, other_user, role, action):
    owned_busy_device(clients, other_user, status=DeviceStatus.DRAINING if action == "resume" else DeviceStatus.ONLINE)
    response = act(clients[role], action)
    assert response.status_code == OK[action], response.content
    device = Device.objects.filter(pk="qpu-a").first()
    if action == "delete":
        assert device is None
        return
    assert device.owner.username == "lab-a"  # staff acting (re-registering too) keep the owner
    expected_status = {"drain": DeviceStatus.DRAINING}.get(action, DeviceStatus.ONLINE)
    assert device.status == expected_status
    if action == "reregister":
        assert device.address == HIJACK["address"]


@pytest.mark.parametrize("action", ACTIONS)
def test_a_device_staff_registered_is_staff_only(clients, action):
    make_device(
        "qpu-a",
        address="http://10.0.0.9:9000",
        status=DeviceStatus.DRAINING if action == "resume" else DeviceStatus.ONLINE,
    )
    before = snapshot()
    for role in ("owner", "other"):
        response = act(clients[role], action)
        assert response.status_code == 403, (role, response.content)
        assert snapshot() == before
    assert act(clients["staff"], action).status_code == OK[action]


def test_the_hijack_attempt_from_the_issue(clients, other_user):
    """Lab B re-registers lab A's QPU with its own address to receive A's jobs."""
    owned_busy_device(clients, other_user)
    job = Job.objects.get(device_id="qpu-a")
    response = clients["other"].generic(  # the brief's client: curl -d, no content type
        "POST",
        "/devices",
        '{"id": "qpu-a", "address": "http://lab-b:1", "type": "analog", "size": 4}',
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 403
    device = Device.objects.get(pk="qpu-a")
    assert device.address == LAB_A["address"] and device.owner.username == "lab-a"
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.device_id == "qpu-a"  # not requeued towards lab B


def test_an_account_without_the_device_permissions_still_gets_403(clients):
    assert clients["user"].post("/devices", LAB_A, format="json").status_code == 403
    assert not Device.objects.exists()


def test_unknown_ids_are_404_for_the_accounts_that_may_act(clients):
    for action in ACTIONS[1:]:
        assert act(clients["owner"], action, "ghost").status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_accounts_racing_for_one_new_id_one_owns_it_the_other_is_refused():
    names = ["race-a", "race-b", "race-c", "race-d"]
    users = [device_account_ensure(name=n).user for n in names]
    barrier = threading.Barrier(len(users))
    codes: dict[str, int] = {}

    def register(user):
        client = _client_for(user)
        try:
            barrier.wait()
            codes[user.username] = client.post("/devices", {**LAB_A, "id": "contested"}, format="json").status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=register, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [n for n, code in codes.items() if code == 201]
    assert len(winners) == 1 and sorted(codes.values()) == [201, 403, 403, 403], codes
    assert Device.objects.get(pk="contested").owner.username == winners[0]
