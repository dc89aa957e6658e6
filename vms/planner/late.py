"""Planner phase 6: late VMs for the shortfall, in the allocator time no
on-time VM needs.

As late as possible applies to on-time VMs only. VMs that cannot be ready by
an exam's deadline are still requested - late students still get one - but
only in the gaps between the on-time runs (never a slot an on-time VM needs),
as early as those allow, earliest deadline first, and only when they are
ready at least ``late_min_useful_ms`` before the exam ends.
"""

from __future__ import annotations

from vms.planner.state import PassState, Want
from vms.planner.types import STOP_SURPLUS, ExamIn, Run

_Need = tuple[tuple[int, int, int], ExamIn, int]  # (EDF key, exam, VMs short)


def free_gaps(st: PassState) -> list[list]:
    """``[start, end)`` of the allocator time between the on-time runs
    (only gaps of at least one slot), then ``[after the last run, None)``."""
    interval = st.interval
    gaps: list[list] = []
    g = st.allocator_free
    for run in st.on_time_runs:
        if run.slot_start_ms - g >= interval:
            gaps.append([g, run.slot_start_ms])
        g = max(g, run.end_ms)
    gaps.append([g, None])
    return gaps


def late_needs(st: PassState) -> list[_Need]:
    """How many late VMs each exam still needs, earliest deadline first:
    future exams short by their deadline (after their own late-ready VMs that
    are still useful; the rest of those are stopped), started exams with
    fewer VMs than students, and started exams with none alive at all (e.g.
    created after their start)."""
    needs: list[_Need] = []
    margin = st.margin
    for w in st.future:
        short = w.exam.students - w.on_time
        useful = _keep_useful_late_vms(st, w, short)
        if short - useful > 0:
            e = w.exam
            needs.append(((e.start_ms - margin, e.start_ms, e.id), e, short - useful))
    for exam_id, count in st.started_vm_count.items():
        e = st.exams_by_id[exam_id]
        if e.students > count:
            needs.append(((e.start_ms - margin, e.start_ms, e.id), e, e.students - count))
    for exam_id, e in st.exams_by_id.items():
        if e.start_ms <= st.now_ms < e.end_ms and exam_id not in st.started_vm_count and e.students > 0:
            st.started_vm_count[exam_id] = 0
            needs.append(((e.start_ms - margin, e.start_ms, e.id), e, e.students))
    needs.sort(key=lambda t: t[0])
    return needs


def _keep_useful_late_vms(st: PassState, w: Want, short: int) -> int:
    """An exam's own VMs ready after its deadline are kept only as far as it
    is short and only when ready in time to be useful; the others are
    stopped (they protect its start). Returns how many are kept."""
    limit = st.config.late_limit_ms(w.exam.end_ms)
    useful = [f for f in w.late_keep if f.ready <= limit][: max(0, short)]
    kept_ids = {f.vm.id for f in useful}
    for f in w.late_keep:
        if f.vm.id not in kept_ids:
            st.stop(f.vm, STOP_SURPLUS, ready=f.ready, protects_ms=w.exam.start_ms)
    w.late_keep = useful
    return len(useful)


def place_late_vms(st: PassState, gaps: list[list], needs: list[_Need]) -> None:
    """Fill the gaps in order, earliest deadline first; gaps before ``gi``
    are used up (less than a slot left). Fills ``late_runs``."""
    interval = st.interval
    gi = 0
    for _key, e, need in needs:
        _fill_gaps(st, gaps, gi, e, need)
        while gi < len(gaps) and gaps[gi][1] is not None and gaps[gi][1] - gaps[gi][0] < interval:
            gi += 1


def _fill_gaps(st: PassState, gaps: list[list], j: int, e: ExamIn, need: int) -> None:
    """Late runs for one exam from gap ``j`` on: slot k of a gap is ready at
    ``start + (k+1)*I``, which must leave the student at least
    ``late_min_useful_ms`` of the exam; later gaps start later still."""
    interval, config = st.interval, st.config
    late_limit = config.late_limit_ms(e.end_ms)
    while need > 0 and j < len(gaps):
        start, end = gaps[j]
        fit_by_end = (late_limit - start) // interval
        if fit_by_end <= 0:
            break
        fit = fit_by_end if end is None else min(fit_by_end, (end - start) // interval)
        if fit <= 0:
            j += 1
            continue
        count = min(need, fit)
        st.late_runs.setdefault(e.id, []).append(
            Run(e.id, start, count, interval, config.lead_ms, False, late=True, idle_lead_ms=config.idle_lead_ms)
        )
        gaps[j][0] = start + count * interval
        need -= count
        if need and fit == fit_by_end:
            break
        j += 1
