"""The VM scheduler loop: plan, then make the calls that are due, paced.

One ``Scheduler`` object holds the exams and live VMs in memory, written
through to the database on every change (``vms.services``), and the current
``Plan``. A pass:

1. takes the scheduler lock (PostgreSQL advisory lock: one acting scheduler
   per database; on SQLite a process/file guard) - a scheduler that does not
   hold it does nothing;
2. on (re)taking the lock, recovers from a crash (``vms_recover``) and loads
   exams and VMs; reloads them whenever an exam changed (signal, NOTIFY, or
   the exams table's fingerprint);
3. replans only when something changed: an exam, an exam starting or ending,
   a VM leaving the provider's queue, a call that failed or went out late.
   Otherwise it follows the current plan: the planner is O(exams) but
   building its input is O(live VMs), and a simulation makes ~40,000 calls;
4. makes the due calls: re-binds, then stops (up to the rate limit, waiting
   VMs first), then starts (one at a time, each recorded before and after);
   ``RateLimitExceeded`` and ``ProviderError`` back off per endpoint and are
   retried - nothing a provider does crashes the loop;
5. returns when it next has something to do; the driver sleeps until then or
   until an exam changes (``run_forever`` live; ``vms.simulation`` with a
   virtual clock).

Time is the injected clock's, in integer milliseconds (see ``vms.planner``).
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from django.conf import settings
from django.db import connection, connections

from core.heartbeats import VM_SCHEDULER, heartbeat_beat
from vms import selectors, services, signals
from vms.clock import Clock
from vms.exceptions import ProviderError, RateLimitExceeded, UnknownVM
from vms.models import CallOutcome, VMState
from vms.plan_summary import summarize
from vms.planner import Plan, PlannerConfig, from_ms, plan, to_ms
from vms.selectors import LiveVM

logger = logging.getLogger(__name__)


class Pacer:
    """Client-side rate limit of one endpoint: at most ``limit`` calls in any
    rolling window. Times recorded are taken *after* each call returned, so
    they are never earlier than the provider's own timestamps of the calls."""

    def __init__(self, limit: int, window_ms: int = 1000, margin_ms: int = 0):
        self.limit = limit
        self.window_ms = window_ms + margin_ms
        self.times: deque[int] = deque(maxlen=limit)

    def next_allowed_ms(self, now_ms: int) -> int:
        if len(self.times) < self.limit:
            return now_ms
        return max(now_ms, self.times[0] + self.window_ms)

    def available(self, now_ms: int) -> int:
        """How many calls may be made at ``now_ms``."""
        recent = sum(1 for t in self.times if t + self.window_ms > now_ms)
        return max(0, self.limit - recent)

    def record(self, t_ms: int) -> None:
        self.times.append(t_ms)


# --- the scheduler lock ----------------------------------------------------------

DEFAULT_LOCK_KEY = 0x766D5F7363686564  # "vm_sched"

_local_guard = threading.Lock()
_local_holders: dict[tuple[str, int], object] = {}


class SchedulerLock:
    """One acting scheduler per database.

    PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on the
    scheduler's own connection; it goes when the connection or process dies,
    so a crashed scheduler never blocks its successor. The lock belongs to one
    connection object: if Django reconnected, it is taken again.

    SQLite has no advisory locks: a process-wide guard plus an ``flock`` on a
    file next to the database file, so two schedulers on one machine exclude
    each other too (documented limitation: not across machines, which SQLite
    does not support anyway).
    """

    def __init__(self, key: int = DEFAULT_LOCK_KEY, using: str = "default", *, file_lock: bool = True):
        self.key = key
        self.using = using
        # The simulation's lock guards a private world: no file for it.
        self.file_lock = file_lock
        self._conn_ident: int | None = None
        self._file: TextIO | None = None
        self._held = False
        # Bumped on every (re)acquisition: the holder must then recover, since
        # another scheduler may have acted (or crashed) in between.
        self.acquisitions = 0

    @property
    def held(self) -> bool:
        return self._held

    def acquire(self) -> tuple[bool, bool]:
        """(held, newly_acquired)."""
        conn = connections[self.using]
        if conn.vendor == "postgresql":
            if self._held and conn.connection is not None and id(conn.connection) == self._conn_ident:
                return True, False
            conn.ensure_connection()
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
                ok = bool(cursor.fetchone()[0])
            self._held = ok
            self._conn_ident = id(conn.connection) if ok else None
            self.acquisitions += ok
            return ok, ok
        if self._held:
            return True, False
        ok = self._acquire_local(conn)
        self._held = ok
        self.acquisitions += ok
        return ok, ok

    def _acquire_local(self, conn) -> bool:
        ident = (str(conn.settings_dict.get("NAME")), self.key)
        with _local_guard:
            holder = _local_holders.get(ident)
            if holder is not None and holder is not self:
                return False
            path = _lock_file_path(conn.settings_dict.get("NAME"), self.key) if self.file_lock else None
            if path is not None and self._file is None:
                handle = open(path, "a+")
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    handle.close()
                    return False
                self._file = handle
            _local_holders[ident] = self
            return True

    def release(self) -> None:
        if not self._held:
            return
        conn = connections[self.using]
        if conn.vendor == "postgresql":
            if conn.connection is not None and id(conn.connection) == self._conn_ident:
                try:
                    with conn.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])
                except Exception:  # the connection is gone, and the lock with it
                    logger.debug("advisory unlock failed", exc_info=True)
        else:
            ident = (str(conn.settings_dict.get("NAME")), self.key)
            with _local_guard:
                if _local_holders.get(ident) is self:
                    del _local_holders[ident]
                if self._file is not None:
                    try:
                        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
                    finally:
                        self._file.close()
                        self._file = None
        self._held = False
        self._conn_ident = None


def _lock_file_path(name, key: int) -> Path | None:
    if not name:
        return None
    name = str(name)
    if name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        return None
    path = Path(name)
    if not path.parent.exists():
        return None
    return path.with_name(f"{path.name}.vm-scheduler-{key:x}.lock")


# --- the loop ---------------------------------------------------------------------


@dataclass(frozen=True)
class SchedulerConfig:
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    backoff_initial_ms: int = 1_000
    backoff_max_ms: int = 30_000
    # A call that certainly never reached the provider (connection refused)
    # had no effect: retry it this soon, without growing back-off, so an
    # outage costs no more slots than it lasts.
    unreachable_retry_ms: int = 1_000
    # Check the exams table for changes that sent no signal at most this
    # often; None: never (the simulation: nobody else can see its data).
    poll_db_ms: int | None = 5_000
    # Store waiting -> ready in the database at most this often. Cosmetic: the
    # plan works from ready times, and reads show a waiting VM whose ready
    # time has passed as ready; VMs are also stored ready when their exam
    # starts. None: never (the simulation, where it would only cost time).
    promote_every_ms: int | None = 30_000
    # Extra spacing of calls beyond the provider's window (clock skew live).
    pacing_margin_ms: int = 0
    # A start whose VM will be ready this much later than planned replans.
    late_tolerance_ms: int = 1_000
    lock_retry_ms: int = 5_000
    # One INFO line per VM start, stop and re-binding (exam and VM ids as
    # fields). False: the simulation and the what-if preview, whose calls
    # reach no real provider (and number tens of thousands).
    log_calls: bool = True

    @classmethod
    def from_settings(cls, **overrides) -> SchedulerConfig:
        planner_overrides = overrides.pop("planner_overrides", {})
        return cls(planner=selectors.planner_config_from_settings(**planner_overrides), **overrides)


@dataclass
class SchedulerStats:
    passes: int = 0
    replans: int = 0
    starts: int = 0
    stops: int = 0
    assigns: int = 0
    rate_limited: int = 0
    errors: int = 0
    lost: int = 0
    restored: int = 0


class _StartRecord:
    """A successful start whose bookkeeping write failed: retried before anything else."""

    __slots__ = ("vm_id", "exam_id", "uuid", "t")

    def __init__(self, vm_id, exam_id, uuid, t):
        self.vm_id, self.exam_id, self.uuid, self.t = vm_id, exam_id, uuid, t


class Scheduler:
    def __init__(
        self, *, clock: Clock, provider, config: SchedulerConfig | None = None, lock: SchedulerLock | None = None
    ):
        self.clock = clock
        self.provider = provider
        self.config = config or SchedulerConfig.from_settings()
        self.lock = lock or SchedulerLock()
        rps = self.config.planner.requests_per_second
        self.pacers = {e: Pacer(rps, margin_ms=self.config.pacing_margin_ms) for e in ("start", "stop")}
        self.stats = SchedulerStats()
        self.exams: dict = {}
        self.vms: dict[int, LiveVM] = {}
        self.plan: Plan | None = None
        self._reload = True
        self._dirty = True
        self._seen_generation = signals.generation()
        self._fingerprint: tuple | None = None
        self._next_poll_ms = 0
        self._next_promote_ms = 0
        self._promote_pending = False
        self._retry_at = {"start": 0, "stop": 0}
        self._backoff = {"start": self.config.backoff_initial_ms, "stop": self.config.backoff_initial_ms}
        self._runs: tuple = ()
        self._run_i = 0
        self._run_k = 0
        self._stop_queue: deque = deque()
        self._assigns: list = []
        self._next_event_ms: int | None = None
        self._start_events: list[tuple[int, int]] = []
        self._start_event_i = 0
        self._alloc_free_ms = 0
        self._unrecorded: list[_StartRecord] = []
        self._recovered_at = 0
        self._shortfalls: dict[tuple[int, bool], int] = {}
        self._unreachable_since: dict[str, int] = {}
        # exam id -> the summary last stored for it, valid while the lock is held
        self._stored_summaries: dict = {}
        self._summaries_acquisition = -1

    # --- public ------------------------------------------------------------

    @property
    def interval_ms(self) -> int:
        return self.config.planner.allocation_interval_ms

    def exams_changed(self) -> None:
        """An exam changed (the simulation calls this; live, signals do)."""
        self._reload = True

    def close(self) -> None:
        self.lock.release()

    def now_ms(self) -> int:
        return to_ms(self.clock.now())

    def run_pass(self) -> int | None:
        """Do what is due now; returns when something is next due (ms), or None."""
        now = self.now_ms()
        self.stats.passes += 1
        held, _fresh = self.lock.acquire()
        if not held:
            return now + self.config.lock_retry_ms
        if self._unrecorded:
            self._flush_unrecorded()
        if self.lock.acquisitions != self._recovered_at:
            self._recover(now)
            self._recovered_at = self.lock.acquisitions
        generation = signals.generation()
        if generation != self._seen_generation:
            self._seen_generation = generation
            self._reload = True
        if self.config.poll_db_ms is not None and now >= self._next_poll_ms:
            fingerprint = selectors.exams_fingerprint()
            if fingerprint != self._fingerprint:
                self._fingerprint = fingerprint
                self._reload = True
            self._next_poll_ms = now + self.config.poll_db_ms
        if self._reload:
            self._load(now)
        self._mark_started(now)
        if self._next_event_ms is not None and now >= self._next_event_ms:
            self._dirty = True
        for _ in range(3):  # a stop of a queued VM moves the queue: replan once more
            if self._dirty:
                self._replan(now)
            self._do_assigns(now)
            self._do_stops(now)
            if not self._dirty:
                break
        self._do_starts(now)
        self._promote(now)
        return self._next_wake(now)

    def run_forever(self, *, stop_event: threading.Event, max_sleep_s: float = 30.0, until=None) -> None:
        """The live driver: pass, then sleep until due or woken (exam change, stop)."""
        while not stop_event.is_set():
            seen = signals.generation()
            now = self.now_ms()
            if until is not None and now >= until:
                break
            try:
                due = self.run_pass()
            except Exception:
                logger.exception("VM scheduler pass failed; retrying")
                self._reload = True
                self.stats.errors += 1
                connection.close()  # a broken connection is replaced on the next query
                due = now + self.config.backoff_max_ms // 6
            if stop_event.is_set():
                break
            if self.lock.held:  # the acting scheduler (a standby waits silently)
                heartbeat_beat(name=VM_SCHEDULER)
            wait_ms = max(0, (due if due is not None else now + 60_000) - self.now_ms())
            if until is not None:
                wait_ms = min(wait_ms, max(0, until - self.now_ms()))
            if wait_ms:
                signals.wait_for_change(seen, min(wait_ms / 1000, max_sleep_s))

    # --- state ------------------------------------------------------------

    def _recover(self, now: int) -> None:
        report = services.vms_recover(now=from_ms(now))
        self.stats.restored += report.restored
        self.stats.lost = report.lost
        if report.lost:
            logger.warning("%s VM start(s) with unknown outcome (lost) on record", report.lost)
        self._reload = True

    def _load(self, now: int) -> None:
        self.exams = {e.id: e for e in selectors.exams_for_planning(now=from_ms(now))}
        self.vms = {v.id: v for v in selectors.vms_alive(now_ms=now, interval_ms=self.interval_ms)}
        if self.config.poll_db_ms is not None and self._fingerprint is None:
            self._fingerprint = selectors.exams_fingerprint()
        self._start_events = sorted((e.start_ms, e.id) for e in self.exams.values())
        self._start_event_i = 0
        self._alloc_free_ms = max((v.ready_ms for v in self.vms.values() if v.ready_ms > now), default=now)
        self._reload = False
        self._dirty = True
        # VMs of exams that started while nobody marked them (restart, change)
        started = [e.id for e in self.exams.values() if e.start_ms <= now]
        self._mark_used(started, now)
        while self._start_event_i < len(self._start_events) and self._start_events[self._start_event_i][0] <= now:
            self._start_event_i += 1

    def _mark_started(self, now: int) -> None:
        events, i = self._start_events, self._start_event_i
        due = []
        while i < len(events) and events[i][0] <= now:
            due.append(events[i][1])
            i += 1
        self._start_event_i = i
        if due:
            self._mark_used(due, now)
            self._dirty = True

    def _mark_used(self, exam_ids: list[int], now: int) -> None:
        wanted = set(exam_ids)
        vms = [v for v in self.vms.values() if v.exam_id in wanted and not v.used and v.state != VMState.LOST]
        if vms:
            bound = {v.exam_id for v in vms if v.exam_id is not None}  # all of them: each is in ``wanted``
            services.vms_mark_used(exam_ids=sorted(bound), now=from_ms(now))
            for v in vms:
                v.used = True

    def _replan(self, now: int) -> None:
        self.plan = plan(
            exams=self.exams.values(),
            vms=[v.as_planner_input() for v in self.vms.values()],
            now_ms=now,
            config=self.config.planner,
        )
        self.stats.replans += 1
        self._runs = self.plan.runs
        self._run_i = self._run_k = 0
        self._stop_queue = deque(self.plan.stops)
        self._assigns = list(self.plan.assigns)
        self._next_event_ms = self.plan.next_event_ms
        self._dirty = False
        self._report_shortfalls(self.plan)
        self._store_summary(self.plan, now)

    def _store_summary(self, plan_: Plan, now: int) -> None:
        """Store the plan's per-exam figures for the readers (admin, API),
        only for exams whose figures changed since the last store: most
        replans change a few exams, and the rest is not written again."""
        alive = (VMState.WAITING, VMState.READY)
        summaries = summarize(plan_, vms=[(v.id, v.exam_id, v.ready_ms) for v in self.vms.values() if v.state in alive])
        stored = self._stored_summaries
        fresh = self._summaries_acquisition != self.lock.acquisitions
        if fresh:
            stored = {}
        changed = [s for exam_id, s in summaries.items() if not s.same_figures(stored.get(exam_id))]
        dropped = [exam_id for exam_id in stored if exam_id not in summaries]
        if changed or dropped or fresh:
            services.exam_plan_summaries_store(
                summaries=changed, planned_at=from_ms(now), drop=dropped, keep_only=list(summaries) if fresh else None
            )
        for s in changed:
            stored[s.exam_id] = s
        for exam_id in dropped:
            del stored[exam_id]
        self._stored_summaries = stored
        self._summaries_acquisition = self.lock.acquisitions

    def _report_shortfalls(self, plan_: Plan) -> None:
        """Every planned shortfall is logged (WARNING) when it appears or
        changes, and an exam that started short is logged once: operators
        learn it from the log as well as from the API and the admin."""
        for ep in plan_.exams:
            key = (ep.exam_id, ep.started)
            seen = self._shortfalls.get(key)
            if ep.started and seen is not None:
                continue  # what was ready at a start does not change
            if ep.shortfall != (seen or 0) or (ep.started and ep.shortfall):
                if ep.shortfall and ep.started:
                    logger.warning(
                        "exam %s started short: %s of %s VMs were ready at its start (shortfall %s); %s",
                        ep.exam_id,
                        ep.expected_ready_at_start,
                        ep.students,
                        ep.shortfall,
                        ep.shortfall_note(),
                    )
                elif ep.shortfall:
                    logger.warning(
                        "exam %s at risk: %s of %s VMs can be ready at its start %s (shortfall %s); %s",
                        ep.exam_id,
                        ep.expected_ready_at_start,
                        ep.students,
                        _iso(ep.start_ms),
                        ep.shortfall,
                        ep.shortfall_note(),
                    )
                elif seen:
                    logger.info(
                        "exam %s no longer at risk: all %s VMs can be ready at its start", ep.exam_id, ep.students
                    )
            self._shortfalls[key] = ep.shortfall

    def _recompute_queue(self, now: int) -> None:
        """A VM left the provider's queue: later ones move up (FIFO model)."""
        interval = self.interval_ms
        queued = sorted((v for v in self.vms.values() if v.ready_ms > now), key=lambda v: (v.requested_ms, v.id))
        changed = {}
        prev_end = None
        for v in queued:
            if prev_end is None:
                # the head: allocating since before now, or - its predecessor
                # just stopped while allocating - from now
                new = v.ready_ms if v.ready_ms - interval <= now else max(v.requested_ms, now) + interval
            else:
                new = max(v.requested_ms, prev_end) + interval
            new = min(new, v.ready_ms)  # a removal never delays anyone
            if new != v.ready_ms:
                v.ready_ms = new
                if v.state != VMState.LOST:
                    changed[v.id] = from_ms(new)
            prev_end = new
        if changed:
            services.vms_set_expected_ready(ready_at=changed)
        self._alloc_free_ms = prev_end if prev_end is not None else now

    # --- actions ------------------------------------------------------------

    def _do_assigns(self, now: int) -> None:
        for a in self._assigns:
            v = self.vms.get(a.vm_id)
            if v is None or v.used:
                continue
            services.vm_assign(vm_id=v.id, uuid=v.uuid, exam_id=a.exam_id, t=from_ms(self.now_ms()))
            if self.config.log_calls:
                logger.info(
                    "VM %s (provider id %s) re-bound from exam %s to exam %s",
                    v.id,
                    v.uuid,
                    v.exam_id,
                    a.exam_id,
                    extra={
                        "event": "vm_rebound",
                        "vm": v.id,
                        "uuid": v.uuid,
                        "exam": a.exam_id,
                        "from_exam": v.exam_id,
                    },
                )
            v.exam_id = v.exam_ref = a.exam_id
            self.stats.assigns += 1
        self._assigns = []

    def _do_stops(self, now: int) -> None:
        batch = self._take_stop_batch(now)
        if not batch:
            return
        services.vms_mark_stopping(vm_ids=[v.id for v in batch if v.state != VMState.STOPPING], now=from_ms(now))
        for v in batch:
            v.state = VMState.STOPPING
        calls = self._call_stops(batch)
        services.vms_record_stop_calls(calls=calls)
        self._forget_stopped(calls, now)

    def _take_stop_batch(self, now: int) -> list[LiveVM]:
        """The due stops the pacer allows now, in queue order. A VM without a
        provider id (lost, or its start still unanswered) has nothing to stop."""
        queue = self._stop_queue
        if not queue or now < self._retry_at["stop"]:
            return []
        batch: list[LiveVM] = []
        budget = self.pacers["stop"].available(now)
        while queue and len(batch) < budget:
            s = queue.popleft()
            v = self.vms.get(s.vm_id)
            if v is None or v.uuid is None or v.state in (VMState.LOST, VMState.REQUESTING):
                continue
            batch.append(v)
        return batch

    def _call_stops(self, batch: list[LiveVM]) -> list[services.StopCall]:
        """One ``provider.stop`` per VM, in order. After a refusal or a failure
        the rest of the batch goes back to the front of the queue, untried."""
        calls: list[services.StopCall] = []
        for i, v in enumerate(batch):
            call, go_on = self._call_stop(v)
            calls.append(call)
            if not go_on:
                self._stop_queue.extendleft(reversed([_PendingStop(x.id) for x in batch[i:]]))
                break
        return calls

    def _call_stop(self, v: LiveVM) -> tuple[services.StopCall, bool]:
        """Stop one VM; returns what to record and whether the batch may go on."""
        uuid = v.uuid
        assert uuid is not None  # _take_stop_batch skips VMs without a provider id
        t = self.now_ms()
        try:
            self.provider.stop(uuid)
        except RateLimitExceeded as exc:
            call = services.StopCall(v.id, uuid, v.exam_ref, from_ms(t), CallOutcome.RATE_LIMITED, str(exc))
            self.stats.rate_limited += 1
            self._retry("stop", t, exc.retry_after)
            return call, False
        except UnknownVM as exc:
            # nothing to stop: the provider never had (or no longer has)
            # it - but it counted the call toward its limit
            self.pacers["stop"].record(self.now_ms())
            self._reachable("stop")
            call = services.StopCall(
                v.id, uuid, v.exam_ref, from_ms(t), CallOutcome.ERROR, str(exc), gone=True, unknown=True
            )
            self.stats.errors += 1
            logger.warning(
                "VM %s (provider id %s, exam %s) is unknown to the provider: marked gone",
                v.id,
                v.uuid,
                v.exam_ref,
                extra={"event": "vm_gone", "vm": v.id, "uuid": v.uuid, "exam": v.exam_ref},
            )
            return call, True
        except ProviderError as exc:
            self._failed("stop", t, exc)
            call = services.StopCall(v.id, uuid, v.exam_ref, from_ms(t), CallOutcome.ERROR, str(exc))
            self.stats.errors += 1
            return call, False
        self.pacers["stop"].record(self.now_ms())
        self._reachable("stop")
        call = services.StopCall(v.id, uuid, v.exam_ref, from_ms(t), CallOutcome.OK, gone=True)
        self.stats.stops += 1
        self._backoff["stop"] = self.config.backoff_initial_ms
        return call, True

    def _forget_stopped(self, calls: list[services.StopCall], now: int) -> None:
        """Drop the VMs the provider no longer has. One that was still in its
        queue moves the later ones up: recompute their ready times, replan."""
        if self.config.log_calls:
            for c in calls:
                if c.gone and not c.unknown:
                    logger.info(
                        "VM %s (provider id %s) stopped, exam %s",
                        c.vm_id,
                        c.uuid,
                        c.exam_id,
                        extra={"event": "vm_stopped", "vm": c.vm_id, "uuid": c.uuid, "exam": c.exam_id},
                    )
        queue_moved = False
        for c in calls:
            if c.gone:
                v = self.vms.pop(c.vm_id, None)
                if v is not None and v.ready_ms > now:
                    queue_moved = True
        if queue_moved:
            self._recompute_queue(now)
            self._dirty = True

    def _peek_start(self):
        runs = self._runs
        while self._run_i < len(runs) and self._run_k >= runs[self._run_i].count:
            self._run_i += 1
            self._run_k = 0
        if self._run_i >= len(runs):
            return None
        run = runs[self._run_i]
        return run.request_ms(self._run_k), run.exam_id, run.ready_ms(self._run_k)

    def _do_starts(self, now: int) -> None:
        pacer = self.pacers["start"]
        interval = self.interval_ms
        while True:
            nxt = self._peek_start()
            if nxt is None or nxt[0] > now or now < self._retry_at["start"] or pacer.next_allowed_ms(now) > now:
                return
            _request_ms, exam_id, planned_ready = nxt
            exam = self.exams.get(exam_id)
            if exam is None or exam.end_ms <= now:
                self._dirty = True
                return
            t = self.now_ms()
            expected = max(t, self._alloc_free_ms) + interval
            used = exam.start_ms <= t
            vm_id = services.vm_start_intent(
                exam_id=exam_id, now=from_ms(t), expected_ready_at=from_ms(expected), used=used
            )
            try:
                uuid = self.provider.start()
            except RateLimitExceeded as exc:
                services.vm_start_failed(
                    vm_id=vm_id,
                    exam_id=exam_id,
                    t=from_ms(t),
                    outcome=CallOutcome.RATE_LIMITED,
                    error=str(exc),
                    may_exist=False,
                )
                self.stats.rate_limited += 1
                self._retry("start", t, exc.retry_after)
                self._dirty = True
                return
            except ProviderError as exc:
                may_exist = bool(getattr(exc, "may_have_taken_effect", True))
                self._failed("start", t, exc)
                services.vm_start_failed(
                    vm_id=vm_id,
                    exam_id=exam_id,
                    t=from_ms(t),
                    outcome=CallOutcome.ERROR,
                    error=str(exc),
                    may_exist=may_exist,
                )
                self.stats.errors += 1
                if may_exist:
                    # it may sit in the provider's queue: plan around it
                    self.vms[vm_id] = LiveVM(vm_id, None, exam_id, VMState.LOST, t, expected, True, exam_id)
                    self._alloc_free_ms = expected
                    self.stats.lost += 1
                self._dirty = True
                return
            pacer.record(self.now_ms())
            self._reachable("start")
            try:
                services.vm_start_succeeded(vm_id=vm_id, exam_id=exam_id, uuid=uuid, t=from_ms(t))
                self._log_started(vm_id, exam_id, uuid)
            except Exception:
                # The VM exists and only this process knows its uuid: keep it
                # and write it down before doing anything else.
                self._unrecorded.append(_StartRecord(vm_id, exam_id, uuid, from_ms(t)))
                raise
            finally:
                self.vms[vm_id] = LiveVM(vm_id, uuid, exam_id, VMState.WAITING, t, expected, used, exam_id)
                self._alloc_free_ms = expected
                self._run_k += 1
            self.stats.starts += 1
            self._backoff["start"] = self.config.backoff_initial_ms
            self._promote_pending = True
            if expected > planned_ready + self.config.late_tolerance_ms:
                self._dirty = True  # later than planned: the rest of the plan moves
                return

    def _flush_unrecorded(self) -> None:
        while self._unrecorded:
            r = self._unrecorded[0]
            services.vm_start_succeeded(vm_id=r.vm_id, exam_id=r.exam_id, uuid=r.uuid, t=r.t)
            self._log_started(r.vm_id, r.exam_id, r.uuid)
            self._unrecorded.pop(0)

    def _log_started(self, vm_id: int, exam_id: int, uuid: str) -> None:
        if self.config.log_calls:
            logger.info(
                "VM %s (provider id %s) started for exam %s",
                vm_id,
                uuid,
                exam_id,
                extra={"event": "vm_started", "vm": vm_id, "uuid": uuid, "exam": exam_id},
            )

    def _failed(self, endpoint: str, t: int, exc: ProviderError) -> None:
        """A call raised ``ProviderError``. If it may have reached the
        provider, the provider may have counted it: the pacer does too. If it
        certainly never got there (connection refused), it had no effect:
        retry within about a second, no growing back-off."""
        if not getattr(exc, "unreachable", False):
            self.pacers[endpoint].record(self.now_ms())
            self._retry(endpoint, t, None)
            return
        if endpoint not in self._unreachable_since:
            self._unreachable_since[endpoint] = t
            logger.warning(
                "VM provider unreachable (%s): %s; retrying every %.1f s",
                endpoint,
                exc,
                self.config.unreachable_retry_ms / 1000,
            )
        self._retry_at[endpoint] = t + self.config.unreachable_retry_ms

    def _reachable(self, endpoint: str) -> None:
        since = self._unreachable_since.pop(endpoint, None)
        if since is not None:
            logger.info("VM provider reachable again (%s) after %.1f s", endpoint, (self.now_ms() - since) / 1000)

    def _retry(self, endpoint: str, now: int, retry_after_s: float | None) -> None:
        if retry_after_s is not None and retry_after_s > 0:
            delay = int(retry_after_s * 1000) + 1
        else:
            delay = self._backoff[endpoint]
            self._backoff[endpoint] = min(self.config.backoff_max_ms, delay * 2)
        self._retry_at[endpoint] = now + delay

    def _promote(self, now: int) -> None:
        if self.config.promote_every_ms is not None and self._promote_pending and now >= self._next_promote_ms:
            services.vms_promote_ready(now=from_ms(now))
            self._promote_pending = any(v.ready_ms > now for v in self.vms.values() if v.state == VMState.WAITING)
            self._next_promote_ms = now + self.config.promote_every_ms

    def _next_wake(self, now: int) -> int | None:
        candidates = []
        nxt = self._peek_start()
        if nxt is not None:
            candidates.append(max(nxt[0], self._retry_at["start"], self.pacers["start"].next_allowed_ms(now)))
        if self._stop_queue:
            candidates.append(max(now, self._retry_at["stop"], self.pacers["stop"].next_allowed_ms(now)))
        if self._next_event_ms is not None:
            candidates.append(max(now, self._next_event_ms))
        if self._dirty:
            candidates.append(now)
        if self.config.poll_db_ms:
            candidates.append(self._next_poll_ms)
        return min(candidates) if candidates else None


def _iso(ms: int) -> str:
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class _PendingStop:
    vm_id: int
    reason: str = "retry"


def live_scheduler(*, clock: Clock | None = None, provider=None, **config_overrides) -> Scheduler:
    """The scheduler as the live service runs it: system clock, configured provider."""
    from vms.clock import SystemClock
    from vms.providers import HttpProvider, provider_from_settings

    clock = clock or SystemClock()
    provider = provider or provider_from_settings()
    # Over HTTP a call lands a little after we read the clock: keep a margin.
    config_overrides.setdefault("pacing_margin_ms", 50 if isinstance(provider, HttpProvider) else 5)
    # Live, a request leaves a few ms after its due time, and the first VM of
    # a back-to-back run would delay the whole run by that much: the first
    # request of a run goes out VM_LIVE_LEAD_SECONDS early (slack, not a
    # deadline). A simulation's virtual clock is exact and needs no lead.
    planner_overrides = config_overrides.setdefault("planner_overrides", {})
    planner_overrides.setdefault("idle_lead_ms", round(settings.VM_LIVE_LEAD_SECONDS * 1000))
    return Scheduler(clock=clock, provider=provider, config=SchedulerConfig.from_settings(**config_overrides))


__all__ = ["Pacer", "Scheduler", "SchedulerConfig", "SchedulerLock", "live_scheduler"]
