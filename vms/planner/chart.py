"""Planned ready VMs of one exam over time, for charts (API, admin)."""

from __future__ import annotations

from collections.abc import Iterable

from vms.planner.types import Plan


def timeline(plan: Plan, exam_id: int, *, vms: Iterable[tuple[int, int | None, int]] = ()) -> list[tuple[int, int]]:
    """Planned ready VMs of one exam over time: ``[(t_ms, count), ...]``.

    ``vms`` are the live VMs as ``(vm_id, exam_id, ready_ms)``: those the plan
    keeps for the exam (bound to it and not stopped, or re-bound to it) count
    from their ready time, then each run adds its VMs, one every interval; a
    run contributes two points (first and last ready) so charts stay small.
    """
    ep = plan.exam(exam_id)
    stopped = {s.vm_id for s in plan.stops}
    moved = {a.vm_id: a.exam_id for a in plan.assigns}
    ready_times = [ready for vm_id, bound, ready in vms if vm_id not in stopped and moved.get(vm_id, bound) == exam_id]
    count = sum(1 for r in ready_times if r <= plan.now_ms)
    points: list[tuple[int, int]] = [(plan.now_ms, count)]
    items: list[tuple[int, int, int]] = [(r, r, 1) for r in ready_times if r > plan.now_ms]
    if ep is not None:
        items += [(run.ready_ms(0), run.ready_ms(run.count - 1), run.count) for run in ep.runs]
    items.sort()
    for first, last, n in items:
        points.append((first, count + 1))
        count += n
        if last != first:
            points.append((last, count))
    return points
