from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from devices import services
from devices.exceptions import DeviceNotFound
from devices.models import Device, DeviceStatus
from jobs import notify
from jobs.models import JobStatus
from tests.factories import make_device, make_job, make_program

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=dt_timezone.utc)


def test_mark_offline_stale_takes_only_silent_devices_and_requeues_their_jobs(user):
    url = "http://qpu.lab:9000"
    fresh = make_device("fresh", address=url, last_seen_at=NOW - timedelta(seconds=30))
    stale = make_device("stale", address=url, last_seen_at=NOW - timedelta(seconds=61))
    stale_draining = make_device(
        "stale-draining", address=url, status=DeviceStatus.DRAINING, last_seen_at=NOW - timedelta(hours=1)
    )
    make_device("already-offline", address=url, status=DeviceStatus.OFFLINE, last_seen_at=NOW - timedelta(hours=2))
    # Built-in simulators do not heartbeat: they live in (and with) their worker.
    make_device("sim-idle", address="sim", status=DeviceStatus.DRAINING, last_seen_at=NOW - timedelta(hours=3))
    program = make_program(user, priority=3)
    on_stale = make_job(program, status=JobStatus.RUNNING, device=stale)
    on_fresh = make_job(program, status=JobStatus.RUNNING, device=fresh)
    on_draining = make_job(program, status=JobStatus.RUNNING, device=stale_draining)

    marked = services.devices_mark_offline_stale(now=NOW, timeout_s=60)

    assert marked == ["stale", "stale-draining"]
    assert dict(Device.objects.values_list("id", "status")) == {
        "fresh": DeviceStatus.ONLINE,
        "stale": DeviceStatus.OFFLINE,
        "stale-draining": DeviceStatus.OFFLINE,
        "already-offline": DeviceStatus.OFFLINE,
        "sim-idle": DeviceStatus.DRAINING,
    }
    for job in (on_stale, on_fresh, on_draining):
        job.refresh_from_db()
    assert on_stale.status == JobStatus.QUEUED and on_stale.device_id is None
    assert on_draining.status == JobStatus.QUEUED
    assert on_fresh.status == JobStatus.RUNNING and on_fresh.device_id == "fresh"
    # Nothing more to do on the next round.
    assert services.devices_mark_offline_stale(now=NOW, timeout_s=60) == []


def test_register_new_device_uses_the_given_clock():
    device, created = services.device_register(device_id="d1", address="", type="analog", size=5, now=NOW)
    assert created
    assert device.registered_at == NOW and device.last_seen_at == NOW
    assert device.status == DeviceStatus.ONLINE


def test_register_and_resume_wake_the_workers_after_commit(django_capture_on_commit_callbacks):
    seen = notify.generation()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.device_register(device_id="d1", address="", type="analog", size=5, now=NOW)
    assert len(callbacks) >= 1
    assert notify.generation() > seen

    services.device_drain(device_id="d1")
    seen = notify.generation()
    with django_capture_on_commit_callbacks(execute=True):
        services.device_resume(device_id="d1")
    assert notify.generation() > seen


def test_heartbeat_wakes_the_workers_only_when_an_offline_device_comes_back(django_capture_on_commit_callbacks):
    make_device("d1", status=DeviceStatus.ONLINE)
    make_device("d2", status=DeviceStatus.OFFLINE)
    with django_capture_on_commit_callbacks() as callbacks:
        services.device_heartbeat(device_id="d1", now=NOW)
    assert callbacks == []
    with django_capture_on_commit_callbacks() as callbacks:
        device = services.device_heartbeat(device_id="d2", now=NOW)
    assert len(callbacks) == 1
    assert device.status == DeviceStatus.ONLINE and device.last_seen_at == NOW


def test_remove_returns_requeued_count_and_unknown_raises(user):
    device = make_device("d1")
    make_job(make_program(user), status=JobStatus.RUNNING, device=device)
    assert services.device_remove(device_id="d1") == 1
    with pytest.raises(DeviceNotFound):
        services.device_remove(device_id="d1")


def test_update_changes_only_the_given_fields():
    make_device("d1", type="analog", size=4, address="a")
    device = services.device_update(device_id="d1", address="http://q:1", type="digital", size=9)
    assert (device.address, device.type, device.size, device.status) == (
        "http://q:1",
        "digital",
        9,
        DeviceStatus.ONLINE,
    )


def test_ownership_is_checked_on_the_row_and_a_refusal_requeues_nothing(
    user, other_user, staff_user, django_capture_on_commit_callbacks
):
    from devices.exceptions import DeviceNotYours

    device, _ = services.device_register(
        device_id="d1", address="http://a:1", type="analog", size=4, actor=user, now=NOW
    )
    assert device.owner == user
    job = make_job(make_program(other_user), status=JobStatus.RUNNING, device=device)
    with django_capture_on_commit_callbacks() as callbacks:
        for call in (
            lambda: services.device_register(
                device_id="d1", address="http://b:1", type="analog", size=4, actor=other_user
            ),
            lambda: services.device_heartbeat(device_id="d1", actor=other_user),
            lambda: services.device_drain(device_id="d1", actor=other_user),
            lambda: services.device_resume(device_id="d1", actor=other_user),
            lambda: services.device_remove(device_id="d1", actor=other_user),
        ):
            with pytest.raises(DeviceNotYours):
                call()
    assert callbacks == []  # no wake-up for a refused change
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and Device.objects.get(pk="d1").address == "http://a:1"
    # Staff and internal calls (actor=None) act; staff keep the owner.
    services.device_register(device_id="d1", address="http://c:1", type="analog", size=4, actor=staff_user)
    assert Device.objects.get(pk="d1").owner == user
    services.device_update(device_id="d1", address="http://c:1", type="analog", size=4, owner=None)
    assert Device.objects.get(pk="d1").owner is None
