"""The operators' admin: lists, queue summary and actions (through the services)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Device, DeviceStatus
from jobs.models import Job, JobStatus
from tests.factories import make_device, make_job, make_program, make_user

pytestmark = pytest.mark.django_db


def test_changelists_and_change_pages_render(admin_client_, user):
    device = make_device("dev-1")
    program = make_program(user, key="p1")
    make_job(program, key="j1", status=JobStatus.RUNNING, device=device)
    for url in (
        "/admin/",
        "/admin/devices/device/",
        "/admin/devices/device/?q=dev&status__exact=online",
        "/admin/devices/device/dev-1/change/",
        "/admin/devices/device/add/",
        "/admin/jobs/program/",
        "/admin/jobs/program/?q=p1",
        "/admin/jobs/program/p1/change/",
        "/admin/jobs/job/",
        "/admin/jobs/job/?status__exact=running&q=j1",
        "/admin/jobs/job/j1/change/",
    ):
        response = admin_client_.get(url)
        assert response.status_code == 200, url


def test_job_changelist_shows_queue_depth_and_oldest_wait_per_device_type(admin_client_, user):
    analog = make_program(user, device_type="analog")
    digital = make_program(user, device_type="digital")
    old = make_job(analog)
    Job.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=7, seconds=5))
    make_job(analog)
    make_job(analog, status=JobStatus.RUNNING, device=make_device(type="analog"))
    make_job(digital, status=JobStatus.DONE)
    make_device(type="digital", status=DeviceStatus.OFFLINE)

    response = admin_client_.get("/admin/jobs/job/")
    rows = {row["device_type"]: row for row in response.context["queue_summary"]}
    assert rows["analog"]["queued"] == 2
    assert rows["analog"]["running"] == 1
    assert rows["analog"]["oldest_wait"].startswith("7m 0")
    assert rows["analog"]["devices_online"] == 1
    assert rows["digital"]["queued"] == 0 and rows["digital"]["oldest_wait"] == "-"
    assert rows["digital"]["devices_total"] == 1 and rows["digital"]["devices_online"] == 0
    html = response.content.decode()
    assert "Queue per device type" in html and "7m 0" in html


def test_admin_cancel_action_cancels_only_queued_jobs(admin_client_, user):
    program = make_program(user)
    queued = make_job(program)
    done = make_job(program, status=JobStatus.DONE)
    response = admin_client_.post(
        "/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [queued.pk, done.pk]}, follow=True
    )
    assert response.status_code == 200
    assert Job.objects.get(pk=queued.pk).status == JobStatus.CANCELLED
    assert Job.objects.get(pk=done.pk).status == JobStatus.DONE
    assert "Cancelled 1 of 2" in response.content.decode()


def test_admin_requeue_action_puts_failed_jobs_back_in_place(admin_client_, user):
    program = make_program(user, priority=4)
    failed = make_job(
        program,
        status=JobStatus.FAILED,
        device=make_device("d1"),
        attempts=3,
        error="device timeout",
        started_at=timezone.now(),
        callback_status="failed",
        callback_attempts=8,
    )
    later = make_job(program)
    admin_client_.post("/admin/jobs/job/", {"action": "requeue_failed_jobs", "_selected_action": [failed.pk, later.pk]})
    failed.refresh_from_db()
    assert failed.status == JobStatus.QUEUED
    assert failed.attempts == 0 and failed.device_id is None
    assert failed.started_at is None and failed.finished_at is None
    assert failed.error == "device timeout"  # kept for reference until the next run
    assert failed.callback_status == "" and failed.callback_attempts == 0
    assert failed.pk < later.pk and failed.priority == 4


def test_admin_drain_and_resume_actions(admin_client_):
    make_device("d1")
    make_device("d2")
    admin_client_.post("/admin/devices/device/", {"action": "drain_devices", "_selected_action": ["d1"]})
    assert dict(Device.objects.values_list("id", "status")) == {"d1": "draining", "d2": "online"}
    admin_client_.post("/admin/devices/device/", {"action": "resume_devices", "_selected_action": ["d1"]})
    assert Device.objects.get(pk="d1").status == DeviceStatus.ONLINE


def test_admin_program_cancel_action(admin_client_, user):
    program = make_program(user)
    make_job(program)
    make_job(program)
    admin_client_.post("/admin/jobs/program/", {"action": "cancel_programs", "_selected_action": [program.pk]})
    assert set(program.jobs.values_list("status", flat=True)) == {JobStatus.CANCELLED}


def test_admin_delete_device_requeues_its_job(admin_client_, user):
    device = make_device("d1")
    job = make_job(make_program(user), status=JobStatus.RUNNING, device=device)
    response = admin_client_.post("/admin/devices/device/d1/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Device.objects.filter(pk="d1").exists()
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.device_id is None


def test_admin_bulk_delete_devices_requeues_their_jobs(admin_client_, user):
    program = make_program(user)
    jobs = [make_job(program, status=JobStatus.RUNNING, device=make_device(f"d{i}")) for i in range(2)]
    admin_client_.post(
        "/admin/devices/device/", {"action": "delete_selected", "_selected_action": ["d0", "d1"], "post": "yes"}
    )
    assert Device.objects.count() == 0
    assert {Job.objects.get(pk=j.pk).status for j in jobs} == {JobStatus.QUEUED}


def test_admin_add_and_edit_device(admin_client_):
    response = admin_client_.post(
        "/admin/devices/device/add/", {"id": "new-1", "address": "", "type": "analog", "size": 5}
    )
    assert response.status_code == 302
    device = Device.objects.get(pk="new-1")
    assert device.status == DeviceStatus.ONLINE and device.registered_at is not None
    response = admin_client_.post(
        "/admin/devices/device/new-1/change/", {"address": "http://q:1", "type": "digital", "size": 9}
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.address, device.type, device.size) == ("http://q:1", "digital", 9)
    bad = admin_client_.post("/admin/devices/device/add/", {"id": "new-2", "type": "analog", "size": 0})
    assert bad.status_code == 200 and not Device.objects.filter(pk="new-2").exists()


def test_staff_without_permissions_cannot_use_the_actions(user):
    staff = make_user("viewer", password="pw-viewer", is_staff=True)
    client = Client()
    client.force_login(staff)
    job = make_job(make_program(user))
    response = client.post("/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [job.pk]})
    assert response.status_code == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_admin_search_with_a_nul_character_is_not_a_server_error(admin_client_):
    for url in ("/admin/jobs/job/?q=%00", "/admin/jobs/program/?q=a%00", "/admin/devices/device/?q=%00"):
        assert admin_client_.get(url).status_code == 200, url
