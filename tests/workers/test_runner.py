"""The worker end to end with in-process devices."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from devices.clients import DeviceError, SimulatedQPU
from devices.models import Device
from jobs import notify
from jobs.models import Job, JobStatus
from jobs.runner import Worker
from tests.helpers import wait_until

pytestmark = pytest.mark.django_db


def join_runner(device_id: str, timeout: float = 20) -> None:
    """Wait until the device's runner thread has ended: whatever it did with
    a late answer is done (the thread is named ``qpu-<device id>``)."""
    for thread in threading.enumerate():
        if thread.name == f"qpu-{device_id}":
            thread.join(timeout)
            assert not thread.is_alive(), f"runner of {device_id} still running"


def test_run_once_runs_jobs_in_priority_order_and_stores_results(make_device, make_program, recording):
    log, factory = recording
    low = make_program(priority=1, jobs=2)
    high = make_program(priority=9, jobs=1)
    make_device("qpu-a", size=3)
    assert Worker(client_factory=factory, listen=False).run_once() == 3
    assert [key for _, key in log] == [f"{high.key}-j0", f"{low.key}-j0", f"{low.key}-j1"]
    for job in Job.objects.all():
        assert job.status == JobStatus.DONE and job.result == ["111"] and job.device_id == "qpu-a"
        assert job.started_at <= job.finished_at
    assert Device.objects.get(pk="qpu-a").runner == ""  # leases released after --once


def test_device_errors_retry_then_fail_with_the_error_kept(make_device, make_program, recording, settings):
    settings.JOB_MAX_ATTEMPTS = 3
    log, factory = recording
    factory.options.update(fail_times=10, error=DeviceError("device qpu-a timed out after 5s"))
    make_program()
    make_device("qpu-a")
    Worker(client_factory=factory, listen=False).run_once()
    job = Job.objects.get()
    assert len(log) == 3
    assert job.status == JobStatus.FAILED and job.attempts == 3 and job.error == "device qpu-a timed out after 5s"


def test_a_transient_error_is_retried_and_succeeds(make_device, make_program, recording):
    log, factory = recording
    factory.options.update(fail_times=1)
    make_program()
    make_device("qpu-a")
    Worker(client_factory=factory, listen=False).run_once()
    job = Job.objects.get()
    assert job.status == JobStatus.DONE and job.attempts == 2 and len(log) == 2


def test_a_result_of_the_wrong_shape_is_a_device_error(make_device, make_program, settings):
    settings.JOB_MAX_ATTEMPTS = 1

    class Liar:
        def run(self, *, device, job):
            return ["01"]  # device has 4 qubits

    make_program()
    make_device("qpu-a", size=4)
    Worker(client_factory=lambda d, stop_event=None: Liar(), listen=False).run_once()
    job = Job.objects.get()
    assert job.status == JobStatus.FAILED and "expected 4 bits" in job.error


def test_draining_and_offline_http_devices_get_no_work(make_device, make_program, recording):
    log, factory = recording
    make_program()
    make_device("qpu-d", status="draining")
    make_device("qpu-o", status="offline", address="http://127.0.0.1:9/qpu")
    assert Worker(client_factory=factory, listen=False).run_once() == 0
    assert Job.objects.get().status == JobStatus.QUEUED
    assert Device.objects.get(pk="qpu-o").status == "offline"


def test_an_offline_builtin_simulator_is_alive_again_once_a_worker_drives_it(make_device, make_program, recording):
    # e.g. the service was stopped for longer than DEVICE_TIMEOUT_SECONDS
    log, factory = recording
    make_program()
    old = timezone.now() - timedelta(hours=1)
    make_device("qpu-sim", status="offline", address="sim")
    Device.objects.filter(pk="qpu-sim").update(last_seen_at=old)
    assert Worker(client_factory=factory, listen=False).run_once() == 1
    device = Device.objects.get(pk="qpu-sim")
    assert device.status == "online" and device.last_seen_at > old
    assert Job.objects.get().status == JobStatus.DONE


def test_a_reregistered_device_is_driven_again_with_its_new_size(make_device, make_program, live_worker):
    from devices.services import device_register

    class Echo:
        def run(self, *, device, job):
            return ["1" * device.size] * job.shots

    make_device("qpu-r", size=4, address="sim")
    worker = live_worker(client_factory=lambda d, stop_event=None: Echo(), idle_wait=60, tick_seconds=0.1)
    assert wait_until(lambda: "qpu-r" in worker.runners)
    device_register(device_id="qpu-r", address="sim", type="analog", size=6)  # the device restarted, bigger
    worker._last_renew = 0  # renew on the next tick instead of in 10 s
    assert wait_until(lambda: "qpu-r" in worker.runners and worker.runners["qpu-r"].device.size == 6)
    make_program(jobs=2)
    notify.wake_local()
    assert wait_until(lambda: Job.objects.filter(status=JobStatus.DONE).count() == 2)
    assert all(len(j.result[0]) == 6 for j in Job.objects.all())


def test_a_busy_device_gets_the_job_back_untouched_and_later_runs_it(make_device, make_program, live_worker):
    from devices.clients import DeviceBusy

    calls = []

    class BusyOnce:
        def run(self, *, device, job):
            calls.append(job.key)
            if len(calls) == 1:
                raise DeviceBusy("device qpu-b is busy")
            return ["0" * device.size] * job.shots

    make_device("qpu-b", address="http://127.0.0.1:9/qpu")
    make_program(jobs=1)
    live_worker(client_factory=lambda d, stop_event=None: BusyOnce(), idle_wait=0.5, tick_seconds=0.1)
    assert wait_until(lambda: Job.objects.get().status == JobStatus.DONE)
    job = Job.objects.get()
    assert len(calls) == 2 and job.attempts == 1 and job.error == ""


@pytest.fixture
def live_worker(transactional_db):
    """A threaded Worker as `runworkers` runs it; stopped after the test."""
    workers = []

    def start(**kwargs):
        kwargs.setdefault("listen", connection.vendor == "postgresql")
        worker = Worker(**kwargs)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        workers.append((worker, thread))
        return worker

    yield start
    for worker, thread in workers:
        worker.stop()
        thread.join(timeout=20)
        assert not thread.is_alive(), "worker did not stop cleanly"


def test_threaded_worker_runs_each_device_sequentially_and_wakes_on_new_jobs(make_device, make_program, live_worker):
    running: dict[str, int] = {}
    overlaps = []
    lock = threading.Lock()

    class Sequential:
        def run(self, *, device, job):
            with lock:
                running[device.id] = running.get(device.id, 0) + 1
                if running[device.id] > 1:
                    overlaps.append(device.id)
            time.sleep(0.01)
            with lock:
                running[device.id] -= 1
            return ["0" * device.size] * job.shots

    make_device("qpu-1")
    make_device("qpu-2")
    # idle_wait=60: if the wake-up did not work, nothing would start during the test.
    live_worker(client_factory=lambda d, stop_event=None: Sequential(), idle_wait=60, tick_seconds=0.2)
    assert wait_until(lambda: Device.objects.filter(runner__gt="").count() == 2)
    time.sleep(0.3)  # both runners now idle, waiting for a wake-up
    make_program(jobs=10, priority=1)
    notify.wake_local()  # what POST /programs does after commit
    assert wait_until(lambda: Job.objects.filter(status=JobStatus.DONE).count() == 10)
    assert overlaps == []
    assert set(Job.objects.values_list("device_id", flat=True)) <= {"qpu-1", "qpu-2"}


def test_removing_a_device_mid_job_requeues_it_and_it_runs_elsewhere(make_device, make_program, live_worker):
    from devices.services import device_remove

    started = threading.Event()
    release = threading.Event()

    class Slow:
        def run(self, *, device, job):
            if device.id == "qpu-slow":
                started.set()
                release.wait(10)
            return ["1" * device.size] * job.shots

    make_device("qpu-slow", type="analog")
    make_program(jobs=1)
    live_worker(client_factory=lambda d, stop_event=None: Slow(), idle_wait=60, tick_seconds=0.2)
    assert started.wait(10)
    job = Job.objects.get()
    assert job.status == JobStatus.RUNNING and job.device_id == "qpu-slow"
    device_remove(device_id="qpu-slow")
    requeued = Job.objects.get()
    assert requeued.status == JobStatus.QUEUED and requeued.id == job.id and requeued.priority == job.priority
    make_device("qpu-fast", type="analog")
    notify.wake_local()
    assert wait_until(lambda: Job.objects.get().status == JobStatus.DONE)
    release.set()
    join_runner("qpu-slow")  # its late answer handled: it must not have overwritten anything
    done = Job.objects.get()
    # The removal was no fault of the job: a requeue, not a used-up attempt.
    assert done.device_id == "qpu-fast" and done.attempts == 1 and done.requeues == 1


def test_shutdown_hands_running_jobs_back_without_losing_them(make_device, make_program, live_worker):
    make_device("qpu-sim")
    make_program(jobs=1)
    worker = live_worker(
        client_factory=lambda d, stop_event=None: SimulatedQPU(seconds=30, stop_event=stop_event), tick_seconds=0.2
    )
    assert wait_until(lambda: Job.objects.get().status == JobStatus.RUNNING)
    worker.shutdown(grace=0.2)
    job = Job.objects.get()
    assert job.status == JobStatus.QUEUED and job.attempts == 0 and job.device_id is None
    assert Device.objects.get().runner == ""


def test_a_silent_http_device_goes_offline_and_its_job_runs_elsewhere(make_device, make_program, live_worker, settings):
    settings.DEVICE_TIMEOUT_SECONDS = 1
    started = threading.Event()
    release = threading.Event()

    class Hung:
        def run(self, *, device, job):
            if device.id == "qpu-http":
                started.set()
                release.wait(10)  # the device hangs and stops heartbeating
            return ["0" * device.size] * job.shots

    make_device("qpu-http", address="http://127.0.0.1:9/qpu")
    make_program(jobs=1)
    live_worker(client_factory=lambda d, stop_event=None: Hung(), idle_wait=60, tick_seconds=0.2)
    assert started.wait(10)
    make_device("qpu-sim", address="sim")  # registered (and heard from) just now
    assert wait_until(lambda: Device.objects.get(pk="qpu-http").status == "offline")
    assert wait_until(lambda: Job.objects.get().status == JobStatus.DONE)
    release.set()
    job = Job.objects.get()
    assert job.device_id == "qpu-sim" and job.attempts == 1 and job.requeues == 1


def test_an_http_device_removed_mid_job_and_back_at_once_still_runs_the_job(make_device, make_program, live_worker):
    """The device keeps running the old call after its removal; when it
    re-registers, it must not be handed the job again while still busy
    (that used to burn every attempt on HTTP 409s)."""
    from devices.clients import HttpQPU
    from devices.services import device_register, device_remove
    from devices.simulator import SimulatedDeviceServer

    server = SimulatedDeviceServer(device_id="qpu-h", size=3, seconds=1.0)
    server.serve_in_thread()
    try:
        make_device("qpu-h", size=3, address=server.address)
        make_program(jobs=1)
        live_worker(client_factory=lambda d, stop_event=None: HttpQPU(timeout=10), idle_wait=0.5, tick_seconds=0.1)
        assert wait_until(lambda: Job.objects.get().status == JobStatus.RUNNING)
        device_remove(device_id="qpu-h")
        device_register(device_id="qpu-h", address=server.address, type="analog", size=3)
        assert wait_until(lambda: Job.objects.get().status in (JobStatus.DONE, JobStatus.FAILED))
        job = Job.objects.get()
        assert job.status == JobStatus.DONE and job.device_id == "qpu-h" and len(job.result[0]) == 3
        assert job.attempts == 1 and job.requeues == 1 and server.jobs_run == 2
    finally:
        server.close()


def test_a_result_that_cannot_be_stored_hands_the_job_back(
    make_device, make_program, recording, live_worker, monkeypatch
):
    """A database error while storing the outcome must not leave the job
    'running' (with its lease renewed) for as long as the worker lives."""
    from jobs import claims

    real = claims.job_finish_and_claim
    failures = []

    def flaky(**kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("database went away")
        return real(**kwargs)

    monkeypatch.setattr(claims, "job_finish_and_claim", flaky)
    log, factory = recording
    make_device("qpu-f")
    make_program(jobs=2)
    live_worker(client_factory=factory, idle_wait=0.5, tick_seconds=0.1)
    assert wait_until(lambda: Job.objects.filter(status=JobStatus.DONE).count() == 2)
    assert failures == [1] and len(log) == 3  # the first job ran twice


def test_a_drained_simulated_device_stays_drained_across_worker_restarts(make_device, make_program, recording):
    log, factory = recording
    make_program()
    make_device("qpu-dr", status="draining", address="sim")
    Device.objects.filter(pk="qpu-dr").update(last_seen_at=timezone.now() - timedelta(hours=1))
    assert Worker(client_factory=factory, listen=False).run_once() == 0
    assert Device.objects.get(pk="qpu-dr").status == "draining"
    assert Job.objects.get().status == JobStatus.QUEUED


def test_shutdown_hands_back_a_job_stuck_in_a_device_call(make_device, make_program, live_worker, settings):
    settings.WORKER_SHUTDOWN_GRACE_SECONDS = 0.2
    release = threading.Event()

    class Stuck:  # an HTTP call that ignores the stop event
        def run(self, *, device, job):
            release.wait(30)
            return ["0" * device.size] * job.shots

    make_device("qpu-s", address="http://127.0.0.1:9/qpu")
    make_program()
    worker = live_worker(client_factory=lambda d, stop_event=None: Stuck(), tick_seconds=0.1)
    assert wait_until(lambda: Job.objects.get().status == JobStatus.RUNNING)
    worker.shutdown(grace=0.2)
    job = Job.objects.get()
    assert job.status == JobStatus.QUEUED and job.attempts == 0
    assert Device.objects.get().runner == ""
    release.set()  # the stuck call's late answer is discarded (its token is gone)
    join_runner("qpu-s")
    assert Job.objects.get().status == JobStatus.QUEUED
