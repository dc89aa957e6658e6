"""No 500s (issue 6, section 7): hostile numbers, strings, ids, dates and
admin query strings get a 4xx naming the field, or a normal page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from urllib.parse import parse_qsl, quote

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse

from exams.models import Exam
from exams.services import exam_create
from jobs.models import Job, Program

pytestmark = pytest.mark.django_db

NON_FINITE = ["1e309", "-1e309", "NaN", "Infinity", "-Infinity", "1.5e99999"]
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded"]  # the latter: plain `curl -d`


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_non_finite_numbers_in_program_instructions_are_a_400_naming_the_place(api, literal, content_type):
    body = '{"priority": 1, "device_type": "a", "jobs": [{"shots": 1}, {"instructions": [{"op": "rx", "angle": %s}]}]}'
    r = api.post("/programs", data=body % literal, content_type=content_type)
    assert r.status_code == 400, r.content
    assert list(r.json()) == ["jobs[1].instructions[0].angle"]
    assert "finite" in r.json()["jobs[1].instructions[0].angle"][0]
    assert not Program.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize("literal", NON_FINITE)
@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_non_finite_numbers_in_a_flat_job_are_a_400_naming_the_place(api, literal, content_type):
    body = '{"priority": 1, "device_type": "a", "instructions": {"deep": [[%s]]}}' % literal
    r = api.post("/jobs", data=body, content_type=content_type)
    assert r.status_code == 400
    assert list(r.json()) == ["instructions.deep[0][0]"]


def test_large_finite_numbers_are_still_fine(api):
    body = '{"priority": 1, "device_type": "a", "jobs": [{"instructions": [1.7976931348623157e308, -1e-400]}]}'
    assert api.post("/programs", data=body, content_type="application/json").status_code == 201


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_lone_surrogates_are_a_400_naming_the_place(api, staff_api, content_type):
    body = '{"priority": 1, "device_type": "a", "jobs": [{"instructions": ["ok \\ud83d\\ude00", "\\udc00"]}]}'
    r = api.post("/programs", data=body, content_type=content_type)
    assert r.status_code == 400 and list(r.json()) == ["jobs[0].instructions[1]"]
    r = staff_api.post("/devices", data='{"id": "d\\ud800", "type": "a", "size": 2}', content_type=content_type)
    assert r.status_code == 400 and list(r.json()) == ["id"]
    # A proper pair (an emoji) is a normal character.
    body = '{"priority": 1, "device_type": "a", "jobs": [{"instructions": ["\\ud83d\\ude00"]}]}'
    assert api.post("/programs", data=body, content_type=content_type).status_code == 201


def test_jobs_given_as_json_text_in_a_form_are_checked_too(api):
    r = api.post("/programs", {"priority": 1, "device_type": "a", "jobs": '[{"instructions": [1e309]}]'})
    assert r.status_code == 400 and "jobs" in r.json()


# --- ids -------------------------------------------------------------------------------

# JSON escapes of characters no id may hold: C0/C1 controls, NEL, zero-width
# space, bidi override, BOM, soft hyphen, word joiner, a lone surrogate.
BAD_ID_CHARS = [
    "\\u0000",
    "\\u0007",
    "\\u007f",
    "\\u0080",
    "\\u0085",
    "\\u009f",
    "\\u200b",
    "\\u202e",
    "\\ufeff",
    "\\u00ad",
    "\\u2060",
    "\\ud800",
]


def _post(client, path, body):
    return client.post(path, data=body, content_type="application/json")


@pytest.mark.parametrize("char", BAD_ID_CHARS)
def test_ids_with_control_or_invisible_characters_are_a_400(api, staff_api, char):
    cases = [
        (staff_api, "/devices", '{"id": "qpu%s7", "type": "a", "size": 2}', "id"),
        (api, "/jobs", '{"id": "job%s1", "priority": 1, "device_type": "a"}', "id"),
        (api, "/jobs", '{"program_id": "p%s1", "priority": 1, "device_type": "a"}', "program_id"),
        (api, "/programs", '{"id": "p%s2", "priority": 1, "device_type": "a", "jobs": [{}]}', "id"),
        (api, "/programs", '{"priority": 1, "device_type": "a", "jobs": [{"id": "j%s2"}]}', "jobs[0].id"),
    ]
    for client, path, body, field in cases:
        r = _post(client, path, body % char)
        assert r.status_code == 400, (path, field, r.content)
        assert field in r.json(), (path, r.json())
    assert not Job.objects.exists()


def test_visible_non_ascii_ids_are_fine(api, staff_api):
    assert _post(staff_api, "/devices", '{"id": "qpu-é-日本", "type": "a", "size": 2}').status_code == 201
    assert staff_api.get("/devices/qpu-é-日本").status_code == 200
    assert _post(api, "/jobs", '{"id": "tâche-1", "priority": 1, "device_type": "a"}').status_code == 201
    assert api.get("/jobs/tâche-1").status_code == 200


def test_admin_device_form_applies_the_id_rules(admin_client_):
    client = admin_client_
    form = {"id": "qpu\u200b7", "address": "sim", "type": "a", "size": "2"}
    r = client.post("/admin/devices/device/add/", form)
    assert r.status_code == 200 and b"invisible" in r.content
    assert client.post("/admin/devices/device/add/", {**form, "id": "qpu-7"}).status_code == 302


# --- exams: the date window, and every admin page for the boundary exams ------------------


UTC = dt_timezone.utc
FIRST = datetime(2000, 1, 1, tzinfo=UTC)
LAST = datetime(2100, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    "start, end, field",
    [
        ("1999-12-31T23:59:59Z", "2000-01-01T01:00:00Z", "start"),
        ("2100-12-31T22:00:00Z", "2101-01-01T00:00:00Z", "end"),
        ("0001-01-01T00:00:00+01:00", "2030-01-01T00:00:00Z", "start"),  # before datetime's range in UTC
        ("2030-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00", "end"),  # after it
        ("2030-01-01T00:00:00Z", "+12030-01-01T00:00:00Z", "end"),
    ],
)
def test_exam_dates_outside_the_window_are_a_400_naming_the_field(staff_api, start, end, field):
    r = staff_api.post("/exams", {"name": "x", "start": start, "end": end, "students": 3}, format="json")
    assert r.status_code == 400 and field in r.json(), r.content
    assert not Exam.objects.exists()


def test_exam_updates_and_services_apply_the_window(staff_api, db):
    exam = exam_create(name="x", start=FIRST, end=FIRST + timedelta(hours=1), students=1)
    r = staff_api.patch(f"/exams/{exam.pk}", {"start": "1999-06-01T00:00:00Z"}, format="json")
    assert r.status_code == 400 and "2000" in r.json()["start"][0]
    with pytest.raises(ValidationError) as info:
        exam_create(name="y", start=LAST - timedelta(hours=1), end=LAST + timedelta(microseconds=1), students=1)
    assert "end" in info.value.message_dict


def test_admin_exam_form_applies_the_window(admin_client):
    form = {
        "name": "x",
        "start_0": "1999-12-31",
        "start_1": "23:00:00",
        "end_0": "2000-01-01",
        "end_1": "01:00:00",
        "students": "3",
    }
    r = admin_client.post("/admin/exams/exam/add/", form)
    assert r.status_code == 200 and b"2000 to 2100" in r.content
    assert not Exam.objects.exists()
    r = admin_client.post("/admin/exams/exam/add/", {**form, "start_0": "2000-01-01", "start_1": "00:00:00"})
    assert r.status_code == 302 and Exam.objects.count() == 1


@pytest.fixture
def admin_client(admin_client_):
    return admin_client_


@pytest.fixture
def boundary_exams(db):
    """The extremes the window allows: the first and last instants, the
    longest exam, the most students right at both edges."""
    from django.conf import settings

    most = settings.EXAM_MAX_STUDENTS
    return [
        exam_create(name="first", start=FIRST, end=FIRST + timedelta(seconds=1), students=most),
        exam_create(name="last", start=LAST - timedelta(seconds=1), end=LAST, students=most),
        exam_create(name="century", start=FIRST, end=LAST, students=most),
        exam_create(name="empty", start=LAST - timedelta(days=1), end=LAST, students=0),
    ]


def test_every_admin_page_renders_for_the_boundary_exams(admin_client, boundary_exams):
    listing = admin_client.get("/admin/exams/exam/")
    assert listing.status_code == 200
    for exam in boundary_exams:
        assert f"/admin/exams/exam/{exam.pk}/change/" in listing.content.decode()
        r = admin_client.get(f"/admin/exams/exam/{exam.pk}/change/")
        assert r.status_code == 200, exam.name
        assert b"vm-plan-chart" in r.content  # the VM timeline
        assert admin_client.get(f"/admin/exams/exam/{exam.pk}/delete/").status_code == 200
        assert admin_client.get(f"/admin/exams/exam/{exam.pk}/history/").status_code == 200
    for query in [
        "start__year=2000",
        "start__year=2100",
        "start__year=2100&start__month=12",
        "start__year=2100&start__month=12&start__day=31",
        "timing=upcoming",
        "timing=past",
    ]:
        assert admin_client.get(f"/admin/exams/exam/?{query}").status_code == 200, query


def test_the_exam_plan_api_answers_for_the_boundary_exams(staff_api, boundary_exams):
    for exam in boundary_exams:
        assert staff_api.get(f"/exams/{exam.pk}").status_code == 200
        assert staff_api.get(f"/exams/{exam.pk}/plan").status_code == 200
    assert staff_api.get("/exams").status_code == 200


# --- admin changelists with hostile query strings --------------------------------------------

# Raw query-string values (already percent-encoded where needed).
# Raw query-string values: NUL, a 400-digit number, the last 4-digit year
# (its successor overflows datetime), an impossible date, an invalid UTF-8
# sequence (a surrogate), a number JSON cannot hold.
HOSTILE_VALUES = ["%00", "9" * 400, "9999", "9999-99-99", "%ED%A0%80", "1e309"]
GENERIC_PARAMS = ["q", "o", "p", "_to_field"]


def _filter_params(html: str) -> set[str]:
    """Query parameter names the page's own filter and sort links use."""
    names = set()
    for href in re.findall(r'href="\?([^"#]*)"', html):
        names.update(name for name, _ in parse_qsl(href.replace("&amp;", "&"), keep_blank_values=True))
    return names


@pytest.fixture
def some_of_everything(boundary_exams, user, staff_api, anon_api):
    """Rows in every table, so that every filter offers its choices."""
    from jobs.services import JobSpec, program_create
    from vms.models import VM, ProviderCall

    body = {"id": "qpu-1", "address": "sim", "type": "analog", "size": 4}
    assert staff_api.post("/devices", body, format="json").status_code == 201
    program_create(owner=user, priority=3, device_type="analog", jobs=[JobSpec(), JobSpec(min_size=2)])
    vm = VM.objects.create(
        uuid="u-1",
        exam=boundary_exams[0],
        exam_ref=boundary_exams[0].pk,
        state="ready",
        requested_at=FIRST,
        ready_at=FIRST,
    )
    ProviderCall.objects.create(t=FIRST, endpoint="start", vm=vm, vm_uuid="u-1", exam_ref=vm.exam_ref, outcome="ok")
    # a failed and a successful login, for django-axes' logs
    anon_api.post("/api/token/", {"username": user.username, "password": "wrong"}, format="json")
    anon_api.post("/api/token/", {"username": user.username, "password": "pw-alice-123"}, format="json")


def _changelists():
    return sorted(
        (f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist", model) for model in admin.site._registry
    )


@pytest.mark.slow
@pytest.mark.parametrize("url_name, model", _changelists(), ids=[name for name, _ in _changelists()])
def test_every_admin_changelist_survives_hostile_query_strings(admin_client, some_of_everything, url_name, model):
    url = reverse(url_name)
    page = admin_client.get(url)
    assert page.status_code == 200, url
    params = _filter_params(page.content.decode()) | set(GENERIC_PARAMS)
    hierarchy = admin.site._registry[model].date_hierarchy
    if hierarchy:
        params |= {f"{hierarchy}__{part}" for part in ("year", "month", "day")}
    failures = []
    for name in sorted(params):
        for value in HOSTILE_VALUES:
            try:
                r = admin_client.get(f"{url}?{quote(name)}={value}")
            except Exception as exc:  # the test client re-raises what would be a 500
                failures.append((name, value[:20], repr(exc)[:120]))
                continue
            # 302: the admin's own answer to a bad lookup, its "invalid" page (?e=1).
            invalid_page = r.status_code == 302 and r["Location"].endswith("?e=1")
            if r.status_code not in (200, 400) and not invalid_page:
                failures.append((name, value[:20], r.status_code))
    assert not failures, "\n".join(map(str, failures))
    assert admin_client.get(f"{url}?e=1").status_code == 200


def test_date_hierarchy_edges_are_the_invalid_lookup_page_not_a_500(admin_client, boundary_exams):
    for query in [
        "start__year=9999&start__month=12&start__day=31",
        "start__year=9999",
        "start__year=" + "9" * 30,
        "start__year=2030&start__month=2&start__day=30",
        "start__year=0",
    ]:
        r = admin_client.get(f"/admin/exams/exam/?{query}")
        assert r.status_code == 302 and r["Location"].endswith("?e=1"), query


# --- the API's own query strings and paths ---------------------------------------------------

API_LISTS = ["/jobs", "/programs", "/devices", "/vms", "/exams"]
API_PARAMS = ["status", "program", "device_type", "type", "state", "exam", "limit", "offset"]
API_VALUES = ["%00", "9" * 400, "-" + "9" * 30, "9999-99-99", "%ED%A0%80", "1e309", "NaN"]


@pytest.mark.parametrize("path", API_LISTS)
def test_api_list_filters_with_hostile_values_are_200_or_400(staff_api, path):
    failures = []
    for name in API_PARAMS:
        for value in API_VALUES:
            try:
                r = staff_api.get(f"{path}?{name}={value}")
            except Exception as exc:  # what would be a 500
                failures.append((name, value[:12], repr(exc)[:120]))
                continue
            if r.status_code not in (200, 400):
                failures.append((name, value[:12], r.status_code))
    assert not failures, failures


PATH_SEGMENTS = ["%00", "9" * 40, "2147483648", "%ED%A0%80", "%C2%85", "%E2%80%8B", ".."]
PATH_TEMPLATES = [
    "/jobs/{}",
    "/jobs/{}/cancel",
    "/programs/{}",
    "/programs/{}/cancel",
    "/devices/{}",
    "/devices/{}/heartbeat",
    "/devices/{}/drain",
    "/exams/{}",
    "/exams/{}/plan",
]


@pytest.mark.parametrize("template", PATH_TEMPLATES)
def test_odd_ids_in_paths_are_never_a_500(staff_api, template):
    failures = []
    for segment in PATH_SEGMENTS:
        for method in ("get", "post", "patch", "delete"):
            try:
                r = getattr(staff_api, method)(template.format(segment), {}, format="json")
            except Exception as exc:
                failures.append((segment, method, repr(exc)[:120]))
                continue
            if r.status_code >= 500:
                failures.append((segment, method, r.status_code))
    assert not failures, failures
