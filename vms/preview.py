"""What-if: the effect of exam changes on every exam's VMs, before saving them.

``exam_changes_impact`` is pure: the exams and live VMs as the planner sees
them, a list of changes (the scenario format's create / update / delete
items, applied now), and two plans - before and after - compared exam by
exam. Nothing is written. ``POST /exams/preview`` and the exam admin's
confirmation step use it; ``bench_planner --preview`` times it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vms.planner import ExamIn, ExamPlan, PlannerConfig, VmIn, from_ms, plan, to_ms, to_ms_floor
from vms.simulation import ScenarioError, check_change_applies, parse_exam_change


@dataclass(frozen=True, slots=True)
class ExamChange:
    action: str  # create | update | delete
    exam_id: int | None  # None: a new exam without an id yet
    fields: dict  # start / end as aware datetimes, students, name


def parse_changes(data: Any) -> list[ExamChange]:
    """``{"changes": [{"action", "exam": {...}}, ...]}`` -> changes; every error
    names its place (``changes[1].exam.end``) and is a 400. Each item is
    validated as a scenario's change is (``vms.simulation.parse_exam_change``,
    the exam rules of ``exams.rules``), without its ``at``."""
    if not isinstance(data, dict) or set(data) - {"changes"}:
        raise ScenarioError('expected {"changes": [...]}', field="changes")
    raw_changes = data.get("changes")
    if not isinstance(raw_changes, list) or not raw_changes:
        raise ScenarioError("expected a non-empty list", field="changes")
    if len(raw_changes) > 1000:
        raise ScenarioError("at most 1000 changes", field="changes")
    out = []
    for i, raw in enumerate(raw_changes):
        try:
            out.append(_parse_change(raw, f"changes[{i}]"))
        except ScenarioError as exc:
            # the API names the place in the field; the message need not repeat it
            raise ScenarioError(exc.message.removeprefix(f"{exc.field}: "), field=exc.field) from None
    return out


def _parse_change(raw: Any, where: str) -> ExamChange:
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: expected an object", field=where)
    unknown = set(raw) - {"action", "exam"}
    if unknown:
        raise ScenarioError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))} (a preview applies changes now)", field=where
        )
    action, exam_id, values = parse_exam_change(raw, where, id_optional_on_create=True)
    return ExamChange(action, exam_id, values)


class PreviewConflict(ScenarioError):
    """A well-formed change that does not fit the exams as they are (creating
    an id that exists, updating or deleting one that does not): a 409, like
    ``POST /exams`` with a taken id, not a 400 about the request's shape."""

    status_code = 409


def apply_changes(exams: dict[int, ExamIn], changes: list[ExamChange]) -> tuple[dict[int, ExamIn], list[int]]:
    """The exams after the changes (new exams without an id get -1, -2, ...),
    and the ids the changes name, in order. Each change is applied as a
    scenario's is (``vms.simulation.check_change_applies``); one that does
    not fit the stored exams is a ``PreviewConflict``."""
    state: dict[int, dict[str, Any]] = {
        pk: {"start": from_ms(e.start_ms), "end": from_ms(e.end_ms), "students": e.students} for pk, e in exams.items()
    }
    named: list[int] = []
    new_id = 0
    for i, c in enumerate(changes):
        exam_id = c.exam_id
        if exam_id is None:  # only a create may leave it out (parse_changes)
            new_id -= 1
            exam_id = new_id
        try:
            check_change_applies(state, c.action, exam_id, c.fields, f"changes[{i}].exam", conflict=PreviewConflict)
        except ScenarioError as exc:
            # the API names the place in the field; the message need not repeat it
            raise type(exc)(exc.message.removeprefix(f"{exc.field}: "), field=exc.field) from None
        named.append(exam_id)
    after = {pk: ExamIn(pk, to_ms_floor(v["start"]), to_ms(v["end"]), v["students"]) for pk, v in state.items()}
    return after, named


def _iso(ms: int | None) -> str | None:
    return None if ms is None else from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outcome(ep: ExamPlan | None) -> tuple:
    if ep is None:
        return (None, None, None)
    return (ep.expected_ready_at_start, ep.shortfall, ep.requesting_starts_ms)


def exam_changes_impact(
    *, exams: list[ExamIn], vms: list[VmIn], now_ms: int, config: PlannerConfig, changes: list[ExamChange]
) -> list[dict]:
    """Every exam whose outcome (on-time count, shortfall, first request)
    changes, and every exam a change names: before and after, earliest start
    first. Pure: two plans, no I/O."""
    before_exams = {e.id: e for e in exams}
    after_exams, named = apply_changes(before_exams, changes)
    before = plan(exams=before_exams.values(), vms=vms, now_ms=now_ms, config=config)
    after = plan(exams=after_exams.values(), vms=vms, now_ms=now_ms, config=config)
    rows = []
    for exam_id in set(before_exams) | set(after_exams):
        b, a = before.exam(exam_id), after.exam(exam_id)
        if exam_id not in named and _outcome(b) == _outcome(a):
            continue
        e = after_exams.get(exam_id) or before_exams[exam_id]
        rows.append(
            (
                e.start_ms,
                exam_id,
                {
                    "id": exam_id if exam_id > 0 else None,
                    "deleted": exam_id not in after_exams,
                    "start": _iso(e.start_ms),
                    "students": e.students if exam_id in after_exams else 0,
                    "on_time_before": b.expected_ready_at_start if b else None,
                    "on_time_after": a.expected_ready_at_start if a else None,
                    "shortfall_before": b.shortfall if b else None,
                    "shortfall_after": a.shortfall if a else None,
                    "first_request_before": _iso(b.requesting_starts_ms) if b else None,
                    "first_request_after": _iso(a.requesting_starts_ms) if a else None,
                    "note_after": a.shortfall_note() if a else "",
                },
            )
        )
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


def worsens(impact: list[dict]) -> bool:
    """Whether the change creates or enlarges a shortfall, its own or another exam's."""
    return any((r["shortfall_after"] or 0) > (r["shortfall_before"] or 0) for r in impact)
