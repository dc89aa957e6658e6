"""What the operators' pages show (issue 8, point 7): queue position and
estimated start on the job page, current and recent jobs and the drain
reason on the device page, no Save button where nothing can be saved, and
actions that still work on view-only lists."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from devices.models import Device, DeviceStatus
from exams.services import exam_create
from jobs import selectors
from jobs.admin_public_id import public_id_url
from jobs.models import Job, JobStatus
from tests.factories import make_device, make_job, make_program
from vms.models import VM, ProviderCall

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
T0 = datetime(2026, 3, 2, 7, 15, 42, tzinfo=UTC)
SAVE = 'name="_save"'


def _done(program, device, seconds: float, **fields):
    return make_job(
        program,
        status=JobStatus.DONE,
        device=device,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=seconds),
        **fields,
    )


def test_job_page_shows_queue_position_and_estimated_start(admin_client_, user):
    """The page shows the API's own estimate (jobs.estimates), to the second."""
    program = make_program(user, device_type="analog")
    device = make_device("qpu-1", type="analog")
    _done(program, device, 60)
    _done(program, device, 120)
    make_job(program, status=JobStatus.RUNNING, device=device)
    make_job(program, key="ahead")
    waiting = make_job(program, key="waiting")

    page = admin_client_.get(public_id_url(waiting)).content.decode()
    assert "Queue position" in page and "2 (among queued analog jobs)" in page
    info = selectors.job_queue_info(Job.objects.get(pk=waiting.pk))
    assert info.estimated_start is not None, info
    shown = re.search(r"Estimated start:</label>\s*<div class=\"readonly\">([^<]+) UTC \(in about [^)]+\)</div>", page)
    assert shown, page
    shown = datetime.strptime(shown.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    # two reads of a clock-relative estimate: equal up to the time between them
    assert abs((shown - info.estimated_start).total_seconds()) <= 5


def test_estimated_start_is_unknown_without_a_device_with_the_reason(admin_client_, user):
    program = make_program(user, device_type="digital")
    make_device("small", type="digital", size=2)
    _done(program, Device.objects.get(pk="small"), 30)
    big = make_job(program, key="big", min_size=5)
    info = selectors.job_queue_info(Job.objects.get(pk=big.pk))
    assert info.estimated_start is None and info.estimate_reason
    page = admin_client_.get(public_id_url(big)).content.decode()
    assert f"unknown ({info.estimate_reason})" in html.unescape(page)
    done = Job.objects.filter(status=JobStatus.DONE).first()
    assert "- (not queued)" in admin_client_.get(public_id_url(done)).content.decode()


def test_device_page_shows_current_and_recent_jobs_and_the_drain_reason(admin_client_, user):
    program = make_program(user)
    device = make_device("qpu-7")
    old = [_done(program, device, 5, key=f"old-{i}") for i in range(21)]
    failed = make_job(program, key="broke", status=JobStatus.FAILED, device=device, error="device timeout")
    current = make_job(program, key="now-running", status=JobStatus.RUNNING, device=device)
    make_job(program, key="elsewhere", status=JobStatus.DONE, device=make_device("qpu-8"))
    Device.objects.filter(pk="qpu-7").update(status=DeviceStatus.DRAINING, status_reason="failed 3 jobs in a row")

    page = admin_client_.get("/admin/devices/device/qpu-7/change/").content.decode()
    assert "draining (failed 3 jobs in a row)" in page
    assert page.count(public_id_url(current)) == 2  # the current job, and first among the recent ones
    assert public_id_url(failed) in page and "device timeout" in page
    shown = [job for job in old if public_id_url(job) in page]
    assert shown == old[3:]  # 20 in all: the running, the failed and the 18 newest done
    assert "elsewhere" not in page
    assert "2026-03-02 07:15:42 UTC" in page  # started, with seconds and the zone
    assert SAVE in page  # address, type, size and owner stay editable


@pytest.fixture
def records(user):
    program = make_program(user, key="p-1")
    job = make_job(program, key="j-1", status=JobStatus.DONE, device=make_device("d-1"), started_at=T0, finished_at=T0)
    exam = exam_create(name="Algebra", start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=2), students=3)
    vm = VM.objects.create(uuid="u-1", exam=exam, exam_ref=exam.pk, state="ready", requested_at=T0, ready_at=T0)
    call = ProviderCall.objects.create(t=T0, endpoint="start", vm=vm, vm_uuid="u-1", exam_ref=exam.pk, outcome="ok")
    return {"program": program, "job": job, "exam": exam, "vm": vm, "call": call}


def test_read_only_pages_have_no_save_or_delete_button(admin_client_, records):
    read_only = [
        public_id_url(records["job"]),
        public_id_url(records["program"]),
        f"/admin/vms/vm/{records['vm'].pk}/change/",
        f"/admin/vms/providercall/{records['call'].pk}/change/",
    ]
    for url in read_only:
        page = admin_client_.get(url)
        assert page.status_code == 200, url
        html = page.content.decode()
        assert SAVE not in html and "_continue" not in html and "deletelink" not in html, url
        assert "closelink" in html, url  # the way back instead
        assert admin_client_.post(url, {}).status_code == 403, url
    for url in (f"/admin/exams/exam/{records['exam'].pk}/change/", "/admin/devices/device/d-1/change/"):
        assert SAVE in admin_client_.get(url).content.decode(), url
    for obj in (records["job"], records["program"]):
        assert admin_client_.get(public_id_url(obj, view="delete")).status_code == 403
    assert Job.objects.filter(key="j-1").exists()


def test_actions_need_the_change_permission_not_a_save_button(user, django_user_model):
    queued = make_job(make_program(user), key="q-1")
    viewer = django_user_model.objects.create_user(username="viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client = Client()
    client.force_login(viewer)
    assert client.get(public_id_url(queued)).status_code == 200  # staff with view permission see the job
    listing = client.get("/admin/jobs/job/").content.decode()
    assert "cancel_jobs" not in listing
    client.post("/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [queued.pk]})
    assert Job.objects.get(pk=queued.pk).status == JobStatus.QUEUED

    viewer.user_permissions.add(Permission.objects.get(codename="change_job"))
    client.force_login(django_user_model.objects.get(pk=viewer.pk))
    assert "cancel_jobs" in client.get("/admin/jobs/job/").content.decode()
    client.post("/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [queued.pk]})
    assert Job.objects.get(pk=queued.pk).status == JobStatus.CANCELLED
    assert SAVE not in client.get(public_id_url(queued)).content.decode()  # still nothing to save


def test_the_exam_form_says_its_times_are_utc(admin_client_):
    page = admin_client_.get("/admin/exams/exam/add/").content.decode()
    assert page.count("UTC; time with seconds") == 2  # start and end
