"""Planner phases 1-2: the live VMs as they stand, and the allocator's free time.

Before anything is planned, every live VM is put in one place: stopped (its
exam is over, gone, or has more VMs than students), committed to an exam that
has started (students may be on it, so it is never moved), or *fresh* (no
student can have used it: it may serve any future exam). Then the provider's
FIFO is replayed without the VMs being stopped, which says when the
allocator is free for new slots.
"""

from __future__ import annotations

from collections.abc import Iterable

from vms.planner.state import PassState
from vms.planner.types import STOP_ENDED, STOP_ORPHAN, STOP_SURPLUS, STOP_USED, STOP_USELESS, VmIn


def classify_live_vms(st: PassState, vms: Iterable[VmIn]) -> tuple[list[VmIn], list[VmIn], dict[int, list[VmIn]]]:
    """One pass over the live VMs -> (the provider queue in FIFO order, the
    fresh VMs, started exam -> its VMs), stopping what nobody can use.

    A VM with an unknown outcome is only in the queue (it may occupy the
    allocator; it can be neither used nor stopped). A used VM whose exam was
    deleted or moved after it started is never re-bound: it is stopped. The
    earliest request per exam is noted on the way (``requesting_starts_ms``
    of a started exam), so the VMs are read once."""
    now, exams_by_id, requested_first = st.now_ms, st.exams_by_id, st.requested_first
    queue: list[VmIn] = []  # the provider's FIFO as we believe it
    fresh: list[VmIn] = []
    committed: dict[int, list[VmIn]] = {}
    for vm in vms:
        if vm.ready_ms > now:
            queue.append(vm)
        if vm.unknown:
            continue
        if vm.exam_id is not None and vm.requested_ms < requested_first.get(vm.exam_id, vm.requested_ms + 1):
            requested_first[vm.exam_id] = vm.requested_ms
        if vm.stopping:
            st.stop_pending(vm)
            continue
        exam = exams_by_id.get(vm.exam_id) if vm.exam_id is not None else None
        if exam is None:
            if vm.used:
                st.stop(vm, STOP_ORPHAN, ready=vm.ready_ms, protects_ms=now)
            else:
                fresh.append(vm)
        elif exam.end_ms <= now:
            st.stop(vm, STOP_ENDED, ready=vm.ready_ms, due_ms=exam.end_ms)
        elif exam.start_ms <= now:
            committed.setdefault(exam.id, []).append(vm)
        elif vm.used:
            # The exam was moved after it had started: students may have used
            # this VM, so the new sitting gets fresh ones and this one goes.
            st.stop(vm, STOP_USED, ready=vm.ready_ms, protects_ms=exam.start_ms)
        else:
            fresh.append(vm)
    queue.sort(key=lambda v: (v.requested_ms, v.id))
    return queue, fresh, committed


def trim_started_exams(st: PassState, committed: dict[int, list[VmIn]]) -> None:
    """Started exams keep their VMs, up to ``students``: the surplus is
    stopped at once, latest ready (still queued) first, and queued VMs that
    would be ready too close to the exam's end to help anyone are useless."""
    now, late_limit = st.now_ms, st.config.late_limit_ms
    for exam_id, bound in committed.items():
        exam = st.exams_by_id[exam_id]
        useful = []
        for vm in bound:
            if vm.ready_ms > now and vm.ready_ms > late_limit(exam.end_ms):
                st.stop(vm, STOP_USELESS, ready=vm.ready_ms)
            else:
                useful.append(vm)
        useful.sort(key=lambda v: (v.ready_ms, v.id))
        surplus = len(useful) - exam.students
        if surplus > 0:
            for vm in useful[-surplus:]:
                st.stop(vm, STOP_SURPLUS, ready=vm.ready_ms)
            useful = useful[:-surplus]
        st.started_vm_count[exam_id] = len(useful)
        st.started_ready_at_start[exam_id] = sum(1 for v in useful if v.ready_ms <= exam.start_ms)


def settle_queue(st: PassState, queue: list[VmIn]) -> dict[int, int]:
    """The provider queue without the VMs being stopped -> VM id -> its ready
    time now; sets ``allocator_free`` (``A``: the last one's ready time, or now).

    Removing a VM only moves later ones forward; the one allocating (its
    allocation began by now) frees the allocator at its stop, i.e. about now."""
    now, interval, stopped = st.now_ms, st.interval, st.stopped_ids
    ready_of: dict[int, int] = {}
    prev_end = now
    moved = False
    for vm in queue:
        allocating = vm.ready_ms - interval <= now
        if vm.id in stopped:
            if allocating:
                prev_end = max(prev_end, now)
            moved = True
            continue
        ready = vm.ready_ms
        if moved and not allocating:
            ready = min(ready, max(vm.requested_ms, prev_end) + interval)
        ready_of[vm.id] = ready
        prev_end = max(prev_end, ready)
    st.allocator_free = prev_end
    return ready_of
