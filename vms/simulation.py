"""``schedule_vms --simulate``: the live scheduler on a virtual clock and the fake provider.

The very same ``Scheduler`` runs, writing its VM records and call log to the
configured database, inside one transaction that is rolled back at the end:
the operator's exams and VMs are untouched. Inside it, the existing exams,
VMs and call log are first deleted (so scenario ids cannot collide and the
simulated world holds the scenario only); on PostgreSQL those rows stay
row-locked until the rollback, so a live edit of an existing exam waits for
the simulation to end (reads are never blocked).

Time jumps straight to the next moment something is due: the scheduler's
next call or exam event, or the scenario's next change (applied exactly at
its time, before the scheduler's pass at that instant).

The report is judged from the call log alone: ``replay_calls`` re-runs it
through the provider model to learn when each VM was ready and stopped.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from django.conf import settings
from django.db import connection, transaction

from core.exceptions import DomainError
from exams import rules
from exams.models import Exam
from exams.rules import ExamRuleError
from vms.clock import VirtualClock
from vms.models import VM, CallEndpoint, ProviderCall
from vms.planner import PlannerConfig, from_ms, to_ms
from vms.providers import FakeProvider, replay_calls
from vms.scheduler import DEFAULT_LOCK_KEY, Scheduler, SchedulerConfig, SchedulerLock


class ScenarioError(DomainError):
    """The scenario file is not valid; the message names the offending field."""


@dataclass(frozen=True)
class ScenarioExam:
    id: int
    name: str
    start: datetime
    end: datetime
    students: int


@dataclass(frozen=True)
class ScenarioChange:
    at: datetime
    action: str
    exam_id: int
    fields: dict


@dataclass(frozen=True)
class Scenario:
    start: datetime
    exams: tuple[ScenarioExam, ...]
    changes: tuple[ScenarioChange, ...]
    # {"at", "action": "scheduler_down", "seconds": N}: no calls and no
    # planning for N s, then a restart from the database as after a crash.
    downs: tuple[ScenarioChange, ...] = ()
    allocation_interval_s: float = 6.0
    requests_per_second: int = 3


# --- reading and validating a scenario -------------------------------------------

EXAM_FIELDS = rules.EXAM_FIELDS
EXAM_ACTIONS = ("create", "update", "delete")
SCHEDULER_DOWN = "scheduler_down"


def _fail(where: str | None, text: str) -> NoReturn:
    """Every error names its place, in ``field`` and in the message (the
    command prints the message alone)."""
    raise ScenarioError(f"{where or 'scenario'}: {text}", field=where)


def _time(value: Any, where: str) -> datetime:
    """A scenario time (its start, a change's ``at``): read like an exam's times."""
    try:
        return rules.as_utc(value, field=where)
    except ExamRuleError as exc:
        _fail(where, exc.message)


def _int(value: Any, where: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, f"expected an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        _fail(where, f"must be {bound}, got {value}")
    return value


def _object(raw: Any, where: str | None, allowed: set[str] | None = None, note: str = "") -> dict:
    """``raw`` as an object with no keys but ``allowed`` (any keys: None)."""
    if not isinstance(raw, dict):
        _fail(where, "expected a JSON object" if where is None else "expected an object")
    unknown = set(raw) - allowed if allowed is not None else ()
    if unknown:
        _fail(where, f"unknown field(s) {', '.join(sorted(unknown))}{note}")
    return raw


def _list(data: dict, key: str) -> list:
    value = data.get(key, [])
    if not isinstance(value, list):
        _fail(key, "expected a list")
    return value


def exam_values(raw: Any, where: str, *, partial: bool) -> dict:
    """The exam fields of a scenario or preview item, each through its exam
    rule (``exams.rules``, the API's and the admin's too); start and end, when
    both are given, in order. Errors name ``where.<field>``."""
    raw = _object(raw, where, {"id", *EXAM_FIELDS})
    if not partial:
        missing = [name for name in EXAM_FIELDS if name not in raw]
        if missing:
            _fail(f"{where}.{missing[0]}", "required")
    try:
        return rules.check_exam({name: raw[name] for name in EXAM_FIELDS if name in raw})
    except ExamRuleError as exc:
        _fail(f"{where}.{exc.field}", exc.message)


def _exam_id(value: Any, where: str) -> int:
    try:
        return rules.check_id(value)
    except ExamRuleError as exc:
        _fail(where, exc.message)


def parse_exam_change(raw: dict, where: str, *, id_optional_on_create: bool = False) -> tuple[str, int | None, dict]:
    """One exam change ``{"action", "exam": {...}}`` -> (action, exam id, fields):
    the one validation of changes, for scenarios and for ``POST /exams/preview``."""
    action = raw.get("action")
    if action not in EXAM_ACTIONS:
        _fail(f"{where}.action", f"must be create, update or delete, got {action!r}")
    exam = raw.get("exam")
    if not isinstance(exam, dict):
        _fail(f"{where}.exam", "expected an object")
    exam_id = exam.get("id")
    if exam_id is None and (action != "create" or not id_optional_on_create):
        _fail(f"{where}.exam.id", "required")
    if exam_id is not None:
        exam_id = _exam_id(exam_id, f"{where}.exam.id")
    values = exam_values(exam, f"{where}.exam", partial=action != "create")
    if action == "delete" and values:
        _fail(f"{where}.exam", "a delete takes only the id")
    return action, exam_id, values


def check_change_applies(
    state: dict[int, dict],
    action: str,
    exam_id: int,
    fields: dict,
    where: str,
    *,
    conflict: type[ScenarioError] = ScenarioError,
) -> None:
    """Apply one change to ``state`` (exam id -> its start and end at least),
    refusing what cannot apply then: a create of an existing id, a change of
    a missing exam (both raised as ``conflict``: the preview answers them with
    a 409), an end no longer after the start. The scenario parser and the
    preview (``vms.preview.apply_changes``) both apply changes through here."""
    if action == "create":
        if exam_id in state:
            raise conflict(f"{where}.id: exam {exam_id} already exists", field=f"{where}.id")
        state[exam_id] = dict(fields)
    elif exam_id not in state:
        raise conflict(f"{where}.id: no exam {exam_id}", field=f"{where}.id")
    elif action == "delete":
        del state[exam_id]
        return
    else:
        state[exam_id].update(fields)
    try:
        rules.check_order(state[exam_id]["start"], state[exam_id]["end"])
    except ExamRuleError as exc:
        _fail(f"{where}.{exc.field}", exc.message)


def _parse_exams(raw_exams: list) -> tuple[list[ScenarioExam], dict[int, dict]]:
    state: dict[int, dict] = {}
    exams = []
    for i, raw in enumerate(raw_exams):
        where = f"exams[{i}]"
        values = exam_values(raw, where, partial=False)
        exam_id = _exam_id(raw.get("id"), f"{where}.id")
        if exam_id in state:
            _fail(f"{where}.id", f"duplicate exam id {exam_id}")
        state[exam_id] = values
        exams.append(ScenarioExam(id=exam_id, **values))
    return exams, state


def _parse_down(raw: dict, where: str, at: datetime) -> ScenarioChange:
    _object(raw, where, {"at", "action", "seconds"})
    seconds = _int(raw.get("seconds"), f"{where}.seconds", low=1, high=7 * 86_400)
    return ScenarioChange(at=at, action=SCHEDULER_DOWN, exam_id=0, fields={"seconds": seconds})


def _parse_changes(raw_changes: list, start: datetime) -> tuple[list, list[ScenarioChange]]:
    """(at, index, change, where) of the exam changes, and the scheduler downs."""
    parsed, downs = [], []
    for i, raw in enumerate(raw_changes):
        where = f"changes[{i}]"
        raw = _object(raw, where)
        at = _time(raw.get("at"), f"{where}.at")
        if at < start:
            _fail(f"{where}.at", "before the scenario's start")
        if raw.get("action") == SCHEDULER_DOWN:
            downs.append(_parse_down(raw, where, at))
            continue
        _object(raw, where, {"at", "action", "exam"})
        action, exam_id, values = parse_exam_change(raw, where)
        assert exam_id is not None  # required: id_optional_on_create is off
        parsed.append((at, i, ScenarioChange(at=at, action=action, exam_id=exam_id, fields=values), where))
    parsed.sort(key=lambda item: (item[0], item[1]))
    return parsed, downs


def _parse_provider(raw: Any) -> tuple[float, int]:
    provider = _object(raw or {}, "provider", {"allocation_interval_s", "requests_per_second"})
    interval = provider.get("allocation_interval_s", settings.VM_ALLOCATION_INTERVAL_SECONDS)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval <= 3600:
        _fail("provider.allocation_interval_s", "expected a number of seconds in (0, 3600]")
    rps = _int(
        provider.get("requests_per_second", settings.VM_REQUESTS_PER_SECOND),
        "provider.requests_per_second",
        low=1,
        high=1000,
    )
    if interval * rps < 1:
        _fail(
            "provider",
            "allocation_interval_s * requests_per_second must be at least 1 (calls, not allocation, would limit)",
        )
    return float(interval), rps


def parse_scenario(data: Any) -> Scenario:
    """Validate a scenario document; every error names the field (``exams[2].end``)."""
    data = _object(data, None, {"start", "exams", "changes", "provider"})
    if "start" not in data:
        _fail("start", "required")
    start = _time(data["start"], "start")
    exams, state = _parse_exams(_list(data, "exams"))
    changes, downs = _parse_changes(_list(data, "changes"), start)
    # Replay the changes in time order to check each one applies.
    for _at, _i, change, where in changes:
        check_change_applies(state, change.action, change.exam_id, change.fields, f"{where}.exam")
    interval, rps = _parse_provider(data.get("provider"))
    return Scenario(
        start=start,
        exams=tuple(exams),
        changes=tuple(c for _a, _i, c, _w in changes),
        downs=tuple(sorted(downs, key=lambda d: d.at)),
        allocation_interval_s=interval,
        requests_per_second=rps,
    )


def load_scenario(path: str) -> Scenario:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"scenario {path} is not valid JSON: {exc}") from None
    return parse_scenario(data)


# --- running it ----------------------------------------------------------------------


@dataclass
class Progress:
    """A one-line progress display on a terminal (stderr); silent otherwise."""

    stream: Any = field(default_factory=lambda: sys.stderr)
    enabled: bool | None = None
    every_s: float = 0.25
    _last: float = 0.0

    def __post_init__(self):
        if self.enabled is None:
            self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, now: datetime, start: datetime, end: datetime, scheduler: Scheduler, force: bool = False) -> None:
        if not self.enabled:
            return
        wall = time.monotonic()
        if not force and wall - self._last < self.every_s:
            return
        self._last = wall
        span = max(1.0, (end - start).total_seconds())
        done = min(100.0, max(0.0, (now - start).total_seconds() / span * 100))
        s = scheduler.stats
        self.stream.write(
            f"\rsimulating {now:%Y-%m-%d %H:%M:%S}Z {done:5.1f}%  starts {s.starts:,}  stops {s.stops:,}  "
            f"assigns {s.assigns:,}  live VMs {len(scheduler.vms):,}   "
        )
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _wipe() -> None:
    """Empty the tables the simulation uses (inside its transaction only)."""
    with connection.cursor() as cursor:
        for model in (ProviderCall, VM, Exam):
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")


def _apply(change: ScenarioChange) -> None:
    if change.action == "create":
        exam = Exam(id=change.exam_id, **change.fields)
        exam.full_clean(validate_unique=False)
        exam.save(force_insert=True)
    elif change.action == "update":
        exam = Exam.objects.get(pk=change.exam_id)
        for name, value in change.fields.items():
            setattr(exam, name, value)
        exam.full_clean(validate_unique=False)
        exam.save()
    else:
        Exam.objects.filter(pk=change.exam_id).delete()


class SimulationStuck(RuntimeError):
    pass


def simulate(
    scenario: Scenario,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    planner_config: PlannerConfig | None = None,
    on_pass: Callable[[Scheduler, VirtualClock], None] | None = None,
) -> dict:
    """Run ``scenario``; returns the report (see ``build_report``)."""
    clock = VirtualClock(scenario.start)
    rng = random.Random(seed)
    provider = FakeProvider(
        clock=clock,
        allocation_interval_s=scenario.allocation_interval_s,
        requests_per_second=scenario.requests_per_second,
        # reproducible reports: the same scenario and seed give the same uuids
        id_factory=lambda: str(uuid_module.UUID(int=rng.getrandbits(128), version=4)),
    )
    planner = planner_config or PlannerConfig(
        allocation_interval_ms=round(scenario.allocation_interval_s * 1000),
        requests_per_second=scenario.requests_per_second,
        ready_margin_ms=round(settings.VM_READY_MARGIN_SECONDS * 1000),
        late_min_useful_ms=round(settings.VM_LATE_MIN_USEFUL_SECONDS * 1000),
        queue_ahead_ms=round(settings.VM_QUEUE_AHEAD_SECONDS * 1000),
    )
    # Nobody else can see the simulation's uncommitted rows: no table polling.
    config = SchedulerConfig(planner=planner, poll_db_ms=None, promote_every_ms=None, log_calls=False)
    # Its own lock key: a live scheduler on the same database must not block it.
    lock = SchedulerLock(key=(DEFAULT_LOCK_KEY + 1 + os.getpid()) & 0x7FFFFFFFFFFFFFFF, file_lock=False)
    progress = progress or Progress(enabled=False)
    wall_start = time.monotonic()
    with transaction.atomic():
        try:
            _wipe()
            for e in scenario.exams:
                exam = Exam(id=e.id, name=e.name, start=e.start, end=e.end, students=e.students)
                exam.full_clean(validate_unique=False)
                exam.save(force_insert=True)
            holder = [Scheduler(clock=clock, provider=provider, config=config, lock=lock)]

            def restart() -> Scheduler:
                # as after a crash: a new process, nothing in memory, the
                # database and the provider as they are (its lock was lost)
                old = holder[0]
                old.close()
                holder[0] = Scheduler(clock=clock, provider=provider, config=config, lock=lock)
                holder[0].stats = old.stats
                return holder[0]

            try:
                last = _run(scenario, holder, restart, clock, progress, on_pass)
            finally:
                holder[0].close()
                progress.done()
            scheduler = holder[0]
            report = build_report(
                allocation_interval_s=scenario.allocation_interval_s,
                requests_per_second=scenario.requests_per_second,
                until=last,
                students_at_start=students_at_start(scenario),
            )
            add_shortfall_causes(report, scenario, ready_margin_ms=planner.ready_margin_ms)
            report["summary"].update(
                {
                    "simulated_from": _iso(scenario.start),
                    "simulated_until": _iso(last),
                    "passes": scheduler.stats.passes,
                    "replans": scheduler.stats.replans,
                    "wall_seconds": round(time.monotonic() - wall_start, 3),
                    "database": connection.vendor,
                }
            )
        finally:
            transaction.set_rollback(True)
    return report


def _run(scenario: Scenario, holder: list, restart, clock: VirtualClock, progress: Progress, on_pass) -> datetime:
    changes = list(scenario.changes)
    downs = list(scenario.downs)
    ci = 0
    scheduler = holder[0]
    horizon = max(
        [e.end for e in scenario.exams]
        + [c.at for c in changes]
        + [c.fields["end"] for c in changes if "end" in c.fields]
        + [scenario.start]
    )
    same_instant = 0
    last_now = None
    while True:
        now = clock.now()
        applied = False
        while ci < len(changes) and changes[ci].at <= now:
            _apply(changes[ci])
            ci += 1
            applied = True
        if applied:
            scheduler.exams_changed()
        if downs and downs[0].at <= now:
            ci = _down(downs.pop(0), changes, ci, clock)
            scheduler = restart()
            continue
        due = scheduler.run_pass()
        if on_pass is not None:
            on_pass(scheduler, clock)
        progress.update(now, scenario.start, horizon, scheduler)
        now_ms = to_ms(now)
        if ci >= len(changes) and _finished(scheduler, now_ms):
            return now
        candidates = [d for d in (due,) if d is not None]
        if ci < len(changes):
            candidates.append(to_ms(changes[ci].at))
        if downs:
            candidates.append(to_ms(downs[0].at))
        if not candidates:
            raise SimulationStuck(f"nothing is due at {now.isoformat()} but the simulation has not finished")
        nxt = max(now_ms, min(candidates))
        if nxt == now_ms:
            same_instant = same_instant + 1 if last_now == now_ms else 1
            if same_instant > 10_000:
                raise SimulationStuck(f"the scheduler keeps asking to run again at {now.isoformat()}")
        last_now = now_ms
        clock.advance_to(from_ms(nxt))


def _down(down: ScenarioChange, changes: list, ci: int, clock: VirtualClock) -> int:
    """The scheduler is down: time passes, exams still change (operators do
    not stop), the provider keeps allocating what is queued; nobody calls."""
    until = clock.now() + timedelta(seconds=down.fields["seconds"])
    while ci < len(changes) and changes[ci].at <= until:
        clock.advance_to(max(clock.now(), changes[ci].at))
        _apply(changes[ci])
        ci += 1
    clock.advance_to(until)
    return ci


def _finished(scheduler: Scheduler, now_ms: int) -> bool:
    if any(e.end_ms > now_ms for e in scheduler.exams.values()):
        return False
    return not any(v.uuid is not None for v in scheduler.vms.values())


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def students_at_start(scenario: Scenario) -> dict[int, int]:
    """Per exam, the students in force at its (final) start: a change at the
    start instant is applied before the pass at that instant, so it counts."""
    history: dict[int, list[tuple[datetime, dict]]] = {}
    for e in scenario.exams:
        history[e.id] = [(scenario.start, {"start": e.start, "students": e.students})]
    for c in scenario.changes:
        if c.action == "delete":
            history.pop(c.exam_id, None)
            continue
        state = dict(history[c.exam_id][-1][1]) if c.action == "update" else {}
        state.update({k: v for k, v in c.fields.items() if k in ("start", "students")})
        history.setdefault(c.exam_id, []).append((c.at, state))
    out = {}
    for exam_id, states in history.items():
        start = states[-1][1]["start"]
        in_force = [state for at, state in states if at <= start] or [states[0][1]]
        out[exam_id] = in_force[-1]["students"]
    return out


CAUSE_DURING = "a change during the exam"
CAUSE_TOO_CLOSE = "created or enlarged too close to its start"
CAUSE_BUSY = "allocator busy with earlier exams"


def shortfall_cause(scenario: Scenario, exam_id: int, students: int, *, ready_margin_ms: int = 0) -> str:
    """Why an exam was short at its start, from the scenario alone:

    * a change while it was running (moved or enlarged after it started);
    * else the last change that asked more of it - its creation, more
      students, an earlier start - came when even an idle allocator could not
      have made ``students`` VMs by the start (``(start - t) / interval``);
    * else the slots before its start went to earlier exams."""
    interval_ms = round(scenario.allocation_interval_s * 1000)
    state: dict[str, Any] | None = next(
        ({"start": e.start, "students": e.students} for e in scenario.exams if e.id == exam_id), None
    )
    asked_at = scenario.start if state is not None else None
    during = False
    for c in sorted((c for c in scenario.changes if c.exam_id == exam_id), key=lambda c: c.at):
        if c.action == "delete":
            state, asked_at, during = None, None, False
            continue
        before = state
        state = {**(before or {}), **{k: v for k, v in c.fields.items() if k in ("start", "students")}}
        if before is not None and before["start"] <= c.at:
            during = True
        if before is None or state["students"] > before["students"] or state["start"] < before["start"]:
            asked_at = c.at
    if during:
        return CAUSE_DURING
    if state is not None and asked_at is not None:
        room_ms = to_ms(state["start"]) - ready_margin_ms - to_ms(asked_at)
        if max(0, room_ms) // interval_ms < students:
            return CAUSE_TOO_CLOSE
    return CAUSE_BUSY


def add_shortfall_causes(report: dict, scenario: Scenario, *, ready_margin_ms: int = 0) -> None:
    """Each short exam's cause (``shortfall_cause``) in the report and its summary."""
    short = []
    for e in report["exams"]:
        e["shortfall_cause"] = None
        if e["shortfall"]:
            e["shortfall_cause"] = shortfall_cause(
                scenario, e["id"], e["students_at_start"], ready_margin_ms=ready_margin_ms
            )
            short.append({"id": e["id"], "shortfall": e["shortfall"], "cause": e["shortfall_cause"]})
    report["summary"]["shortfalls"] = short


def build_report(
    *, allocation_interval_s: float, requests_per_second: int, until: datetime, students_at_start: dict | None = None
) -> dict:
    """The report from the call log and the exams table as they are now.

    ``ready_at_start`` counts the VMs bound to the exam at its start (start
    call, then any ``assign``) that the provider model, replaying the log, has
    ready at the start and not yet stopped. ``students`` is the exam's final
    count; ``students_at_start`` the one in force at its start (they differ
    only when students changed after the start), which ``shortfall`` is
    measured against.
    """
    rows = list(ProviderCall.objects.order_by("t", "id").values_list("t", "endpoint", "vm_uuid", "exam_ref", "outcome"))
    replay = replay_calls(
        ((t, endpoint, vm, outcome) for t, endpoint, vm, _exam, outcome in rows if endpoint != CallEndpoint.ASSIGN),
        allocation_interval_s=allocation_interval_s,
        requests_per_second=requests_per_second,
    )
    exams = list(Exam.objects.order_by("id").values_list("id", "name", "start", "end", "students"))
    ready_at_start = _ready_at_start(rows, replay, {pk: start for pk, _n, start, _e, _s in exams})
    at_start = {pk: (students_at_start or {}).get(pk, students) for pk, _n, _st, _e, students in exams}
    return {
        "calls": _call_entries(rows),
        "exams": [
            {
                "id": pk,
                "name": name,
                "start": _iso(start),
                "end": _iso(end),
                "students": students,
                "students_at_start": at_start[pk],
                "ready_at_start": ready_at_start[pk],
                "shortfall": max(0, at_start[pk] - ready_at_start[pk]),
            }
            for pk, name, start, end, students in exams
        ],
        "vm_seconds": round(_vm_seconds(replay, until), 3),
        "summary": _call_summary(rows, replay, ready_at_start, at_start),
    }


def _call_entries(rows: list) -> list[dict]:
    """The call log as the report shows it (an ``assign`` has no outcome)."""
    calls = []
    for t, endpoint, vm, exam, outcome in rows:
        entry = {"t": _iso(t), "endpoint": endpoint, "vm": vm, "exam": exam}
        if endpoint != CallEndpoint.ASSIGN:
            entry["outcome"] = outcome
        calls.append(entry)
    return calls


def _bindings(rows: list) -> dict[str, list[tuple[datetime, int]]]:
    """Per VM, the exams it was bound to over time: its start, then each assign."""
    bindings: dict[str, list[tuple[datetime, int]]] = {}
    for t, endpoint, vm, exam, outcome in rows:
        if vm and outcome == "ok" and endpoint in (CallEndpoint.START, CallEndpoint.ASSIGN):
            bindings.setdefault(vm, []).append((t, exam))
    return bindings


def _ready_at_start(rows: list, replay: dict, starts: dict[int, datetime]) -> dict[int, int]:
    """Per exam, the VMs bound to it at its start that were ready then and not stopped."""
    ready_at_start = {pk: 0 for pk in starts}
    for vm, history in _bindings(rows).items():
        times = replay.get(vm)
        if not times or times["ready_at"] is None:
            continue
        ready, stopped = times["ready_at"], times["stopped_at"]
        for i, (t, exam_id) in enumerate(history):
            start = starts.get(exam_id)
            if start is None:
                continue
            bound_until = history[i + 1][0] if i + 1 < len(history) else None
            if t <= start and (bound_until is None or bound_until > start):
                if ready <= start and (stopped is None or stopped > start):
                    ready_at_start[exam_id] += 1
    return ready_at_start


def _vm_seconds(replay: dict, until: datetime) -> float:
    """VM time paid for: from ready to stopped (or ``until``)."""
    vm_seconds = 0.0
    for times in replay.values():
        ready = times["ready_at"]
        if ready is None:
            continue
        end = times["stopped_at"] or until
        if end > ready:
            vm_seconds += (end - ready).total_seconds()
    return vm_seconds


def _call_summary(rows: list, replay: dict, ready_at_start: dict[int, int], at_start: dict[int, int]) -> dict:
    counts = {"start": 0, "stop": 0, "assign": 0, "rate_limited": 0, "error": 0}
    for _t, endpoint, _vm, _exam, outcome in rows:
        counts[endpoint] += 1
        if outcome in counts:
            counts[outcome] += 1
    return {
        "calls": len(rows),
        "starts": counts["start"],
        "stops": counts["stop"],
        "assigns": counts["assign"],
        "rate_limited": counts["rate_limited"],
        "errors": counts["error"],
        "vms": len(replay),
        "never_stopped": sum(1 for t in replay.values() if t["stopped_at"] is None),
        "surplus_at_start": sum(max(0, ready_at_start[pk] - at_start[pk]) for pk in at_start),
    }


# --- generating scenarios --------------------------------------------------------------


def make_scenario(
    n_exams: int,
    *,
    days: int = 3,
    vms: int | None = None,
    students: tuple[int, int] = (50, 2500),
    changes: int = 0,
    seed: int = 1,
    start: datetime | None = None,
) -> dict:
    """A random but reproducible scenario: exams on weekdays' office hours
    (08:00-17:00 starts, 1-3 h long) over ``days`` days, ``students`` drawn
    in a range and, with ``vms``, scaled so they add up to about ``vms``;
    ``changes`` random updates/deletes/late creates."""
    if n_exams < 1 or days < 1:
        raise ValueError("need at least one exam and one day")
    rng = random.Random(seed)
    start = start or datetime(2030, 3, 4, tzinfo=timezone.utc)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    lo, hi = students
    exams: list[dict[str, Any]] = []
    for i in range(n_exams):
        day = i * days // n_exams
        t = start + timedelta(days=day, hours=8) + timedelta(minutes=30 * rng.randrange(0, 18))
        exams.append(
            {
                "id": i + 1,
                "name": f"Exam {i + 1}",
                "start": t,
                "end": t + timedelta(minutes=rng.choice([60, 90, 120, 180])),
                "students": rng.randint(lo, hi),
            }
        )
    if vms is not None:
        total = sum(e["students"] for e in exams)
        for e in exams:
            e["students"] = max(0, min(settings.EXAM_MAX_STUDENTS, round(e["students"] * vms / total)))
        diff = vms - sum(e["students"] for e in exams)
        for e in exams:
            if diff == 0:
                break
            step = max(-e["students"], min(diff, settings.EXAM_MAX_STUDENTS - e["students"]))
            e["students"] += step
            diff -= step
    change_list: list[dict[str, Any]] = []
    next_id = n_exams + 1
    alive = {e["id"]: dict(e) for e in exams}  # the state as changes apply, not the initial exams
    for _ in range(changes):
        kind = rng.choice(["more", "fewer", "move", "delete", "create"])
        target = rng.choice(sorted(alive)) if alive else None
        if target is None or kind == "create":
            day = rng.randrange(days)
            t = start + timedelta(days=day, hours=8) + timedelta(minutes=30 * rng.randrange(0, 18))
            at = max(start, t - timedelta(minutes=rng.choice([20, 60, 240])))
            exam = {
                "id": next_id,
                "name": f"Late exam {next_id}",
                "start": t,
                "end": t + timedelta(hours=1),
                "students": rng.randint(10, 400),
            }
            change_list.append({"at": at, "action": "create", "exam": exam})
            alive[next_id] = dict(exam)
            next_id += 1
            continue
        e = alive[target]
        at = max(start, e["start"] - timedelta(minutes=rng.choice([10, 45, 180, 600])))
        if kind == "delete":
            change_list.append({"at": at, "action": "delete", "exam": {"id": target}})
            del alive[target]
        elif kind == "move":
            shift = timedelta(minutes=rng.choice([-60, -30, 30, 120]))
            new_start = max(at + timedelta(minutes=5), e["start"] + shift)
            new_end = new_start + (e["end"] - e["start"])
            change_list.append(
                {"at": at, "action": "update", "exam": {"id": target, "start": new_start, "end": new_end}}
            )
            e.update(start=new_start, end=new_end)
        else:
            n = e["students"]
            n = (
                min(settings.EXAM_MAX_STUDENTS, n + rng.randint(1, 200))
                if kind == "more"
                else max(0, n - rng.randint(1, 200))
            )
            change_list.append({"at": at, "action": "update", "exam": {"id": target, "students": n}})
            e["students"] = n
    change_list.sort(key=lambda c: c["at"])

    def enc(value):
        if isinstance(value, datetime):
            return _iso(value)
        if isinstance(value, dict):
            return {k: enc(v) for k, v in value.items()}
        if isinstance(value, list):
            return [enc(v) for v in value]
        return value

    return enc(
        {
            "start": start,
            "exams": exams,
            "changes": change_list,
            "provider": {"allocation_interval_s": 6, "requests_per_second": 3},
        }
    )
