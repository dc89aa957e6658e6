"""No 500s (issue 6, section 7): hostile numbers, strings, ids, dates and
admin query strings get a 4xx naming the field, or a normal page."""

from __future__ import annotations

import pytest

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
BAD_ID_CHARS = ["\\u0000", "\\u0007", "\\u007f", "\\u0080", "\\u0085", "\\u009f", "\\u200b", "\\u202e",
                "\\ufeff", "\\u00ad", "\\u2060", "\\ud800"]


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


def test_admin_device_form_applies_the_id_rules(client, django_user_model):
    admin_user = django_user_model.objects.create_superuser(username="root", password="x-root-pass-9")
    client.force_login(admin_user)
    form = {"id": "qpu\u200b7", "address": "sim", "type": "a", "size": "2"}
    r = client.post("/admin/devices/device/add/", form)
    assert r.status_code == 200 and b"invisible" in r.content
    assert client.post("/admin/devices/device/add/", {**form, "id": "qpu-7"}).status_code == 302
