"""Operators manage exams in the Django admin; writes go through exams.services."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from exams.models import Exam

pytestmark = pytest.mark.django_db


def form(**overrides):
    data = {
        "name": "Biology",
        "start_0": "2030-06-05",
        "start_1": "09:00:00",
        "end_0": "2030-06-05",
        "end_1": "11:00:00",
        "students": "40",
    }
    data.update(overrides)
    return data


@pytest.fixture
def operator_client(client, django_user_model, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-123")
    client.force_login(user)
    return client


def test_add_exam(operator_client, exam_changed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post("/admin/exams/exam/add/", form())
    assert response.status_code == 302, response.content[:2000]
    exam = Exam.objects.get()
    assert (exam.name, exam.students) == ("Biology", 40)
    assert exam.start == datetime(2030, 6, 5, 9, tzinfo=timezone.utc)
    assert exam_changed == [exam.pk]


@pytest.mark.parametrize(
    "overrides,field,message",
    [
        ({"end_1": "08:00:00"}, "end", "End must be after start."),
        ({"students": "2501"}, "students", "less than or equal to 2500"),
        ({"students": "-1"}, "students", "greater than or equal to 0"),
    ],
)
def test_add_rejects_bad_input_on_the_field(operator_client, overrides, field, message):
    response = operator_client.post("/admin/exams/exam/add/", form(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not Exam.objects.exists()


def test_change_and_delete_exam(operator_client, make_exam, exam_changed, django_capture_on_commit_callbacks):
    exam = make_exam()
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"/admin/exams/exam/{exam.pk}/change/", form(students="2500"))
    assert response.status_code == 302
    exam.refresh_from_db()
    assert exam.students == 2500 and exam.name == "Biology"
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"/admin/exams/exam/{exam.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Exam.objects.exists()
    assert exam_changed == [exam.pk, exam.pk]


def test_bulk_delete_goes_through_the_service(
    operator_client, make_exam, exam_changed, django_capture_on_commit_callbacks
):
    exams = [make_exam(name=f"E{i}") for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            "/admin/exams/exam/",
            {"action": "delete_selected", "_selected_action": [e.pk for e in exams[:2]], "post": "yes"},
        )
    assert response.status_code == 302
    assert list(Exam.objects.values_list("pk", flat=True)) == [exams[2].pk]
    assert sorted(exam_changed) == sorted(e.pk for e in exams[:2])


def test_changelist_search_and_filters(operator_client, make_exam):
    make_exam(name="Chemistry")
    make_exam(
        name="History",
        start=datetime(2020, 1, 1, 9, tzinfo=timezone.utc),
        end=datetime(2020, 1, 1, 10, tzinfo=timezone.utc),
    )
    page = operator_client.get("/admin/exams/exam/?q=chem")
    assert page.status_code == 200
    assert [e.name for e in page.context["cl"].result_list] == ["Chemistry"]
    upcoming = operator_client.get("/admin/exams/exam/?timing=upcoming")
    assert [e.name for e in upcoming.context["cl"].result_list] == ["Chemistry"]
    past = operator_client.get("/admin/exams/exam/?timing=past")
    assert [e.name for e in past.context["cl"].result_list] == ["History"]
    assert operator_client.get("/admin/exams/exam/?start__year=2030").status_code == 200
