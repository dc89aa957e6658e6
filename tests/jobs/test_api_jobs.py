from __future__ import annotations

import json

import pytest

from jobs.models import CallbackStatus, Job, JobStatus, Program
from tests.factories import make_device, make_job, make_program, make_token

pytestmark = pytest.mark.django_db

FLAT = {"id": "job-1", "priority": 3, "user_id": 99, "program_id": "prog-7", "device_type": "analog"}


def form_post(client, path, payload):
    """The brief's client: `curl -d '<json>' host/path` (JSON labelled as a form)."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return client.generic("POST", path, body, content_type="application/x-www-form-urlencoded")


# --- flat submission -------------------------------------------------------------


def test_flat_job_the_briefs_way_creates_the_program_on_first_use(api, user):
    response = form_post(api, "/jobs", {**FLAT, "instructions": ["h 0", "measure"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == "job-1"
    assert body["program"] == "prog-7"
    assert body["user_id"] == "99"
    assert body["status"] == "queued"
    assert body["queue_position"] == 1
    assert body["instructions"] == ["h 0", "measure"]
    assert body["shots"] == 1 and body["result"] is None
    program = Program.objects.get(key="prog-7")
    assert program.owner == user and program.client_user_id == "99"
    assert program.priority == 3 and program.device_type == "analog"
    assert Job.objects.get(key="job-1").owner == user


def test_later_flat_jobs_join_the_program(api):
    assert form_post(api, "/jobs", FLAT).status_code == 201
    response = form_post(api, "/jobs", {**FLAT, "id": "job-2"})
    assert response.status_code == 201
    assert response.json()["queue_position"] == 2
    assert Program.objects.count() == 1
    assert list(Program.objects.get().jobs.order_by("id").values_list("key", flat=True)) == ["job-1", "job-2"]
    assert api.get("/programs/prog-7").json()["jobs"]["queued"] == 2


def test_numeric_ids_in_flat_form_are_strings(api):
    response = form_post(api, "/jobs", {**FLAT, "id": 5, "program_id": 6})
    assert response.status_code == 201
    assert response.json()["id"] == "5" and response.json()["program"] == "6"
    assert api.get("/jobs/5").status_code == 200


def test_flat_job_without_ids_gets_generated_ones(api):
    response = api.post("/jobs", {"priority": 0, "device_type": "analog"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert len(body["id"]) == 32 and len(body["program"]) == 32


def test_flat_job_with_different_device_type_is_a_409_and_changes_nothing(api):
    form_post(api, "/jobs", FLAT)
    response = form_post(api, "/jobs", {**FLAT, "id": "job-2", "device_type": "digital"})
    assert response.status_code == 409
    assert "device_type" in response.json()
    assert Job.objects.count() == 1


def test_flat_job_with_different_priority_is_a_409(api):
    form_post(api, "/jobs", FLAT)
    response = form_post(api, "/jobs", {**FLAT, "id": "job-2", "priority": 9})
    assert response.status_code == 409
    assert "priority" in response.json()
    assert Job.objects.count() == 1


def test_flat_job_into_another_users_program_is_a_409_naming_program_id(api, other_user):
    make_program(other_user, key="prog-7", priority=3, device_type="analog")
    response = form_post(api, "/jobs", FLAT)
    assert response.status_code == 409
    assert "program_id" in response.json()
    assert Job.objects.count() == 0


def test_flat_job_with_taken_id_is_a_409_and_a_new_program_is_not_left_behind(api, other_user):
    make_job(make_program(other_user, key="elsewhere"), key="job-1")
    response = form_post(api, "/jobs", FLAT)
    assert response.status_code == 409
    assert "id" in response.json()
    assert not Program.objects.filter(key="prog-7").exists()


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"priority": "urgent"}, "priority"),
        ({"priority": None}, "priority"),
        ({"device_type": ""}, "device_type"),
        ({"shots": 0}, "shots"),
        ({"min_size": 0}, "min_size"),
        ({"id": "x/y"}, "id"),
        ({"program_id": "p q"}, "program_id"),
        ({"user_id": [1]}, "user_id"),
    ],
)
def test_bad_flat_job_is_a_400_naming_the_field(api, overrides, field):
    response = form_post(api, "/jobs", {**FLAT, **overrides})
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert Job.objects.count() == 0 and Program.objects.count() == 0


def test_missing_priority_and_device_type_are_named(api):
    response = form_post(api, "/jobs", {"id": "j"})
    assert response.status_code == 400
    assert {"priority", "device_type"} <= set(response.json())


def test_flat_job_bad_json_is_a_400(api):
    response = form_post(api, "/jobs", '{"id": "j", ')
    assert response.status_code == 400
    assert Job.objects.count() == 0


def test_unauthenticated_job_requests_are_401(anon_api):
    assert form_post(anon_api, "/jobs", FLAT).status_code == 401
    assert anon_api.get("/jobs").status_code == 401
    assert anon_api.get("/jobs/x").status_code == 401
    assert anon_api.post("/jobs/x/cancel").status_code == 401


def test_the_briefs_request_with_a_token_header(user):
    """Exactly what `curl -H 'Authorization: Token …' -d '{…}' localhost:PORT/jobs` sends."""
    from django.test import Client

    token = make_token(user)
    client = Client()
    response = client.post(
        "/jobs",
        data=json.dumps(FLAT),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert response.status_code == 201, response.content
    assert response.json()["id"] == "job-1"


# --- detail -----------------------------------------------------------------------


def test_job_detail_shows_result_device_timestamps_and_callback(api, user):
    device = make_device("qpu-1", size=3)
    program = make_program(user, callback_url="http://client.example/cb")
    job = make_job(
        program,
        key="done-1",
        status=JobStatus.DONE,
        device=device,
        result=["010", "111"],
        shots=2,
        attempts=1,
        callback_status=CallbackStatus.DELIVERED,
        callback_attempts=2,
    )
    body = api.get("/jobs/done-1").json()
    assert body["status"] == "done"
    assert body["result"] == ["010", "111"]
    assert body["device"] == "qpu-1"
    assert body["attempts"] == 1
    assert body["created_at"] and body["finished_at"]
    assert body["queue_position"] is None
    assert body["callback"]["status"] == "delivered" and body["callback"]["attempts"] == 2
    assert body["program"] == program.key and body["error"] == ""
    job.delete()
    assert api.get("/jobs/done-1").status_code == 404


def test_queue_position_follows_priority_then_submission_across_programs(api, user, other_user):
    low = make_program(user, priority=1)
    high = make_program(other_user, priority=9)
    other_type = make_program(user, priority=100, device_type="digital")
    a = make_job(low, key="a")
    make_job(low, key="b")
    make_job(high, key="c")
    make_job(other_type, key="z")
    d = make_job(high, key="d")
    e = make_job(low, key="e")
    make_job(low, key="f", status=JobStatus.CANCELLED)
    make_job(high, key="g", status=JobStatus.RUNNING, device=make_device())
    positions = {key: api.get(f"/jobs/{key}").json()["queue_position"] for key in ("a", "b", "e", "z")}
    assert positions == {"a": 3, "b": 4, "e": 5, "z": 1}
    # Jobs ahead leaving the queue move it up; another user's jobs count but stay hidden.
    Job.objects.filter(pk=d.pk).update(status=JobStatus.DONE)
    assert api.get("/jobs/e").json()["queue_position"] == 4
    assert api.get("/jobs/c").status_code == 404
    assert api.get(f"/jobs/{a.key}").json()["queue_position"] == 2
    assert api.get("/jobs/f").json()["queue_position"] is None
    assert e.pk > d.pk


# --- lists ------------------------------------------------------------------------


def test_job_list_filters_by_status_program_and_device_type(api, user):
    p1 = make_program(user, key="p1", device_type="analog")
    p2 = make_program(user, key="p2", device_type="digital")
    make_job(p1, key="q1")
    make_job(p1, key="d1", status=JobStatus.DONE, result=["0"])
    make_job(p2, key="q2")
    make_job(p2, key="f2", status=JobStatus.FAILED, error="boom")

    def keys(query=""):
        response = api.get("/jobs" + query)
        assert response.status_code == 200, response.content
        return [j["id"] for j in response.json()["results"]]

    assert keys() == ["q1", "d1", "q2", "f2"]  # submission order
    assert keys("?status=queued") == ["q1", "q2"]
    assert keys("?status=done,failed") == ["d1", "f2"]
    assert keys("?program=p2") == ["q2", "f2"]
    assert keys("?device_type=analog") == ["q1", "d1"]
    assert keys("?program=p1&status=done") == ["d1"]
    assert keys("?program=unknown") == []
    bad = api.get("/jobs?status=finished")
    assert bad.status_code == 400 and "status" in bad.json()
    row = api.get("/jobs?status=failed").json()["results"][0]
    assert row["error"] == "boom" and "result" not in row and "instructions" not in row


def test_job_list_is_paginated(api, user):
    program = make_program(user)
    for i in range(5):
        make_job(program, key=f"k{i}")
    first = api.get("/jobs?limit=2").json()
    assert set(first) == {"next", "results"}  # cursor pages: no count
    page = api.get(first["next"]).json()
    assert [j["id"] for j in page["results"]] == ["k2", "k3"]
    assert page["next"]


def test_users_see_only_their_jobs_and_staff_see_all(api, staff_api, user, other_user):
    make_job(make_program(user), key="mine")
    make_job(make_program(other_user), key="theirs")
    assert [j["id"] for j in api.get("/jobs").json()["results"]] == ["mine"]
    assert api.get("/jobs/theirs").status_code == 404
    assert [j["id"] for j in staff_api.get("/jobs").json()["results"]] == ["mine", "theirs"]
    assert staff_api.get("/jobs/theirs").status_code == 200


# --- cancel -----------------------------------------------------------------------


def test_cancel_a_queued_job(api, user):
    job = make_job(make_program(user), key="j")
    response = api.post("/jobs/j/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["queue_position"] is None
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None


def test_cancel_the_briefs_way(api, user):
    make_job(make_program(user), key="j")
    assert form_post(api, "/jobs/j/cancel", "").status_code == 200


@pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED])
def test_cancel_a_job_that_is_not_queued_is_a_409_naming_status(api, user, status):
    device = make_device() if status == JobStatus.RUNNING else None
    job = make_job(make_program(user), key="j", status=status, device=device)
    response = api.post("/jobs/j/cancel")
    assert response.status_code == 409
    assert status in response.json()["status"][0]
    job.refresh_from_db()
    assert job.status == status


def test_cannot_cancel_another_users_job_but_staff_can(api, staff_api, other_user):
    job = make_job(make_program(other_user), key="theirs")
    assert api.post("/jobs/theirs/cancel").status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert staff_api.post("/jobs/theirs/cancel").status_code == 200


def test_unknown_job_is_404(api):
    assert api.get("/jobs/nope").status_code == 404
    assert api.post("/jobs/nope/cancel").status_code == 404


def test_nul_characters_are_refused_not_a_server_error(api):
    response = form_post(api, "/jobs", {**FLAT, "instructions": {"k\u0000": 1}})
    assert response.status_code == 400 and "instructions" in response.json()
    response = form_post(api, "/jobs", {**FLAT, "device_type": "a\u0000"})
    assert response.status_code == 400 and "device_type" in response.json()
    assert Job.objects.count() == 0
    assert api.get("/jobs/x%00").status_code == 404
    assert api.post("/jobs/x%00/cancel").status_code == 404
    response = api.get("/jobs?program=%00")
    assert response.status_code == 400 and "program" in response.json()


def test_literal_backslash_u0000_text_is_accepted(api):
    response = form_post(api, "/jobs", {**FLAT, "instructions": ["\\u0000"]})
    assert response.status_code == 201
    assert Job.objects.get().instructions == ["\\u0000"]
