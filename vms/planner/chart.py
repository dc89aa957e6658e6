"""Planned ready VMs of one exam over time, for charts (API, admin)."""

from __future__ import annotations

from collections.abc import Iterable

from vms.planner.types import Plan, Run


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
    return ready_points(plan.now_ms, ready_times, ep.runs if ep is not None else ())


def ready_points(now_ms: int, ready_times: Iterable[int], runs: Iterable[Run]) -> list[tuple[int, int]]:
    """Ready VMs over time from ``now_ms``: the live ones from their ready
    times, then each run's, two points per run (first and last ready). The
    stored plan summaries (``vms.plan_summary``) draw with this too."""
    ready_times = list(ready_times)
    count = sum(1 for r in ready_times if r <= now_ms)
    points: list[tuple[int, int]] = [(now_ms, count)]
    items: list[tuple[int, int, int]] = [(r, r, 1) for r in ready_times if r > now_ms]
    items += [(run.ready_ms(0), run.ready_ms(run.count - 1), run.count) for run in runs]
    items.sort()
    for first, last, n in items:
        points.append((first, count + 1))
        count += n
        if last != first:
            points.append((last, count))
    return points
