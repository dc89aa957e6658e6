"""Planner phase 7: from the pass's decisions to the frozen ``Plan``.

The runs get their request pacing (which requests may go out early into a
busy FIFO, and how far ahead the queue is kept), each exam its outcome
(on-time count, shortfall, when requesting starts), and the stops their
order.
"""

from __future__ import annotations

from vms.planner.state import PassState, Want
from vms.planner.types import Assign, ExamIn, ExamPlan, Run


def pace_runs(st: PassState) -> list[Run]:
    """All runs in time order, each told whether it follows a busy allocator
    (a back-to-back run, or the first one when the queue is busy up to it):
    then its requests may go out early (``lead_ms``, queue ahead) at no cost,
    counted for the call rate from the block's first request (``anchor``);
    after an idle allocator the first request goes out at its slot."""
    config, now, allocator_free = st.config, st.now_ms, st.allocator_free
    all_runs = st.on_time_runs + [r for rs in st.late_runs.values() for r in rs]
    all_runs.sort(key=lambda r: r.slot_start_ms)
    queue_busy = allocator_free > now
    may_lead = bool(config.lead_ms or config.queue_ahead_ms)
    runs: list[Run] = []
    prev = None
    for run in all_runs:
        contiguous = (prev is not None and prev.end_ms == run.slot_start_ms) or (
            prev is None and queue_busy and run.slot_start_ms == allocator_free
        )
        early = contiguous and may_lead
        if not early:
            anchor, index = run.slot_start_ms - config.idle_lead_ms, 0
        elif prev is not None:
            anchor, index = prev.anchor_ms, prev.anchor_index + prev.count
        else:
            anchor, index = now, 0  # joining the queue we already have: from now
        prev = Run(
            run.exam_id,
            run.slot_start_ms,
            run.count,
            run.interval_ms,
            run.lead_ms,
            early,
            run.late,
            run.idle_lead_ms,
            config.queue_ahead_ms,
            anchor,
            index,
            config.call_spacing_ms,
        )
        runs.append(prev)
    return runs


def exam_plans(st: PassState, runs: list[Run]) -> tuple[ExamPlan, ...]:
    """One ``ExamPlan`` per exam (future ones, then started ones, earliest
    start first), sorted earliest deadline first."""
    runs_of: dict[int, list[Run]] = {}
    for run in runs:
        runs_of.setdefault(run.exam_id, []).append(run)
    plans = [_future_exam_plan(w, tuple(runs_of.get(w.exam.id, ()))) for w in st.future]
    exams_by_id = st.exams_by_id
    for exam_id in sorted(exams_by_id, key=lambda i: (exams_by_id[i].start_ms, i)):
        e = exams_by_id[exam_id]
        if e.start_ms <= st.now_ms:
            plans.append(_started_exam_plan(st, e, tuple(runs_of.get(exam_id, ()))))
    plans.sort(key=lambda p: (p.deadline_ms, p.start_ms, p.exam_id))
    return tuple(plans)


def _future_exam_plan(w: Want, e_runs: tuple[Run, ...]) -> ExamPlan:
    e = w.exam
    kept = len(w.keep) + len(w.rebound)
    on_time = kept + w.new_slots
    first = [r.first_request_ms for r in e_runs]
    existing = [f.vm.requested_ms for f in w.keep + w.late_keep]
    return ExamPlan(
        exam_id=e.id,
        start_ms=e.start_ms,
        end_ms=e.end_ms,
        deadline_ms=w.deadline,
        students=e.students,
        started=False,
        vms_kept=kept + len(w.late_keep),
        expected_ready_at_start=on_time,
        shortfall=e.students - on_time,
        new_on_time=w.new_slots,
        rebound_in=sum(1 for f in w.rebound if f.vm.exam_id != e.id),
        late_planned=sum(r.count for r in e_runs if r.late),
        requesting_starts_ms=min(existing + first) if existing or first else None,
        runs=e_runs,
    )


def _started_exam_plan(st: PassState, e: ExamIn, e_runs: tuple[Run, ...]) -> ExamPlan:
    """A started (or ended) exam: its VMs are committed; only late ones can be added."""
    ready_at_start = st.started_ready_at_start.get(e.id, 0)
    return ExamPlan(
        exam_id=e.id,
        start_ms=e.start_ms,
        end_ms=e.end_ms,
        deadline_ms=e.start_ms - st.margin,
        students=e.students,
        started=True,
        vms_kept=st.started_vm_count.get(e.id, 0),
        expected_ready_at_start=ready_at_start,
        shortfall=max(0, e.students - ready_at_start),
        new_on_time=0,
        rebound_in=0,
        late_planned=sum(r.count for r in e_runs),
        requesting_starts_ms=st.requested_first.get(e.id),
        runs=e_runs,
    )


def assigns(st: PassState) -> tuple[Assign, ...]:
    """Re-binds: fresh VMs an exam took from another (or from none)."""
    return tuple(Assign(item.vm.id, w.exam.id) for w in st.future for item in w.rebound if item.vm.exam_id != w.exam.id)


def next_event_ms(st: PassState) -> int | None:
    """The next exam start or end after now: a replan would see it."""
    now = st.now_ms
    times = [t for e in st.exams_by_id.values() for t in (e.start_ms, e.end_ms) if t > now]
    return min(times) if times else None


def ordered_stops(st: PassState) -> tuple:
    """The stops in the order to issue them (see ``state.stop_key``)."""
    st.stops.sort(key=lambda pair: pair[0])
    return tuple(s for _key, s in st.stops)
