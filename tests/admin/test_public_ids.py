"""Job and program admin pages are addressed by their public id (issue 8, point 7)."""

from __future__ import annotations

import html
import re
from urllib.parse import unquote as unquote_url

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import unquote

from core.fields import public_id_error
from jobs.admin_public_id import public_id_url
from jobs.models import Job
from tests.factories import make_device, make_job, make_program

pytestmark = pytest.mark.django_db

# Valid ids (the API's rules) that are awkward in a URL: dots, non-ASCII, a
# percent escape, the admin's own quoting character, URL delimiters, a number.
ODD_KEYS = ["job.1", "ü-ß", "%41", "a_b", "a_5Fb", "x?y#z", "p:1;q=2&r", "+1", "日本"]


def _links(page) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="([^"]+)"', page.content.decode())]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_but_valid_keys_have_working_job_and_program_pages(admin_client_, user, key):
    assert public_id_error(key) is None
    program = make_program(user, key=key)
    job = make_job(program, key=key)
    make_job(program, key=key + "-other")  # a neighbour the page must not show instead

    for model, obj in (("job", job), ("program", program)):
        url = public_id_url(obj)
        assert unquote(unquote_url(url.split("/")[4])) == key  # the segment is the key, not the database id
        assert url in _links(admin_client_.get(f"/admin/jobs/{model}/"))  # the list links there
        page = admin_client_.get(url)
        assert page.status_code == 200, url
        assert page.context["original"].pk == obj.pk
        assert page.context["original"].key == key
        # History: reachable by key, and its breadcrumb leads back to the same page.
        history = admin_client_.get(public_id_url(obj, view="history"))
        assert history.status_code == 200
        assert url in _links(history)
        assert public_id_url(obj, view="history") in _links(page)
    # The job page links to its program by key, and the program page to its jobs.
    assert public_id_url(program) in _links(admin_client_.get(public_id_url(job)))
    assert public_id_url(job) in _links(admin_client_.get(public_id_url(program)))


def test_a_number_in_the_url_is_a_key_never_a_database_id(admin_client_, user):
    program = make_program(user, key="prog")
    first = make_job(program, key="first")
    numbered = make_job(program, key=str(first.pk + 100))
    # The number of the first job's row names no job: the admin's "doesn't exist" answer.
    missing = admin_client_.get(f"/admin/jobs/job/{first.pk}/change/", follow=True)
    assert missing.redirect_chain[-1][0] == "/admin/"
    assert "doesn’t exist" in missing.content.decode()
    # A numeric key is the job with that key, whatever its row number.
    page = admin_client_.get(f"/admin/jobs/job/{numbered.key}/change/")
    assert page.status_code == 200 and page.context["original"].pk == numbered.pk
    assert admin_client_.get(f"/admin/jobs/program/{program.pk}/change/").status_code == 302


def test_hand_typed_urls_and_the_short_form_find_the_key(admin_client_, user):
    job = make_job(make_program(user), key="a_b")
    # The admin quoting leaves "_b" alone: what an operator types works too.
    assert admin_client_.get("/admin/jobs/job/a_b/change/").context["original"].pk == job.pk
    assert admin_client_.get("/admin/jobs/job/a_b/", follow=True).context["original"].pk == job.pk


@pytest.mark.parametrize("segment", ["%00", "x%00y", "9" * 400, "%ED%A0%80", "..", "_00"])
def test_hostile_segments_are_the_missing_object_answer(admin_client_, user, segment):
    make_job(make_program(user), key="j1")
    for view in ("change", "history"):
        assert admin_client_.get(f"/admin/jobs/job/{segment}/{view}/").status_code == 302
        assert admin_client_.get(f"/admin/jobs/program/{segment}/{view}/").status_code == 302


def test_device_pages_link_jobs_by_key(admin_client_, user):
    device = make_device("qpu.7")
    job = make_job(make_program(user), key="%41", status="running", device=device)
    device_page = admin_client_.get("/admin/devices/device/qpu.7/change/")
    assert public_id_url(job) in _links(device_page)
    assert public_id_url(job) in _links(admin_client_.get("/admin/devices/device/"))
    job_page = admin_client_.get(public_id_url(job))
    assert "/admin/devices/device/qpu.7/change/" in _links(job_page)
    assert not LogEntry.objects.exists() and Job.objects.count() == 1
