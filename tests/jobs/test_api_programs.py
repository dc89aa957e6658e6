from __future__ import annotations

import json

import pytest

from jobs.models import Job, JobStatus, Program
from tests.factories import make_device, make_job, make_program

pytestmark = pytest.mark.django_db


def form_post(client, path, payload):
    """The brief's client: `curl -d '<json>' host/path` (JSON labelled as a form)."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return client.generic("POST", path, body, content_type="application/x-www-form-urlencoded")


def program_payload(n=3, **overrides):
    payload = {
        "id": "prog-1",
        "priority": 5,
        "device_type": "analog",
        "user_id": 17,
        "jobs": [{"id": f"j{i}", "instructions": [{"op": "x", "q": i}], "shots": 2} for i in range(n)],
    }
    payload.update(overrides)
    return payload


def test_create_program_with_its_jobs(api, user):
    response = api.post("/programs", program_payload(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == "prog-1"
    assert body["owner"] == user.username
    assert body["user_id"] == "17"
    assert body["priority"] == 5 and body["device_type"] == "analog"
    assert body["job_ids"] == ["j0", "j1", "j2"]
    assert body["jobs"] == {"total": 3, "queued": 3, "running": 0, "done": 0, "failed": 0, "cancelled": 0}
    assert body["finished"] is False
    jobs = list(Job.objects.order_by("id"))
    assert [j.key for j in jobs] == ["j0", "j1", "j2"]  # submission order = list order
    assert all(j.owner == user and j.priority == 5 and j.device_type == "analog" for j in jobs)
    assert all(j.status == JobStatus.QUEUED and j.shots == 2 for j in jobs)
    assert jobs[1].instructions == [{"op": "x", "q": 1}]


def test_create_program_the_briefs_way(api):
    response = form_post(api, "/programs", program_payload(n=2))
    assert response.status_code == 201, response.content
    assert Job.objects.count() == 2


def test_generated_ids_and_defaults(api):
    response = api.post(
        "/programs", {"priority": 0, "device_type": "analog", "jobs": [{}, {"min_size": 4}]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert len(body["id"]) == 32 and all(len(k) == 32 for k in body["job_ids"])
    assert len(set(body["job_ids"])) == 2
    first, second = Job.objects.order_by("id")
    assert first.key == body["job_ids"][0]
    assert first.instructions == [] and first.shots == 1 and first.min_size is None
    assert second.min_size == 4
    assert Program.objects.get().callback_url == ""


def test_numeric_job_ids_are_kept_as_strings(api):
    response = api.post("/programs", program_payload(jobs=[{"id": 1}, {"id": 2}]), format="json")
    assert response.status_code == 201
    assert response.json()["job_ids"] == ["1", "2"]
    assert api.get("/jobs/1").status_code == 200


def test_ten_thousand_jobs_in_one_request(api, settings):
    n = settings.PROGRAM_MAX_JOBS
    payload = {"priority": 1, "device_type": "analog", "jobs": [{"instructions": [i]} for i in range(n)]}
    response = form_post(api, "/programs", payload)
    assert response.status_code == 201
    assert response.json()["jobs"]["queued"] == n
    assert Job.objects.count() == n
    keys = list(Job.objects.order_by("id").values_list("key", flat=True))
    assert keys == response.json()["job_ids"]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"priority": "high"}, "priority"),
        ({"priority": 1.5}, "priority"),
        ({"priority": 2**31}, "priority"),
        ({"priority": None}, "priority"),
        ({"device_type": ""}, "device_type"),
        ({"callback_url": "not a url"}, "callback_url"),
        ({"id": "a/b"}, "id"),
        ({"jobs": []}, "jobs"),
        ({"jobs": "nope"}, "jobs"),
        ({"jobs": {"id": "x"}}, "jobs"),
        ({"jobs": [{"id": "ok"}, "not-an-object"]}, "jobs[1]"),
        ({"jobs": [{"shots": 0}]}, "jobs[0].shots"),
        ({"jobs": [{"shots": "many"}]}, "jobs[0].shots"),
        ({"jobs": [{"shots": True}]}, "jobs[0].shots"),
        ({"jobs": [{"shots": 10**6}]}, "jobs[0].shots"),
        ({"jobs": [{}, {"min_size": 0}]}, "jobs[1].min_size"),
        ({"jobs": [{"id": "a b"}]}, "jobs[0].id"),
        ({"jobs": [{"id": {"x": 1}}]}, "jobs[0].id"),
        ({"jobs": [{"id": "dup"}, {"id": "other"}, {"id": "dup"}]}, "jobs[2].id"),
    ],
)
def test_bad_program_is_a_400_naming_the_field_and_creates_nothing(api, overrides, field):
    response = api.post("/programs", program_payload(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Program.objects.count() == 0 and Job.objects.count() == 0


def test_missing_device_type_and_jobs_are_named(api):
    response = api.post("/programs", {"priority": 1}, format="json")
    assert response.status_code == 400
    assert {"device_type", "jobs"} <= set(response.json())


def test_too_many_jobs_is_a_400(api, settings):
    settings.PROGRAM_MAX_JOBS = 10_000
    payload = {"priority": 1, "device_type": "analog", "jobs": [{} for _ in range(10_001)]}
    response = form_post(api, "/programs", payload)
    assert response.status_code == 400
    assert "10000" in response.json()["jobs"][0]
    assert Job.objects.count() == 0


def test_several_bad_jobs_are_all_reported(api):
    response = api.post("/programs", program_payload(jobs=[{"shots": 0}, {}, {"min_size": -1}]), format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"jobs[0].shots", "jobs[2].min_size"}


def test_bad_json_is_a_400(api):
    response = form_post(api, "/programs", '{"priority": 1, "jobs": [')
    assert response.status_code == 400
    assert Program.objects.count() == 0


def test_taken_job_id_is_a_409_and_nothing_is_created(api, other_user):
    existing = make_job(make_program(other_user, key="older"), key="j1")
    response = api.post("/programs", program_payload(), format="json")
    assert response.status_code == 409
    assert response.json() == {"jobs[1].id": ["A job with id 'j1' already exists."]}
    assert Program.objects.count() == 1 and Job.objects.get() == existing


def test_taken_program_id_is_a_409(api, user):
    make_program(user, key="prog-1")
    response = api.post("/programs", program_payload(), format="json")
    assert response.status_code == 409
    assert "id" in response.json()
    assert Job.objects.count() == 0


def test_program_creation_wakes_the_workers(api, django_capture_on_commit_callbacks):
    from jobs import notify

    seen = notify.generation()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/programs", program_payload(), format="json").status_code == 201
    assert notify.generation() > seen


# --- reading ----------------------------------------------------------------------


def test_program_detail_counts_jobs_per_status(api, user):
    program = make_program(user, key="p")
    device = make_device("d1")
    make_job(program)
    make_job(program)
    make_job(program, status=JobStatus.RUNNING, device=device)
    make_job(program, status=JobStatus.DONE, device=device)
    make_job(program, status=JobStatus.CANCELLED)
    body = api.get("/programs/p").json()
    assert body["jobs"] == {"total": 5, "queued": 2, "running": 1, "done": 1, "failed": 0, "cancelled": 1}
    assert body["finished"] is False


def test_users_see_only_their_programs_and_staff_see_all(api, other_api, staff_api, user, other_user):
    mine = make_program(user, key="mine")
    make_program(other_user, key="theirs")
    assert [p["id"] for p in api.get("/programs").json()["results"]] == ["mine"]
    assert api.get("/programs/theirs").status_code == 404
    assert api.post("/programs/theirs/cancel").status_code == 404
    assert other_api.get(f"/programs/{mine.key}").status_code == 404
    assert {p["id"] for p in staff_api.get("/programs").json()["results"]} == {"mine", "theirs"}
    assert staff_api.get("/programs/mine").status_code == 200


def test_program_list_filters_and_paginates(api, user):
    done = make_program(user, key="p-done", device_type="analog")
    make_job(done, status=JobStatus.DONE)
    waiting = make_program(user, key="p-wait", device_type="digital")
    make_job(waiting)
    make_job(waiting, status=JobStatus.DONE)

    def ids(query):
        response = api.get("/programs" + query)
        assert response.status_code == 200, response.content
        return [p["id"] for p in response.json()["results"]]

    assert ids("") == ["p-wait", "p-done"]  # newest first
    assert ids("?status=queued") == ["p-wait"]
    assert ids("?status=done") == ["p-wait", "p-done"]
    assert ids("?device_type=analog") == ["p-done"]
    assert ids("?program=p-wait") == ["p-wait"]
    page = api.get("/programs?limit=1&offset=1").json()
    assert page["count"] == 2 and [p["id"] for p in page["results"]] == ["p-done"]
    assert page["results"][0]["jobs"]["done"] == 1 and page["results"][0]["finished"] is True
    assert api.get("/programs?status=bogus").status_code == 400


def test_unauthenticated_program_requests_are_401(anon_api):
    assert anon_api.get("/programs").status_code == 401
    assert anon_api.post("/programs", program_payload(), format="json").status_code == 401
    assert anon_api.get("/programs/x").status_code == 401


# --- cancel -----------------------------------------------------------------------


def test_cancel_program_cancels_queued_jobs_and_lets_running_ones_finish(api, user):
    program = make_program(user, key="p")
    device = make_device("d1")
    queued = [make_job(program) for _ in range(3)]
    running = make_job(program, status=JobStatus.RUNNING, device=device)
    done = make_job(program, status=JobStatus.DONE, device=device)
    other = make_job(make_program(user))

    response = api.post("/programs/p/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["cancelled"] == 3
    assert body["jobs"]["cancelled"] == 3 and body["jobs"]["running"] == 1
    for job in queued:
        job.refresh_from_db()
        assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert Job.objects.get(pk=running.pk).status == JobStatus.RUNNING
    assert Job.objects.get(pk=done.pk).status == JobStatus.DONE
    assert Job.objects.get(pk=other.pk).status == JobStatus.QUEUED
    # Cancelling again is harmless: nothing left to cancel.
    assert api.post("/programs/p/cancel").json()["cancelled"] == 0


def test_staff_may_cancel_any_program(staff_api, user):
    program = make_program(user, key="p")
    make_job(program)
    assert staff_api.post("/programs/p/cancel").json()["cancelled"] == 1


def test_nul_characters_in_instructions_are_a_400_naming_the_job(api):
    jobs = [{"instructions": ["fine", "\\u0000 is text here"]}, {"instructions": {"op": "a\u0000b"}}]
    response = api.post("/programs", program_payload(jobs=jobs), format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"jobs[1].instructions"}
    assert Job.objects.count() == 0


def test_nul_characters_in_ids_and_filters_never_reach_the_database(api):
    assert api.get("/programs/a%00b").status_code == 404
    assert api.post("/programs/a%00b/cancel").status_code == 404
    response = api.get("/programs?device_type=a%00")
    assert response.status_code == 400 and "device_type" in response.json()
    assert api.get("/programs?program=%00").status_code == 400
