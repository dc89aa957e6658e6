"""The live side: wake-ups on exam changes, the django-q2 task, the commands."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from tests.factories import make_exam
from tests.helpers import ROOT, wait_until
from tests.vms.live_helpers import running_live_scheduler
from vms import signals
from vms.models import VM, ProviderCall
from vms.scheduler import SchedulerLock


@pytest.fixture
def default_fake(fresh_default_provider):
    """The process-wide fake, new for the test (tests/vms/conftest.py)."""


@pytest.mark.django_db
def test_exam_changed_wakes_the_scheduler_only_after_commit(django_capture_on_commit_callbacks):
    before = signals.generation()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        signals.exam_changed(exam_id=1)
        assert signals.generation() == before  # not before the commit
    for callback in callbacks:
        callback()
    assert signals.generation() == before + 1


def test_wait_for_change_returns_as_soon_as_something_changes():
    seen = signals.generation()
    threading.Timer(0.05, signals.wake_local).start()
    # A timeout would return the unchanged generation.
    assert signals.wait_for_change(seen, timeout=10) != seen


@pytest.mark.django_db(transaction=True)
def test_the_live_loop_sleeps_until_an_exam_appears_then_acts_at_once(default_fake):
    from exams.services import exam_create

    with running_live_scheduler(max_sleep_s=30) as holder:
        assert wait_until(lambda: "scheduler" in holder and holder["scheduler"].stats.passes >= 1, timeout=5)
        passes = holder["scheduler"].stats.passes
        # nothing is due: the loop sleeps (up to 30 s) ... until an exam is written
        exam_create(
            name="Now", start=timezone.now() + timedelta(seconds=4), end=timezone.now() + timedelta(hours=1), students=1
        )
        assert wait_until(lambda: VM.objects.filter(state="waiting").exists(), timeout=5)
        assert holder["scheduler"].stats.passes <= passes + 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_notify_from_another_process_wakes_the_listener():
    stop = threading.Event()
    listener = signals.Listener(stop, poll_seconds=0.05)
    listener.start()
    try:
        assert listener.listening.wait(5)
        seen = signals.generation()
        with connection.cursor() as cursor:  # as another process would, after its commit
            cursor.execute("SELECT pg_notify(%s, %s)", [signals.CHANNEL, "7"])
        assert wait_until(lambda: signals.generation() != seen, timeout=5)
    finally:
        stop.set()
        listener.join(5)


# --- django-q2 ------------------------------------------------------------------


@pytest.mark.django_db
def test_ensure_schedule_is_idempotent():
    from django_q.models import Schedule

    from vms.tasks import SCHEDULE_NAME, TASK, ensure_schedule

    assert ensure_schedule() is True
    assert ensure_schedule() is False
    schedule = Schedule.objects.get(name=SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (TASK, Schedule.MINUTES, 1)
    Schedule.objects.filter(pk=schedule.pk).update(minutes=5)
    assert ensure_schedule() is True and Schedule.objects.get(pk=schedule.pk).minutes == 1
    assert Schedule.objects.count() == 1


@pytest.mark.django_db
def test_the_task_runs_the_loop_and_queues_its_successor(default_fake):
    from django_q.models import OrmQ

    from vms.tasks import schedule_vms_pass

    make_exam(
        name="Soon", start=timezone.now() + timedelta(seconds=3), end=timezone.now() + timedelta(hours=1), students=1
    )
    summary = schedule_vms_pass(run_seconds=0.3, chain=True)
    assert summary.startswith("1 starts")
    assert ProviderCall.objects.filter(endpoint="start", outcome="ok").count() == 1
    assert OrmQ.objects.count() == 1  # the next run is queued
    queued = OrmQ.objects.get().task
    # `chain` is django-q2's own option (follow-up tasks): passed by mistake it
    # crashed the cluster's monitor when the run's result was saved.
    assert "chain" not in queued and queued["func"] == "vms.tasks.schedule_vms_pass"
    assert queued["kwargs"]["lock_wait_seconds"] == 10.0


@pytest.mark.django_db(transaction=True)
def test_a_run_ends_promptly_when_the_task_cluster_stops_and_still_queues_its_successor(default_fake, monkeypatch):
    from django_q.models import OrmQ

    from vms import tasks

    monkeypatch.setattr(tasks, "_cluster_stopping", None)
    cluster_stops = tasks.arm_cluster_stop()
    started = threading.Event()
    original = tasks.vm_loop_run

    def run_and_say(**kwargs):
        started.set()
        return original(**kwargs)

    monkeypatch.setattr(tasks, "vm_loop_run", run_and_say)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("summary", tasks.schedule_vms_pass(run_seconds=600)))
    t0 = time.monotonic()
    thread.start()
    try:
        assert started.wait(10)
        cluster_stops()
        thread.join(30)
    finally:
        cluster_stops()
        connections.close_all()
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 15  # not the 600 s it was given
    assert "starts" in result["summary"]
    assert OrmQ.objects.count() == 1  # the successor: another cluster (or this one, restarted) takes over


@pytest.mark.django_db
def test_the_task_does_nothing_while_another_scheduler_holds_the_lock(default_fake):
    from vms.tasks import schedule_vms_pass

    make_exam(
        name="Soon", start=timezone.now() + timedelta(seconds=3), end=timezone.now() + timedelta(hours=1), students=1
    )
    other = None
    holder = SchedulerLock()
    if connection.vendor == "postgresql":
        import psycopg2

        s = connection.settings_dict
        other = psycopg2.connect(
            dbname=s["NAME"], user=s["USER"], host=s["HOST"], port=s["PORT"] or 5432, password=s["PASSWORD"] or None
        )
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [holder.key])
    else:
        assert holder.acquire()[0]
    try:
        assert "another VM scheduler" in schedule_vms_pass(run_seconds=0.2, chain=True, lock_wait_seconds=0.1)
        assert not ProviderCall.objects.exists()
    finally:
        if other is not None:
            other.close()
        holder.release()


# --- commands ----------------------------------------------------------------------


def test_bench_planner_prints_its_figures():
    out = io.StringIO()
    call_command("bench_planner", "--exams", "60", "--repeats", "3", "--json", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["exams"] == 60 and figures["runs"] >= 1 and figures["planned_requests"] > 0
    assert figures["max_ms"] >= figures["p50_ms"] > 0
    text = io.StringIO()
    call_command("bench_planner", "--exams", "10", "--repeats", "2", "--vms", "100", stdout=text)
    assert "p50" in text.getvalue() and "100 live VMs" in text.getvalue()
    out = io.StringIO()
    call_command("bench_planner", "--exams", "60", "--repeats", "2", "--preview", "--json", stdout=out)
    figures = json.loads(out.getvalue())
    assert figures["what"].startswith("preview") and figures["cpu_p50_ms"] >= 0 and figures["p50_ms"] > 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_schedule_vms_process_is_woken_by_notify_and_stops_cleanly_on_sigterm():
    import os
    import signal
    import subprocess
    import sys

    from core.heartbeats import VM_SCHEDULER, heartbeat_age
    from exams.services import exam_create

    s = connection.settings_dict
    url = f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "VM_PROVIDER_URL": "", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "schedule_vms"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "VM scheduler running" in proc.stdout.readline()
        # its first pass is over (it beats right before sleeping; nothing is due)
        assert wait_until(lambda: heartbeat_age(name=VM_SCHEDULER) is not None, timeout=20)
        t0 = time.monotonic()
        exam_create(
            name="Now", start=timezone.now() + timedelta(seconds=3), end=timezone.now() + timedelta(hours=1), students=1
        )
        # woken by NOTIFY, not by its 5-second table check
        assert wait_until(lambda: ProviderCall.objects.filter(endpoint="start", outcome="ok").exists(), timeout=10)
        assert time.monotonic() - t0 < 4
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "VM scheduler stopped: 1 starts" in out
