from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from devices.models import Device, DeviceStatus
from jobs.models import JobStatus
from tests.factories import make_device, make_job, make_program, make_user

pytestmark = pytest.mark.django_db

REGISTER = {"id": "dev-42", "address": "http://10.0.0.42:9000", "type": "analog", "size": 12}


def form_post(client, path, payload):
    """The brief's client: `curl -d '<json>' host/path` (JSON labelled as a form)."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return client.generic("POST", path, body, content_type="application/x-www-form-urlencoded")


# --- registration ---------------------------------------------------------------


def test_register_device_returns_201_and_shows_it(staff_api):
    response = staff_api.post("/devices", REGISTER, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == "dev-42"
    assert body["address"] == "http://10.0.0.42:9000"
    assert body["type"] == "analog" and body["size"] == 12
    assert body["status"] == "online"
    assert body["current_job"] is None and body["jobs_done"] == 0
    assert body["registered_at"] and body["last_seen_at"]
    assert Device.objects.get(pk="dev-42").status == DeviceStatus.ONLINE


def test_register_the_briefs_way_with_curl_d_and_a_numeric_id(staff_api):
    response = form_post(staff_api, "/devices", '{"id": 7, "address": "10.0.0.7", "type": "digital", "size": 4}')
    assert response.status_code == 201, response.content
    assert response.json()["id"] == "7"
    assert Device.objects.get(pk="7").type == "digital"


def test_reregistering_updates_the_device_and_brings_it_back_online(staff_api):
    old = timezone.now() - timedelta(hours=1)
    make_device("dev-42", type="analog", size=4, status=DeviceStatus.OFFLINE, last_seen_at=old, registered_at=old)
    response = staff_api.post("/devices", {**REGISTER, "size": 16}, format="json")
    assert response.status_code == 200, response.content
    device = Device.objects.get(pk="dev-42")
    assert device.size == 16 and device.address == REGISTER["address"]
    assert device.status == DeviceStatus.ONLINE
    assert device.last_seen_at > old
    assert device.registered_at == old  # first registration time is kept


def test_reregistering_requeues_the_job_the_restarted_device_was_running(staff_api, user):
    device = make_device("dev-42")
    program = make_program(user)
    job = make_job(program, status=JobStatus.RUNNING, device=device)
    response = staff_api.post("/devices", REGISTER, format="json")
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.device_id is None
    assert response.json()["current_job"] is None


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"address": "x", "type": "analog", "size": 3}, "id"),
        ({"id": "d1", "address": "x", "size": 3}, "type"),
        ({"id": "d1", "address": "x", "type": "analog"}, "size"),
        ({"id": "d1", "type": "analog", "size": 0}, "size"),
        ({"id": "d1", "type": "analog", "size": -3}, "size"),
        ({"id": "d1", "type": "analog", "size": "big"}, "size"),
        ({"id": "d1", "type": "analog", "size": 2**31}, "size"),
        ({"id": "a/b", "type": "analog", "size": 3}, "id"),
        ({"id": "has space", "type": "analog", "size": 3}, "id"),
        ({"id": "x" * 101, "type": "analog", "size": 3}, "id"),
        ({"id": True, "type": "analog", "size": 3}, "id"),
        ({"id": ["d1"], "type": "analog", "size": 3}, "id"),
        ({"id": "d1", "type": "", "size": 3}, "type"),
    ],
)
def test_bad_registration_is_a_400_naming_the_field_and_creates_nothing(staff_api, payload, field):
    response = staff_api.post("/devices", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Device.objects.count() == 0


def test_bad_json_is_a_400_not_a_500(staff_api):
    response = form_post(staff_api, "/devices", '{"id": "d1", "type": ')
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert Device.objects.count() == 0


def test_a_json_list_body_is_a_400(staff_api):
    response = staff_api.post("/devices", [REGISTER], format="json")
    assert response.status_code == 400
    assert Device.objects.count() == 0


# --- permissions -----------------------------------------------------------------


def test_unauthenticated_requests_get_401(anon_api):
    assert anon_api.get("/devices").status_code == 401
    assert anon_api.post("/devices", REGISTER, format="json").status_code == 401
    assert anon_api.get("/devices/dev-1").status_code == 401


def test_ordinary_user_may_look_but_not_change_the_pool(api):
    make_device("dev-1")
    assert api.get("/devices").status_code == 200
    assert api.get("/devices/dev-1").status_code == 200
    assert api.post("/devices", REGISTER, format="json").status_code == 403
    assert api.delete("/devices/dev-1").status_code == 403
    for action in ("heartbeat", "drain", "resume"):
        assert api.post(f"/devices/dev-1/{action}").status_code == 403
    assert Device.objects.filter(pk="dev-1", status=DeviceStatus.ONLINE).exists()
    assert not Device.objects.filter(pk="dev-42").exists()


def test_device_permissions_grant_exactly_their_action(django_user_model):
    from tests.conftest import _client_for

    qpu = make_user("qpu-agent")
    qpu.user_permissions.add(
        Permission.objects.get(codename="add_device"), Permission.objects.get(codename="change_device")
    )
    client = _client_for(django_user_model.objects.get(pk=qpu.pk))
    assert client.post("/devices", REGISTER, format="json").status_code == 201
    assert client.post("/devices/dev-42/heartbeat").status_code == 200
    assert client.post("/devices/dev-42/drain").status_code == 200
    assert client.delete("/devices/dev-42").status_code == 403  # needs delete_device
    qpu.user_permissions.add(Permission.objects.get(codename="delete_device"))
    client = _client_for(django_user_model.objects.get(pk=qpu.pk))
    assert client.delete("/devices/dev-42").status_code == 204


# --- reading ---------------------------------------------------------------------


def test_list_shows_staff_the_status_current_job_and_jobs_done(staff_api, user):
    busy = make_device("dev-a")
    idle = make_device("dev-b")
    draining = make_device("dev-c", status=DeviceStatus.DRAINING)
    program = make_program(user)
    running = make_job(program, status=JobStatus.RUNNING, device=busy)
    make_job(program, status=JobStatus.DONE, device=busy)
    make_job(program, status=JobStatus.DONE, device=busy)
    make_job(program, status=JobStatus.FAILED, device=busy)
    make_job(program, status=JobStatus.DONE, device=idle)
    make_job(program, status=JobStatus.RUNNING, device=draining)

    response = staff_api.get("/devices")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    by_id = {d["id"]: d for d in body["results"]}
    assert by_id["dev-a"]["status"] == "busy"
    assert by_id["dev-a"]["current_job"] == running.key
    assert by_id["dev-a"]["jobs_done"] == 2
    assert by_id["dev-b"]["status"] == "online"
    assert by_id["dev-b"]["current_job"] is None
    assert by_id["dev-b"]["jobs_done"] == 1
    assert by_id["dev-c"]["status"] == "draining"  # draining wins over busy

    assert [d["id"] for d in staff_api.get("/devices?status=busy").json()["results"]] == ["dev-a"]
    assert [d["id"] for d in staff_api.get("/devices?status=online").json()["results"]] == ["dev-b"]
    assert staff_api.get("/devices?type=digital").json()["count"] == 0
    bad = staff_api.get("/devices?status=sleeping")
    assert bad.status_code == 400 and "status" in bad.json()


def test_ordinary_users_see_status_and_busy_but_not_the_address_or_the_running_job(api, other_user):
    busy = make_device("dev-a", address="http://10.1.2.3:9000")
    make_device("dev-b", address="sim")
    make_job(make_program(other_user), status=JobStatus.RUNNING, device=busy)
    make_job(make_program(other_user), status=JobStatus.DONE, device=busy)

    by_id = {d["id"]: d for d in api.get("/devices").json()["results"]}
    assert api.get("/devices?status=busy").json()["results"][0]["id"] == "dev-a"
    assert by_id["dev-a"]["status"] == "busy" and by_id["dev-a"]["jobs_done"] == 1
    assert by_id["dev-a"]["simulated"] is False and by_id["dev-b"]["simulated"] is True
    for shown in [*by_id.values(), api.get("/devices/dev-a").json()]:
        assert "address" not in shown and "current_job" not in shown, shown
        assert {"id", "type", "size", "status", "simulated", "registered_at", "last_seen_at", "jobs_done"} <= set(shown)


def test_detail_of_unknown_device_is_404(api):
    response = api.get("/devices/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


# --- removal, heartbeat, drain, resume ------------------------------------------------


def test_delete_removes_device_and_requeues_its_job_in_place(staff_api, user):
    device = make_device("dev-1")
    program = make_program(user, priority=5)
    running = make_job(program, status=JobStatus.RUNNING, device=device)
    later = make_job(program)
    done = make_job(program, status=JobStatus.DONE, device=device)

    response = staff_api.delete("/devices/dev-1")
    assert response.status_code == 204
    assert not Device.objects.filter(pk="dev-1").exists()
    running.refresh_from_db()
    done.refresh_from_db()
    assert running.status == JobStatus.QUEUED and running.device_id is None and running.started_at is None
    assert running.priority == 5 and running.pk < later.pk  # same place: ahead of the later job
    assert done.device_id == "dev-1"  # history keeps the device's id
    assert staff_api.get(f"/jobs/{running.key}").json()["queue_position"] == 1
    assert staff_api.delete("/devices/dev-1").status_code == 404


def test_heartbeat_records_contact_and_revives_an_offline_device(staff_api):
    old = timezone.now() - timedelta(minutes=5)
    make_device("dev-1", status=DeviceStatus.OFFLINE, last_seen_at=old)
    response = staff_api.post("/devices/dev-1/heartbeat")
    assert response.status_code == 200
    assert response.json()["status"] == "online"
    device = Device.objects.get(pk="dev-1")
    assert device.last_seen_at > old and device.status == DeviceStatus.ONLINE


def test_heartbeat_keeps_a_draining_device_draining(staff_api):
    make_device("dev-1", status=DeviceStatus.DRAINING)
    assert staff_api.post("/devices/dev-1/heartbeat").json()["status"] == "draining"


def test_heartbeat_of_unknown_device_is_404(staff_api):
    assert staff_api.post("/devices/ghost/heartbeat").status_code == 404


def test_heartbeat_the_briefs_way(staff_api):
    make_device("dev-1")
    response = form_post(staff_api, "/devices/dev-1/heartbeat", "")
    assert response.status_code == 200


def test_drain_keeps_the_running_job_and_resume_brings_it_back(staff_api, user):
    device = make_device("dev-1")
    job = make_job(make_program(user), status=JobStatus.RUNNING, device=device)
    response = staff_api.post("/devices/dev-1/drain")
    assert response.status_code == 200
    assert response.json()["status"] == "draining"
    assert response.json()["current_job"] == job.key
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.device_id == "dev-1"

    response = staff_api.post("/devices/dev-1/resume")
    assert response.status_code == 200
    assert response.json()["status"] == "busy"
    assert Device.objects.get(pk="dev-1").status == DeviceStatus.ONLINE


def test_drain_and_resume_unknown_device_are_404(staff_api):
    assert staff_api.post("/devices/ghost/drain").status_code == 404
    assert staff_api.post("/devices/ghost/resume").status_code == 404


def test_get_on_action_paths_is_405(staff_api):
    make_device("dev-1")
    assert staff_api.get("/devices/dev-1/drain").status_code == 405


def test_nul_characters_are_refused_not_a_server_error(staff_api):
    response = staff_api.post("/devices", {**REGISTER, "address": "x\u0000"}, format="json")
    assert response.status_code == 400 and "address" in response.json()
    assert staff_api.get("/devices/a%00").status_code == 404
    assert staff_api.delete("/devices/a%00").status_code == 404
    assert staff_api.post("/devices/a%00/heartbeat").status_code == 404
    response = staff_api.get("/devices?type=%00")
    assert response.status_code == 400 and "type" in response.json()
