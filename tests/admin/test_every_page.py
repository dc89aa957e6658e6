"""Every admin list and object page renders for staff, with every time in
UTC with seconds (issue 8, point 7)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from axes.models import AccessFailureLog
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group
from django.urls import reverse
from django_q.models import Schedule, Task
from django_q.tasks import async_task

from exams.services import exam_create
from jobs.admin_public_id import public_id_url
from jobs.models import JobStatus
from tests.factories import make_device, make_job, make_program
from vms.models import VM, ProviderCall

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
# Seconds not zero, so a format that drops them cannot pass by accident.
T0 = datetime(2026, 3, 2, 7, 15, 42, tzinfo=UTC)

# Django's defaults this project replaced: "March 2, 2026, 7:15 a.m.", "Mar. 2, 2026", minutes only.
DEFAULT_FORMATS = [
    re.compile(r"\b[ap]\.m\.|\bmidnight\b|\bnoon\b"),
    re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}, \d{4}"),
    re.compile(r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?!:\d\d)"),
]


@pytest.fixture
def rows_everywhere(user, client):
    """A row in every table the admin shows, with times at T0."""
    program = make_program(user, key="prog-1", created_at=T0)
    device = make_device("qpu-1", registered_at=T0, last_seen_at=T0)
    make_job(
        program,
        key="job-1",
        status=JobStatus.DONE,
        device=device,
        started_at=T0,
        finished_at=T0,
        callback_delivered_at=T0,
    )
    make_job(program, key="job-2")
    exam = exam_create(name="Algebra", start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=2), students=3)
    vm = VM.objects.create(uuid="u-1", exam=exam, exam_ref=exam.pk, state="ready", requested_at=T0, ready_at=T0)
    ProviderCall.objects.create(t=T0, endpoint="start", vm=vm, vm_uuid="u-1", exam_ref=exam.pk, outcome="ok")
    Group.objects.create(name="operators")
    Task.objects.create(id="a" * 32, name="deliver-1", func="math.floor", started=T0, stopped=T0, success=True)
    Task.objects.create(id="b" * 32, name="deliver-2", func="math.floor", started=T0, stopped=T0, success=False)
    Schedule.objects.create(func="math.floor", next_run=T0)
    from rest_framework.authtoken.models import Token

    Token.objects.create(user=user)
    client.post("/admin/login/", {"username": user.username, "password": "wrong"})  # django-axes' records
    AccessFailureLog.objects.create(
        username=user.username, ip_address="127.0.0.1", user_agent="test", path_info="/admin/login/", http_accept="*/*"
    )
    async_task("math.floor", 1.5, sync=False)  # a task waiting in the broker's table (no cluster runs here)


def _object_url(model, obj) -> str:
    if hasattr(obj, "key") and model._meta.app_label == "jobs":
        return public_id_url(obj)
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=(quote(obj.pk),))


def test_every_list_and_object_page_renders_with_utc_times_with_seconds(admin_client_, rows_everywhere):
    checked, without_rows = [], []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        pages = [reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")]
        request = admin_client_.get(pages[0]).wsgi_request
        pages += [_object_url(model, obj) for obj in model_admin.get_queryset(request)[:3]]
        if len(pages) == 1:
            without_rows.append(opts.label)
        for url in pages:
            response = admin_client_.get(url)
            assert response.status_code == 200, url
            html = response.content.decode()
            for pattern in DEFAULT_FORMATS:
                assert not pattern.search(html), (url, pattern.search(html).group(0))
            checked.append(url)
    # The tables with times at T0 show them to the second, in UTC.
    for url in [
        "/admin/jobs/job/",
        "/admin/jobs/job/job-1/change/",
        "/admin/jobs/program/prog-1/change/",
        "/admin/devices/device/",
        "/admin/devices/device/qpu-1/change/",
        "/admin/django_q/success/",
    ]:
        html = admin_client_.get(url).content.decode()
        assert "2026-03-02 07:15:42 UTC" in html, url
    for url in ["/admin/vms/vm/", "/admin/vms/providercall/"]:
        assert re.search(r"2026-03-02(</span> <span[^>]*>| )07:15:42", admin_client_.get(url).content.decode()), url
    assert without_rows == []
