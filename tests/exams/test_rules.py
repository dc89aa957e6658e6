"""One set of exam rules (exams.rules): the same bad exam is refused by every
entry point - the API, the admin form, the services, the VM scenario parser
and the what-if preview - naming the same field with the same message."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError

from exams import rules
from exams.models import Exam
from exams.rules import ExamRuleError
from exams.services import exam_create

pytestmark = pytest.mark.django_db

# Far in the future (and the window's last years): no VM impact check of the
# admin form can get in the way, whenever the test runs.
GOOD = {"name": "Optics", "start": "2090-06-02T09:00:00Z", "end": "2090-06-02T12:00:00Z", "students": 300}

# (what is wrong, the field named, the message: the rule's own constant)
BAD = [
    ({"end": "2090-06-02T08:00:00Z"}, "end", rules.END_NOT_AFTER_START),
    ({"end": GOOD["start"]}, "end", rules.END_NOT_AFTER_START),
    ({"students": 2501}, "students", rules.students_too_many(2500)),
    ({"students": -1}, "students", rules.STUDENTS_TOO_FEW),
    ({"students": "many"}, "students", rules.NOT_AN_INTEGER),
    ({"name": "   "}, "name", rules.NAME_BLANK),
    ({"name": "x" * 201}, "name", rules.NAME_TOO_LONG),
    ({"start": "1999-12-31T23:00:00Z", "end": "2000-01-01T01:00:00Z"}, "start", rules.DATE_WINDOW),
    ({"start": "2100-12-31T23:00:00Z", "end": "2101-01-01T00:30:00Z"}, "end", rules.DATE_WINDOW),
]
IDS = [f"{field}-{i}" for i, (_change, field, _message) in enumerate(BAD)]


def admin_form(body: dict) -> dict:
    """The admin's add form: each time in its two boxes (date, time)."""
    form = {}
    for key, value in body.items():
        if key in ("start", "end"):
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
            form[f"{key}_0"], form[f"{key}_1"] = f"{t:%Y-%m-%d}", f"{t:%H:%M:%S}"
        else:
            form[key] = str(value)
    return form


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "x-root-pass-9"))
    return client


def through_api(staff_api, body: dict) -> dict:
    response = staff_api.post("/exams", body, format="json")
    assert response.status_code == 400, response.content
    return response.json()


def through_admin(admin_client, body: dict) -> dict:
    response = admin_client.post("/admin/exams/exam/add/", admin_form(body))
    assert response.status_code == 200, response.status_code  # the form again, with its errors
    return {field: list(errors) for field, errors in response.context["adminform"].form.errors.items()}


def through_services(body: dict) -> dict:
    with pytest.raises(ValidationError) as excinfo:
        exam_create(**body)
    return excinfo.value.message_dict


def through_scenario(body: dict) -> tuple[str, str]:
    from vms.simulation import ScenarioError, parse_scenario

    with pytest.raises(ScenarioError) as excinfo:
        parse_scenario({"start": "2030-01-01T00:00:00Z", "exams": [{"id": 1, **body}]})
    return excinfo.value.field, excinfo.value.message


def through_preview(body: dict) -> tuple[str, str]:
    from vms.preview import parse_changes
    from vms.simulation import ScenarioError

    with pytest.raises(ScenarioError) as excinfo:
        parse_changes({"changes": [{"action": "create", "exam": body}]})
    return excinfo.value.field, excinfo.value.message


@pytest.mark.parametrize("change,field,message", BAD, ids=IDS)
def test_every_entry_point_names_the_same_field_with_the_same_message(staff_api, admin_client, change, field, message):
    body = {**GOOD, **change}
    assert through_api(staff_api, body) == {field: [message]}
    assert through_admin(admin_client, body) == {field: [message]}
    assert through_services(body) == {field: [message]}
    assert through_scenario(body) == (f"exams[0].{field}", f"exams[0].{field}: {message}")
    assert through_preview(body) == (f"changes[0].exam.{field}", message)
    assert not Exam.objects.exists()


def test_the_good_exam_passes_everywhere(staff_api, admin_client):
    """The oracle's other half: without the fault, every entry point accepts it."""
    from vms.preview import parse_changes
    from vms.simulation import parse_scenario

    assert staff_api.post("/exams", GOOD, format="json").status_code == 201
    assert admin_client.post("/admin/exams/exam/add/", admin_form(GOOD)).status_code == 302
    exam_create(**GOOD)
    assert len(parse_scenario({"start": "2030-01-01T00:00:00Z", "exams": [{"id": 1, **GOOD}]}).exams) == 1
    assert len(parse_changes({"changes": [{"action": "create", "exam": GOOD}]})) == 1
    assert Exam.objects.count() == 3


def test_an_update_that_breaks_the_order_is_refused_against_end_everywhere(staff_api, admin_client):
    """A change of one time is checked against the stored (or earlier) other one."""
    from vms.simulation import ScenarioError, parse_scenario

    exam = exam_create(**GOOD)
    late_start = {"start": "2090-06-02T13:00:00Z"}
    response = staff_api.patch(f"/exams/{exam.pk}", late_start, format="json")
    assert response.status_code == 400 and response.json() == {"end": [rules.END_NOT_AFTER_START]}
    form = admin_form({**GOOD, **late_start})
    errors = admin_client.post(f"/admin/exams/exam/{exam.pk}/change/", form).context["adminform"].form.errors
    assert dict(errors) == {"end": [rules.END_NOT_AFTER_START]}
    scenario = {
        "start": "2090-06-01T00:00:00Z",
        "exams": [{"id": 1, **GOOD}],
        "changes": [{"at": "2090-06-01T10:00:00Z", "action": "update", "exam": {"id": 1, **late_start}}],
    }
    with pytest.raises(ScenarioError) as excinfo:
        parse_scenario(scenario)
    assert (excinfo.value.field, excinfo.value.message) == (
        "changes[0].exam.end",
        f"changes[0].exam.end: {rules.END_NOT_AFTER_START}",
    )
    exam.refresh_from_db()
    assert exam.start == datetime(2090, 6, 2, 9, tzinfo=timezone.utc)


# --- the rules themselves ------------------------------------------------------------


def test_names_are_stripped_and_bounded():
    assert rules.check_name("  Optics ") == "Optics"
    assert rules.check_name(" " + "x" * 200 + " ") == "x" * 200
    for bad, message in [
        ("", rules.NAME_BLANK),
        ("x" * 201, rules.NAME_TOO_LONG),
        (5, rules.NOT_A_STRING),
        (None, rules.NULL),
    ]:
        with pytest.raises(ExamRuleError) as excinfo:
            rules.check_name(bad)
        assert (excinfo.value.field, excinfo.value.message) == ("name", message)


def test_students_follow_the_setting(settings):
    settings.EXAM_MAX_STUDENTS = 10
    assert rules.check_students(10) == 10 and rules.check_students(0) == 0
    for bad in (11, -1, True, 1.0, "3"):
        with pytest.raises(ExamRuleError) as excinfo:
            rules.check_students(bad)
        assert excinfo.value.field == "students"
    with pytest.raises(ExamRuleError, match=r"less than or equal to 10 \(EXAM_MAX_STUDENTS\)"):
        rules.check_students(11)


def test_ids_are_32_bit_and_positive():
    assert rules.check_id(1) == 1 and rules.check_id(2**31 - 1) == 2**31 - 1
    for bad in (0, 2**31, True, "7", None):
        with pytest.raises(ExamRuleError) as excinfo:
            rules.check_id(bad)
        assert excinfo.value.field == "id"


def test_times_are_utc_and_within_the_window():
    utc = timezone.utc
    assert rules.check_time("2030-06-02T11:00:00+02:00", field="start") == datetime(2030, 6, 2, 9, tzinfo=utc)
    assert rules.check_time("2030-06-02T09:00:00", field="start") == datetime(2030, 6, 2, 9, tzinfo=utc)
    assert rules.check_time(datetime(2000, 1, 1), field="start") == datetime(2000, 1, 1, tzinfo=utc)
    last = datetime(2100, 12, 31, 23, 59, 59, 999999, tzinfo=utc)
    assert rules.check_time(last, field="end") == last
    for bad, message in [
        (last + timedelta(microseconds=1), rules.DATE_WINDOW),
        ("1999-12-31T23:59:59Z", rules.DATE_WINDOW),
        ("0001-01-01T00:00:00+01:00", rules.DATE_WINDOW),  # before datetime's range once in UTC
        ("soon", rules.TIME_INVALID),
        (12, rules.TIME_INVALID),
    ]:
        with pytest.raises(ExamRuleError) as excinfo:
            rules.check_time(bad, field="end")
        assert (excinfo.value.field, excinfo.value.message) == ("end", message), bad


def test_check_exam():
    values = {"name": " A ", "start": "2030-06-02T09:00:00Z", "end": "2030-06-02T10:00:00Z", "students": 3}
    assert rules.check_exam(values)["name"] == "A"
    bad = {**values, "end": "2030-06-02T08:00:00Z", "students": -1, "name": ""}
    with pytest.raises(ExamRuleError) as excinfo:
        rules.check_exam(bad)
    assert excinfo.value.field == "name"  # the first broken rule, in field order
    assert rules.check_exam({"students": 5}) == {"students": 5}  # partial: only what is given
