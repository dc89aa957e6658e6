"""Planner phases 3-5: the VMs ready by each future exam's deadline.

Fresh VMs are shared out first (each exam keeps its own, the rest wait in
the pool), then an earliest-deadline-first pass decides how many VMs each
exam gets on time and from where, then a latest-deadline-first pass places
the new slots as late as possible (one contiguous run per exam) and makes the
two cost trades that keep every on-time count. What no exam kept is stopped.
"""

from __future__ import annotations

import bisect

from vms.planner.state import Fresh, PassState, Want, slots_between
from vms.planner.types import STOP_RELEASE, STOP_SURPLUS, Run, VmIn


def share_fresh_vms(st: PassState, fresh: list[VmIn], ready_of: dict[int, int]) -> None:
    """Future exams, earliest deadline first (``D = start - margin``), each
    keeping its own fresh VMs ready by ``D`` (at most ``students``); its
    surplus - the latest ready, i.e. VMs still waiting in the queue - and the
    VMs of deleted exams go to the pool; its own VMs ready after ``D`` are
    set aside as late ones."""
    now, margin = st.now_ms, st.margin
    future = sorted(
        (e for e in st.exams_by_id.values() if e.start_ms > now),
        key=lambda e: (e.start_ms - margin, e.start_ms, e.id),
    )
    st.future = [Want(e, e.start_ms - margin) for e in future]
    own: dict[int | None, list[Fresh]] = {w.exam.id: [] for w in st.future}
    pool = st.pool
    for vm in fresh:
        item = Fresh(vm, ready_of.get(vm.id, vm.ready_ms))
        mine = own.get(vm.exam_id)
        if mine is not None:
            mine.append(item)
        else:
            pool.add(item)
    for w in st.future:
        deadline = w.deadline
        mine = sorted(own[w.exam.id], key=lambda f: (f.ready, f.vm.id))
        on_time = [f for f in mine if f.ready <= deadline]
        w.keep = on_time[: w.exam.students]
        for f in on_time[w.exam.students :]:
            pool.add(f)
        w.late_keep = [f for f in mine if f.ready > deadline]


def count_on_time(st: PassState) -> None:
    """Feasibility, earliest deadline first: each exam takes new slots ending
    by its deadline that earlier exams left, then - only when that is not
    enough - re-binds pool VMs, then fresh VMs of later exams. Whatever an
    exam can use, every later exam could use too, so this greedy pass gives
    the most VMs on time, earliest exams first; it fixes ``new_slots``."""
    wants, interval, allocator_free = st.future, st.interval, st.allocator_free
    holders = [i for i, w in enumerate(wants) if w.keep]  # exams with fresh VMs
    used_slots = 0
    for i, w in enumerate(wants):
        need = w.exam.students - len(w.keep)
        capacity = slots_between(allocator_free, w.deadline, interval) - used_slots
        take = max(0, min(need, capacity))
        w.new_slots = take
        used_slots += take
        need -= take
        while need > 0:
            item = st.pool.peek_latest_by(w.deadline)
            if item is None:
                break
            st.pool.remove(item)
            w.rebound.append(item)
            need -= 1
        if need > 0:
            _take_from_later_exams(wants, holders, i, need)


def _take_from_later_exams(wants: list[Want], holders: list[int], i: int, need: int) -> None:
    """Earliest exams first: exam ``i`` takes fresh VMs of the latest exams
    that are ready by its deadline (those exams replan for themselves)."""
    w = wants[i]
    for h in range(len(holders) - 1, -1, -1):
        if holders[h] <= i:
            break
        theirs = wants[holders[h]].keep
        if not theirs or theirs[0].ready > w.deadline:
            continue
        j = bisect.bisect_right([f.ready for f in theirs], w.deadline)
        while need > 0 and j > 0:
            j -= 1
            w.rebound.append(theirs.pop(j))
            need -= 1
        if need == 0:
            break


def place_runs_alap(st: PassState) -> None:
    """Placement as late as possible, latest deadline first: each exam's new
    slots form one contiguous run ending at ``min(D, start of the next run)``
    (for unit-length jobs with deadlines this fits exactly when the forward
    pass does, and it minimises the VM-seconds before the starts). ``room``
    is how many slots may still be added before this exam without costing
    any exam an on-time VM (the least slack of the prefix constraints from
    here on); the cost trades spend or earn it. Fills ``on_time_runs``."""
    wants, interval, config = st.future, st.interval, st.config
    prefix = 0
    slack: list[int] = []
    for w in wants:
        prefix += w.new_slots
        slack.append(slots_between(st.allocator_free, w.deadline, interval) - prefix)
    runs: list[Run] = []
    cursor = None
    min_slack_after = None
    for i in range(len(wants) - 1, -1, -1):
        w = wants[i]
        end = w.deadline if cursor is None else min(w.deadline, cursor)
        room = slack[i] if min_slack_after is None else min(min_slack_after, slack[i])
        room = _rebind_instead_of_slots(st, w, end, room)
        min_slack_after = _release_parked_vms(st, w, end, room)
        x = w.new_slots
        if x > 0:
            runs.append(
                Run(w.exam.id, end - x * interval, x, interval, config.lead_ms, False, idle_lead_ms=config.idle_lead_ms)
            )
            cursor = end - x * interval
        else:
            cursor = end
    st.on_time_runs = sorted(runs, key=lambda r: r.slot_start_ms)


def _rebind_instead_of_slots(st: PassState, w: Want, end: int, room: int) -> int:
    """A pool VM replaces the earliest slot of the run when it would wait no
    longer for the exam than that slot's VM ("saves an allocation": no start,
    no stop, no allocator time). Returns the room left."""
    x, interval, now = w.new_slots, st.interval, st.now_ms
    while x > 0:
        item = st.pool.peek_latest_by(w.deadline)
        if item is None:
            break
        earliest_slot_ready = end - x * interval + interval
        if w.deadline - max(now, item.ready) > w.deadline - earliest_slot_ready:
            break
        st.pool.remove(item)
        w.rebound.append(item)
        x -= 1
        room += 1
    w.new_slots = x
    return room


def _release_parked_vms(st: PassState, w: Want, end: int, room: int) -> int:
    """An own VM parked far too early (the exam was moved later) is released
    - stopped now, re-requested later - when it would idle more than
    ``release_slack_ms`` longer than a new slot's VM and a slot fits without
    costing any exam an on-time VM. Returns the room left."""
    x, interval, now, slack_ms = w.new_slots, st.interval, st.now_ms, st.config.release_slack_ms
    kept = w.keep
    while kept and room > 0:
        item = kept[0]
        new_ready = end - x * interval
        if w.deadline - max(now, item.ready) <= (w.deadline - new_ready) + slack_ms:
            break
        kept.pop(0)
        st.released.append(item)
        x += 1
        room -= 1
    w.new_slots = x
    return room


def stop_spare_vms(st: PassState) -> None:
    """Released VMs and the pool VMs no exam took are stopped; a fresh VM
    protects the upcoming start it would otherwise be counted at (now for
    one of a deleted exam), which orders its stop ahead of plain teardown."""
    now, exams_by_id = st.now_ms, st.exams_by_id

    def protects(vm: VmIn) -> int:
        bound = exams_by_id.get(vm.exam_id) if vm.exam_id is not None else None
        return bound.start_ms if bound is not None and bound.start_ms > now else now

    for item in st.released:
        st.stop(item.vm, STOP_RELEASE, ready=item.ready, protects_ms=protects(item.vm))
    for item in st.pool:
        st.stop(item.vm, STOP_SURPLUS, ready=item.ready, protects_ms=protects(item.vm))
