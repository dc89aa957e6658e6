"""/exams and /exams/<id>."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from exams.models import Exam

pytestmark = pytest.mark.django_db

VALID = {"name": "Physics", "start": "2030-06-02T09:00:00Z", "end": "2030-06-02T12:00:00Z", "students": 300}


def snapshot():
    return list(Exam.objects.order_by("id").values())


# --- permissions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/exams"),
        ("post", "/exams"),
        ("get", "/exams/{id}"),
        ("put", "/exams/{id}"),
        ("patch", "/exams/{id}"),
        ("delete", "/exams/{id}"),
    ],
)
def test_only_staff_may_use_the_exam_api(anon_api, api, make_exam, method, path):
    exam = make_exam()
    before = snapshot()
    url = path.format(id=exam.id)
    assert getattr(anon_api, method)(url, VALID, format="json").status_code == 401
    assert getattr(api, method)(url, VALID, format="json").status_code == 403
    assert snapshot() == before


# --- create ------------------------------------------------------------------------------


def test_create_and_read_back(staff_api):
    response = staff_api.post("/exams", VALID, format="json")
    assert response.status_code == 201, response.data
    body = response.json()
    assert body["name"] == "Physics"
    assert body["start"] == "2030-06-02T09:00:00Z"
    assert body["end"] == "2030-06-02T12:00:00Z"
    assert body["students"] == 300
    exam = Exam.objects.get(pk=body["id"])
    assert exam.start == datetime(2030, 6, 2, 9, 0, tzinfo=timezone.utc)
    body.pop("plan")  # the write's answer carries the VM plan summary (tests/vms/test_api.py)
    assert staff_api.get(f"/exams/{exam.id}").json() == body


def test_create_with_an_explicit_id_then_without(staff_api):
    response = staff_api.post("/exams", {**VALID, "id": 40}, format="json")
    assert response.status_code == 201, response.data
    assert response.json()["id"] == 40
    # automatic ids carry on above explicit ones (PostgreSQL's sequence included)
    for _ in range(2):
        response = staff_api.post("/exams", VALID, format="json")
        assert response.status_code == 201, response.data
        assert response.json()["id"] > 40


def test_create_with_a_taken_id_is_a_409_naming_id(staff_api, make_exam):
    exam = make_exam()
    before = snapshot()
    response = staff_api.post("/exams", {**VALID, "id": exam.id}, format="json")
    assert response.status_code == 409
    assert "id" in response.json()
    assert snapshot() == before


def test_plain_curl_style_json_body_works(staff_api):
    import json

    response = staff_api.post("/exams", json.dumps(VALID), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201, response.content


def test_naive_times_are_utc_and_offsets_are_converted(staff_api):
    response = staff_api.post(
        "/exams", {**VALID, "start": "2030-06-02T09:00:00", "end": "2030-06-02T12:00:00+02:00"}, format="json"
    )
    assert response.status_code == 201, response.data
    assert response.json()["start"] == "2030-06-02T09:00:00Z"
    assert response.json()["end"] == "2030-06-02T10:00:00Z"


@pytest.mark.parametrize(
    "change,field",
    [
        ({"end": "2030-06-02T08:00:00Z"}, "end"),
        ({"end": VALID["start"]}, "end"),
        ({"students": 2501}, "students"),
        ({"students": -1}, "students"),
        ({"students": "many"}, "students"),
        ({"students": True}, "students"),
        ({"students": None}, "students"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"start": "next tuesday"}, "start"),
        ({"start": "2030-13-40T09:00:00Z"}, "start"),
        ({"end": 12}, "end"),
        ({"id": 0}, "id"),
        ({"id": -5}, "id"),
        ({"id": 2**31}, "id"),
        ({"id": "abc"}, "id"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(staff_api, make_exam, change, field):
    make_exam()
    before = snapshot()
    response = staff_api.post("/exams", {**VALID, **change}, format="json")
    assert response.status_code == 400, response.data
    assert list(response.json()) == [field]
    assert snapshot() == before


@pytest.mark.parametrize("missing", ["name", "start", "end", "students"])
def test_create_needs_every_field(staff_api, missing):
    body = {k: v for k, v in VALID.items() if k != missing}
    response = staff_api.post("/exams", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [missing]
    assert Exam.objects.count() == 0


def test_student_limit_follows_the_setting(staff_api, settings):
    settings.EXAM_MAX_STUDENTS = 10
    assert staff_api.post("/exams", {**VALID, "students": 11}, format="json").status_code == 400
    assert staff_api.post("/exams", {**VALID, "students": 10}, format="json").status_code == 201
    assert staff_api.post("/exams", {**VALID, "students": 0}, format="json").status_code == 201


def test_malformed_json_is_a_400(staff_api):
    response = staff_api.post("/exams", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert Exam.objects.count() == 0


# --- list ---------------------------------------------------------------------------------


def test_list_is_ordered_by_start_and_paginated(staff_api, make_exam):
    late = make_exam(
        name="late",
        start=datetime(2030, 7, 1, 9, tzinfo=timezone.utc),
        end=datetime(2030, 7, 1, 10, tzinfo=timezone.utc),
    )
    early = make_exam(
        name="early",
        start=datetime(2030, 5, 1, 9, tzinfo=timezone.utc),
        end=datetime(2030, 5, 1, 10, tzinfo=timezone.utc),
    )
    body = staff_api.get("/exams").json()
    assert body["count"] == 2
    assert [e["id"] for e in body["results"]] == [early.id, late.id]
    assert set(body["results"][0]) == {"id", "name", "start", "end", "students", "updated_at"}
    assert staff_api.get("/exams?limit=1&offset=1").json()["results"][0]["id"] == late.id


# --- retrieve / update / delete ---------------------------------------------------------------


def test_unknown_exam_is_404(staff_api):
    for method in ("get", "put", "patch", "delete"):
        assert getattr(staff_api, method)("/exams/999", VALID, format="json").status_code == 404
    assert staff_api.get("/exams/abc").status_code == 404


def test_put_replaces_every_field(staff_api, make_exam):
    exam = make_exam()
    body = {"name": "Calculus II", "start": "2030-06-03T09:00:00Z", "end": "2030-06-03T10:30:00Z", "students": 2500}
    response = staff_api.put(f"/exams/{exam.id}", body, format="json")
    assert response.status_code == 200, response.data
    exam.refresh_from_db()
    assert (exam.name, exam.students) == ("Calculus II", 2500)
    assert exam.start == datetime(2030, 6, 3, 9, tzinfo=timezone.utc)
    assert exam.end == datetime(2030, 6, 3, 10, 30, tzinfo=timezone.utc)


def test_put_needs_every_field(staff_api, make_exam):
    exam = make_exam()
    before = snapshot()
    response = staff_api.put(f"/exams/{exam.id}", {"students": 5}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"name", "start", "end"}
    assert snapshot() == before


def test_patch_changes_only_what_is_given(staff_api, make_exam):
    exam = make_exam()
    response = staff_api.patch(f"/exams/{exam.id}", {"students": 80}, format="json")
    assert response.status_code == 200, response.data
    assert response.json()["students"] == 80
    exam.refresh_from_db()
    assert (exam.name, exam.students, exam.start) == ("Calculus I", 80, datetime(2030, 6, 1, 9, tzinfo=timezone.utc))


@pytest.mark.parametrize(
    "change,field",
    [
        ({"end": "2030-06-01T08:00:00Z"}, "end"),  # before the stored start
        ({"start": "2030-06-01T11:00:00Z"}, "end"),  # at the stored end
        ({"students": 2501}, "students"),
        ({"students": -3}, "students"),
        ({"name": ""}, "name"),
        ({"start": "soon"}, "start"),
        ({"id": 12345}, "id"),
    ],
)
def test_patch_rejects_bad_input_and_changes_nothing(staff_api, make_exam, change, field):
    exam = make_exam()
    before = snapshot()
    response = staff_api.patch(f"/exams/{exam.id}", change, format="json")
    assert response.status_code == 400, response.data
    assert list(response.json()) == [field]
    assert snapshot() == before


def test_patch_with_the_same_id_is_fine(staff_api, make_exam):
    exam = make_exam()
    assert staff_api.patch(f"/exams/{exam.id}", {"id": exam.id, "name": "Renamed"}, format="json").status_code == 200
    exam.refresh_from_db()
    assert exam.name == "Renamed"


def test_a_patch_needs_a_body_but_an_empty_object_is_a_no_op(staff_api, make_exam):
    exam = make_exam()
    response = staff_api.generic("PATCH", f"/exams/{exam.id}")
    assert response.status_code == 400 and list(response.json()) == ["body"]
    assert staff_api.patch(f"/exams/{exam.id}", {}, format="json").status_code == 200


def test_delete(staff_api, make_exam):
    exam, other = make_exam(), make_exam(name="Other")
    assert staff_api.delete(f"/exams/{exam.id}").status_code == 204
    assert list(Exam.objects.values_list("id", flat=True)) == [other.id]
    assert staff_api.get(f"/exams/{exam.id}").status_code == 404
    assert staff_api.delete(f"/exams/{exam.id}").status_code == 404


# --- the scheduler is told ---------------------------------------------------------------------


def test_every_write_wakes_the_scheduler_after_commit(staff_api, exam_changed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        exam_id = staff_api.post("/exams", VALID, format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        staff_api.patch(f"/exams/{exam_id}", {"students": 10}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        staff_api.put(f"/exams/{exam_id}", {**VALID, "students": 11}, format="json")
    with django_capture_on_commit_callbacks(execute=True):
        staff_api.delete(f"/exams/{exam_id}")
    assert exam_changed == [exam_id] * 4


def test_rejected_and_empty_writes_do_not_wake_the_scheduler(
    staff_api, make_exam, exam_changed, django_capture_on_commit_callbacks
):
    exam = make_exam()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert staff_api.post("/exams", {**VALID, "students": -1}, format="json").status_code == 400
        assert staff_api.patch(f"/exams/{exam.id}", {"students": 5000}, format="json").status_code == 400
        assert staff_api.patch(f"/exams/{exam.id}", {"students": exam.students}, format="json").status_code == 200
    assert callbacks == []
    assert exam_changed == []
