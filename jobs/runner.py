"""The QPU workers: hand queued jobs to free devices, one job per device.

One ``Worker`` per process. Its manager thread leases devices (a device is
driven by exactly one runner in the whole deployment, so it never gets two
jobs at once), renews the leases, requeues the jobs of dead workers and silent
devices, and starts one runner thread per leased device. A runner thread
claims the next job for its device (``jobs.claims.job_claim``), calls the
device, stores the result exactly once, and claims again at once; with nothing
to do it sleeps until a wake-up (``jobs.notify``: in-process, plus PostgreSQL
LISTEN/NOTIFY from other processes), never a blind one-second poll.

Several workers can run side by side (``runworkers`` on several machines);
they share devices through the leases and jobs through SKIP LOCKED.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection, connections
from django.utils import timezone

from core import metrics
from core.heartbeats import QPU_WORKERS, heartbeat_beat
from devices.clients import DeviceBusy, DeviceClient, DeviceError, DeviceRef, JobPayload, client_for, validate_result
from jobs import claims, lifecycle, notify
from jobs.models import JobStatus

logger = logging.getLogger(__name__)

ClientFactory = Callable[..., DeviceClient]

# What ``_execute`` returns when the device said it is busy: the job went back
# untouched and the runner should leave the device alone for a moment.
BUSY = object()
BUSY_BACKOFF_SECONDS = 1.0


def _on_finished(job_id: int, callback_status: str | None) -> None:
    if callback_status == "pending":
        from jobs.webhooks import callback_enqueue

        callback_enqueue(job_id=job_id)


@dataclass
class _Runner:
    device: DeviceRef
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    # The job this runner holds (claimed, running or being stored): only its
    # lease is renewed, and shutdown hands it back if the thread is stuck.
    job: claims.ClaimedJob | None = None
    # The device may have a run of "busy" answers on record (unknown at start):
    # its next real answer resets the count, so only one write per run of busy.
    busy_on_record: bool = True
    # Likewise its run of failed jobs: the next stored result resets it.
    failures_on_record: bool = True


class Worker:
    def __init__(
        self,
        *,
        name: str | None = None,
        client_factory: ClientFactory = client_for,
        lease_seconds: float | None = None,
        max_devices: int = 1000,
        idle_wait: float = 5.0,
        tick_seconds: float = 1.0,
        pass_interval: float = 0.1,
        listen: bool = True,
        stop_event: threading.Event | None = None,
    ):
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.client_factory = client_factory
        self.lease_seconds = settings.JOB_LEASE_SECONDS if lease_seconds is None else lease_seconds
        self.max_devices = max_devices
        # A runner with nothing to do waits for a wake-up; idle_wait only bounds
        # the wait so a lost notification costs seconds, not forever.
        self.idle_wait = idle_wait
        self.tick_seconds = tick_seconds
        # Every submission wakes the workers (so that idle device loops claim
        # at once); the manager pass (renewals, expired leases, silent
        # devices, acquiring devices: several statements) runs at most once
        # per pass_interval however many wake-ups arrive, instead of once per
        # submission. A new device waits at most that long to be driven.
        self.pass_interval = pass_interval
        self.listen = listen
        self.stop_event = stop_event or threading.Event()
        self.runners: dict[str, _Runner] = {}
        # Runner threads told to stop that may still be inside a device call:
        # their device is not driven again until they are done, so it never
        # gets a second job while still running the first.
        self._retiring: dict[str, threading.Thread] = {}
        self._last_renew = 0.0
        self._last_sweep = 0.0
        self._listener: threading.Thread | None = None
        self._shutdown_lock = threading.Lock()
        self._shut_down = False

    # ----------------------------------------------------------------- loop
    def run(self) -> None:
        """Run until ``stop()`` (or the stop event) then shut down cleanly."""
        logger.info("worker %s starting", self.name)
        if self.listen and connection.vendor == "postgresql":
            self._listener = notify.listener(self.stop_event)
            self._listener.start()
        seen = notify.generation()
        try:
            while not self.stop_event.is_set():
                try:
                    self.tick()
                except Exception:  # the database may be briefly away: log, back off, go on
                    logger.exception("worker tick failed")
                    close_old_connections()
                    self.stop_event.wait(1.0)
                passed = time.monotonic()
                seen = notify.wait_for_change(seen, timeout=self.tick_seconds)
                rest = self.pass_interval - (time.monotonic() - passed)
                if rest > 0:
                    self.stop_event.wait(rest)  # wake-ups meanwhile make one pass
                if self.stop_event.is_set():
                    break
        finally:
            self.shutdown()
            connections.close_all()

    def run_once(self) -> int:
        """One manager pass, then let every leased device run the jobs it can
        get right now, one after another; returns how many jobs were run."""
        self.tick(start_threads=False)
        done = 0
        for runner in list(self.runners.values()):
            client = self.client_factory(runner.device, stop_event=runner.stop)
            job = self._claim(runner.device)
            while job is not None and not self.stop_event.is_set():
                job = self._execute(runner, client, job)
                if job is BUSY:
                    break
                job = job or self._claim(runner.device)
                done += 1
        self._release_devices()
        return done

    def stop(self) -> None:
        """Ask the worker to stop: no new claims; ``shutdown`` (at the end of
        ``run``) gives running jobs their grace period."""
        self.stop_event.set()
        notify.wake_local()

    # -------------------------------------------------------------- manager
    def tick(self, *, start_threads: bool = True) -> None:
        now = timezone.now()
        # Renewal also keeps the built-in simulated devices "heard from", so
        # it runs well within both the lease and the device timeout.
        if time.monotonic() - self._last_renew >= min(self.lease_seconds, settings.DEVICE_TIMEOUT_SECONDS) / 3:
            self._renew(now)
        elif self.runners:
            self._reconcile(self._driven_devices())
        self._housekeeping(now)
        self._acquire(now, start_threads=start_threads)

    def _housekeeping(self, now) -> None:
        requeued = self._after_requeue(claims.jobs_requeue_expired(now=now))
        from devices.services import devices_mark_offline_stale

        gone = devices_mark_offline_stale(now=now, timeout_s=settings.DEVICE_TIMEOUT_SECONDS)
        if gone:
            logger.warning("device(s) %s went silent: offline, their jobs requeued", ", ".join(gone))
        if requeued or gone:
            notify.wake_local()
        if time.monotonic() - self._last_sweep >= 60:
            from jobs.webhooks import callbacks_requeue_lost

            callbacks_requeue_lost(now=now)
            self._last_sweep = time.monotonic()

    def _renew(self, now) -> None:
        expires = now + timedelta(seconds=self.lease_seconds)
        with connection.cursor() as cursor:
            # The built-in simulated QPUs live inside this worker: while it
            # renews their lease, they are alive, so that counts as contact.
            cursor.execute(
                """
                UPDATE devices_device
                   SET runner_expires_at = %s,
                       last_seen_at = CASE WHEN address LIKE 'http://%%' OR address LIKE 'https://%%'
                                           THEN last_seen_at ELSE %s END
                 WHERE runner = %s AND status IN ('online', 'draining')
                RETURNING id, type, size, address
                """,
                [expires, now, self.name],
            )
            rows = {r[0]: DeviceRef(id=r[0], type=r[1], size=r[2], address=r[3]) for r in cursor.fetchall()}
            # Only the leases our runners hold right now: a job whose outcome
            # could not be stored must be left to expire, not kept alive.
            tokens = [r.job.token for r in list(self.runners.values()) if r.job is not None]
            if tokens:
                cursor.execute(
                    f"""
                    UPDATE jobs_job SET lease_expires_at = %s
                     WHERE status = %s AND lease_token IN ({", ".join(["%s"] * len(tokens))})
                    """,
                    [expires, JobStatus.RUNNING, *tokens],
                )
        self._last_renew = time.monotonic()
        heartbeat_beat(name=QPU_WORKERS)
        self._reconcile(rows)

    def _driven_devices(self) -> dict[str, DeviceRef]:
        """The devices this worker may drive, as the table says now (a cheap
        read each tick, so a removal or re-registration is seen at once)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, type, size, address FROM devices_device WHERE runner = %s AND status IN ('online', 'draining')",
                [self.name],
            )
            return {r[0]: DeviceRef(id=r[0], type=r[1], size=r[2], address=r[3]) for r in cursor.fetchall()}

    def _reconcile(self, rows: dict[str, DeviceRef]) -> None:
        for device_id, runner in list(self.runners.items()):
            ref = rows.get(device_id)
            if ref != runner.device:
                # Removed, offline, taken over, or re-registered with another
                # type/size/address: this runner's view is stale.
                logger.info("device %s no longer driven by this worker (or changed): runner restarts", device_id)
                runner.stop.set()
                self.runners.pop(device_id)
                if runner.thread is not None:
                    self._retiring[device_id] = runner.thread
                notify.wake_local()  # an idle runner waits for wake-ups, not its stop event

    def _acquire(self, now, *, start_threads: bool) -> None:
        room = self.max_devices - len(self.runners)
        if room <= 0:
            return
        self._retiring = {d: t for d, t in self._retiring.items() if t.is_alive()}
        busy = list(self.runners) + list(self._retiring)
        not_ours = f"AND id NOT IN ({', '.join(['%s'] * len(busy))})" if busy else ""
        expires = now + timedelta(seconds=self.lease_seconds)
        lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
        sim = "address NOT LIKE 'http://%%' AND address NOT LIKE 'https://%%'"
        with connection.cursor() as cursor:
            # Online (or draining: kept leased so their state is looked after;
            # claims refuse them) devices nobody drives (or whose runner died,
            # or that this worker dropped, e.g. after a re-registration). A built-in
            # simulated device lives inside the worker driving it, so one that
            # went offline while no worker ran is alive again once taken.
            cursor.execute(
                f"""
                UPDATE devices_device
                   SET runner = %s, runner_expires_at = %s,
                       status = CASE WHEN status = 'offline' THEN 'online' ELSE status END,
                       last_seen_at = CASE WHEN {sim} THEN %s ELSE last_seen_at END
                 WHERE id IN (SELECT id FROM devices_device
                               WHERE (status IN ('online', 'draining') OR (status = 'offline' AND {sim}))
                                 AND (runner = '' OR runner = %s OR runner_expires_at IS NULL OR runner_expires_at < %s)
                                 {not_ours}
                               ORDER BY id LIMIT %s {lock})
                RETURNING id, type, size, address
                """,
                [self.name, expires, now, self.name, now, *busy, room],
            )
            acquired = [DeviceRef(id=r[0], type=r[1], size=r[2], address=r[3]) for r in cursor.fetchall()]
        for ref in acquired:
            # Whatever still runs on a device we just took belonged to a runner
            # that died (or was retired and is done); its result can never be
            # stored (the fencing token is gone): back to its place in the queue.
            taken_over = f"device {ref.id} was taken over from a runner that died"
            self._after_requeue(claims.jobs_requeue_for_device(device_id=ref.id, reason=taken_over))
            runner = _Runner(device=ref)
            self.runners[ref.id] = runner
            if start_threads:
                runner.thread = threading.Thread(
                    target=self._device_loop, args=(runner,), name=f"qpu-{ref.id}", daemon=True
                )
                runner.thread.start()
            logger.info("driving device %s (%s, %d qubits)", ref.id, ref.type, ref.size)

    def _release_devices(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE devices_device SET runner = '', runner_expires_at = NULL WHERE runner = %s", [self.name]
            )
        self.runners.clear()

    def shutdown(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish for ``grace`` seconds
        (WORKER_SHUTDOWN_GRACE_SECONDS); a job still running then is handed
        back (not counted as an attempt)."""
        grace = settings.WORKER_SHUTDOWN_GRACE_SECONDS if grace is None else grace
        with self._shutdown_lock:
            if self._shut_down:
                return
            self._shut_down = True
        self.stop_event.set()
        notify.wake_local()
        runners = list(self.runners.values())
        deadline = time.monotonic() + grace
        for runner in runners:
            if runner.thread is not None:
                runner.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for runner in runners:
            runner.stop.set()  # interrupts simulated runs still going
        for runner in runners:
            if runner.thread is not None:
                runner.thread.join(timeout=5.0)
        for runner in runners:
            stuck = runner.thread is not None and runner.thread.is_alive()
            if stuck and runner.job is not None:
                # Still inside a device call (e.g. HTTP): hand the job back now
                # (our own shutdown: not counted); the fencing token discards
                # the late answer.
                self._hand_back(runner.job, counted=False)
        try:
            self._release_devices()
        except Exception:
            logger.exception("could not release device leases; they expire in %ss", self.lease_seconds)
        logger.info("worker %s stopped", self.name)

    # --------------------------------------------------------------- runner
    def _claim(self, device: DeviceRef):
        return claims.job_claim(
            device_id=device.id,
            device_type=device.type,
            device_size=device.size,
            runner=self.name,
            lease_seconds=self.lease_seconds,
        )

    def _device_loop(self, runner: _Runner) -> None:
        client = self.client_factory(runner.device, stop_event=runner.stop)
        job = None
        try:
            while not runner.stop.is_set() and not self.stop_event.is_set():
                try:
                    if job is None:
                        seen = notify.generation()
                        job = runner.job = self._claim(runner.device)
                        if job is None:
                            notify.wait_for_change(seen, timeout=self.idle_wait)
                            continue
                    # Returns the device's next job when it could take one in
                    # the same round trip as storing this result.
                    job = self._execute(runner, client, job)
                    if job is BUSY:
                        job = None
                        runner.stop.wait(BUSY_BACKOFF_SECONDS)
                    runner.job = job
                except Exception:  # database trouble while claiming or storing
                    logger.exception("runner of device %s failed", runner.device.id)
                    close_old_connections()
                    if job is not None:
                        self._hand_back(job, counted=True)
                    job = runner.job = None
                    runner.stop.wait(1.0)
            if job is not None:  # claimed just before the stop: hand it back untouched
                self._release(job, "its worker is stopping")
                runner.job = None
        finally:
            connections.close_all()

    def _after_requeue(self, requeued: claims.Requeued) -> int:
        """Wake the runners for the queued jobs and deliver the outcome of
        those failed for good (requeued JOB_MAX_REQUEUES times); each job's
        line is in the lifecycle log (``jobs.claims`` writes it)."""
        if requeued.queued:
            notify.wake_local()
        for job_id in requeued.callbacks:
            _on_finished(job_id, "pending")
        return requeued.count

    def _release(self, job: claims.ClaimedJob, why: str) -> None:
        """Hand a job back untouched (not counted as an attempt)."""
        if claims.job_release(job_id=job.id, token=job.token):
            lifecycle.requeued(job=job.key, why=why)

    def _hand_back(self, job: claims.ClaimedJob, *, counted: bool, reason: str = "") -> None:
        """Give a job back after its outcome could not be stored (``counted``:
        a requeue bounded by JOB_MAX_REQUEUES) or at our own shutdown (not
        counted). If even that fails, its lease (no longer renewed) runs out
        and the reaper requeues it, counted."""
        try:
            if counted:
                reason = reason or "the worker could not record the run's outcome (database connection lost)"
                self._after_requeue(claims.job_requeue(job_id=job.id, token=job.token, reason=reason))
            else:
                self._release(job, "its worker stopped while the device was still running it")
        except Exception:
            logger.exception("could not hand back job %s; its lease will expire", job.key)

    def _execute(self, runner: _Runner, client: DeviceClient, job: claims.ClaimedJob):
        """Run one job on its device and record the outcome; returns the
        device's next job if it was claimed together with the result, None,
        or BUSY."""
        device = runner.device
        payload = JobPayload(key=job.key, instructions=job.instructions, shots=job.shots)
        lifecycle.started(job=job.key, device=device.id, attempt=job.attempts)
        began = time.perf_counter()
        waited = (timezone.now() - job.created_at).total_seconds() if job.created_at else None
        try:
            result = validate_result(client.run(device=device, job=payload), device=device, job=payload)
        except Exception as exc:  # any device failure is the job's failed attempt
            if self.stop_event.is_set() or runner.stop.is_set():
                # Interrupted by our own shutdown or restart, not the device's fault.
                self._release(job, "its worker stopped or restarted the device's runner during the run")
                return None
            if isinstance(exc, DeviceBusy):
                return self._device_busy(runner, job)
            self._device_answered(runner)
            # Device errors are our own fixed texts; anything else is logged
            # by its type only (its text may quote what the device sent).
            reason = (
                str(exc) if isinstance(exc, DeviceError) else f"unexpected {type(exc).__name__} from the device client"
            )
            error = str(exc) if isinstance(exc, DeviceError) else f"{type(exc).__name__}: {exc}"
            self._fail_attempt(job, error, device=device, reason=reason, waited=waited, began=began)
            self._device_failed(runner, job, reason)
            return None
        self._device_answered(runner)
        return self._store(runner, job, result, began=began, waited=waited)

    def _fail_attempt(
        self, job: claims.ClaimedJob, error: str, *, device: DeviceRef, reason: str, waited: float | None, began: float
    ) -> None:
        device_id = device.id
        outcome = claims.job_fail_attempt(
            job_id=job.id, token=job.token, error=error, max_attempts=settings.JOB_MAX_ATTEMPTS
        )
        if outcome is not None:
            requeued = outcome[0] == JobStatus.QUEUED
            lifecycle.attempt_failed(
                job=job.key, device=device_id, attempt=job.attempts, reason=reason[:300], requeued=requeued
            )
            if requeued:
                lifecycle.requeued(job=job.key, why=f"attempt {job.attempts} failed on {device_id}")
                notify.wake_local()
            else:
                lifecycle.failed(
                    job=job.key, device=device_id, reason=f"{job.attempts} attempts failed (JOB_MAX_ATTEMPTS)"
                )
                metrics.job_finished(
                    device_type=device.type, status="failed", waited_s=waited, ran_s=time.perf_counter() - began
                )
            _on_finished(job.id, outcome[1])

    def _device_failed(self, runner: _Runner, job: claims.ClaimedJob, reason: str) -> None:
        """Count the failed job against the device; DEVICE_QUARANTINE_FAILURES
        different jobs in a row drain it (``devices.services.device_record_failure``)."""
        from devices.services import device_record_failure

        recorded = device_record_failure(
            device_id=runner.device.id,
            job_id=job.id,
            error=reason[:300],
            max_failures=settings.DEVICE_QUARANTINE_FAILURES,
        )
        runner.failures_on_record = True
        if recorded is not None and recorded.quarantined_now:
            logger.warning(
                "device %s drained: %s",
                runner.device.id,
                recorded.status_reason,
                extra={"device": runner.device.id, "reason": recorded.status_reason},
            )

    def _device_busy(self, runner: _Runner, job: claims.ClaimedJob):
        """The device is still running something (e.g. the job it had before
        it was removed and re-registered): not this job's failure, so the job
        goes back (a requeue, bounded by JOB_MAX_REQUEUES), and the device's
        run of busy answers is counted; too long a run drains it."""
        from devices.services import device_record_busy

        device = runner.device
        self._after_requeue(
            claims.job_requeue(job_id=job.id, token=job.token, reason=f"device {device.id} answered busy (HTTP 409)"),
        )
        recorded = device_record_busy(device_id=device.id, max_busy=settings.DEVICE_MAX_BUSY_ANSWERS)
        runner.busy_on_record = True
        if recorded is not None and recorded.status_reason:
            logger.warning(
                "device %s: %s",
                device.id,
                recorded.status_reason,
                extra={"device": device.id, "reason": recorded.status_reason},
            )
        return BUSY

    def _device_answered(self, runner: _Runner) -> None:
        if runner.busy_on_record:
            from devices.services import device_reset_busy_streak

            device_reset_busy_streak(device_id=runner.device.id)
            runner.busy_on_record = False

    def _device_succeeded(self, runner: _Runner) -> None:
        if runner.failures_on_record:
            from devices.services import device_reset_failure_streak

            device_reset_failure_streak(device_id=runner.device.id)
            runner.failures_on_record = False

    def _store(self, runner: _Runner, job: claims.ClaimedJob, result: list[str], *, began: float, waited: float | None):
        """Store the result (and claim the device's next job with it). A store
        the database refuses (too large, invalid, any error but a lost
        connection) is the job's failed attempt, so it ends after
        JOB_MAX_ATTEMPTS instead of being handed back forever; a lost
        connection propagates and the job is handed back (counted)."""
        device = runner.device
        try:
            if self.stop_event.is_set():
                callback_status, next_job = claims.job_finish(job_id=job.id, token=job.token, result=result), None
            else:
                callback_status, next_job = claims.job_finish_and_claim(
                    job_id=job.id,
                    token=job.token,
                    result=result,
                    device_id=device.id,
                    device_type=device.type,
                    device_size=device.size,
                    runner=self.name,
                    lease_seconds=self.lease_seconds,
                )
        except Exception as exc:
            if _connection_lost():
                raise
            first_line = (str(exc).strip().splitlines() or [""])[0]
            logger.exception("result of job %s from %s could not be stored", job.key, device.id)
            self._fail_attempt(
                job,
                f"result could not be stored: {type(exc).__name__}: {first_line}",
                device=device,
                reason=f"result could not be stored ({type(exc).__name__})",
                waited=waited,
                began=began,
            )
            return None
        if callback_status is None:
            logger.warning(
                "result of job %s from %s discarded: the job was requeued meanwhile",
                job.key,
                device.id,
                extra={"job": job.key, "device": device.id},
            )
        else:
            ran = time.perf_counter() - began
            lifecycle.finished(job=job.key, device=device.id, ms=ran * 1000)
            metrics.job_finished(device_type=device.type, status="done", waited_s=waited, ran_s=ran)
            self._device_succeeded(runner)
            _on_finished(job.id, callback_status)
        return next_job


def _connection_lost() -> bool:
    """True when the database connection is gone (as opposed to a statement
    the database refused on a working connection)."""
    try:
        return connection.connection is None or not connection.is_usable()
    except Exception:
        return True
