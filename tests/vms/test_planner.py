"""The pure planner: exams + VMs + queue + now in, runs / stops / assigns out.

No database: every test builds the inputs by hand. Where a plan's promise is
checked ("exactly N ready at the start"), the planned requests are replayed
through the provider model (``FakeProvider`` on a virtual clock), so the
test does not just re-read the planner's own arithmetic.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import pairwise

import pytest

from vms.clock import VirtualClock
from vms.planner import (
    STOP_ENDED,
    STOP_ORPHAN,
    STOP_PENDING,
    STOP_RELEASE,
    STOP_SURPLUS,
    Assign,
    ExamIn,
    PlannerConfig,
    VmIn,
    from_ms,
    plan,
    timeline,
    to_ms,
    to_ms_floor,
)
from vms.providers import FakeProvider

S = 1000
MIN = 60 * S
H = 60 * MIN
IV = 6 * S  # the allocation interval
T0 = to_ms(datetime(2030, 5, 1, tzinfo=timezone.utc))
CFG = PlannerConfig()


def exam(id, start, students, end=None):
    return ExamIn(id=id, start_ms=T0 + start, end_ms=T0 + (end if end is not None else start + H), students=students)


def ready_vm(id, exam_id, ready_at, *, used=False):
    return VmIn(id=id, exam_id=exam_id, requested_ms=T0 + ready_at - IV, ready_ms=T0 + ready_at, used=used)


def queued_vm(id, exam_id, requested_at, ready_at):
    return VmIn(id=id, exam_id=exam_id, requested_ms=T0 + requested_at, ready_ms=T0 + ready_at)


def replay(p, exams, *, config=CFG):
    """Issue every planned request at its time on the provider model; return
    {exam_id: VMs ready by its deadline} and the requests' times."""
    clock = VirtualClock(from_ms(p.now_ms))
    provider = FakeProvider(
        clock=clock,
        allocation_interval_s=config.allocation_interval_ms / 1000,
        requests_per_second=config.requests_per_second,
    )
    owner = {}
    times = []
    for request_ms, exam_id, _ready in p.start_requests():
        clock.advance_to(from_ms(request_ms))
        owner[provider.start()] = exam_id
        times.append(request_ms)
    on_time = {e.id: 0 for e in exams}
    for vm_id, exam_id in owner.items():
        e = next(x for x in exams if x.id == exam_id)
        if provider.ready_at(vm_id) <= from_ms(e.start_ms - config.ready_margin_ms):
            on_time[exam_id] += 1
    return on_time, times


def test_one_exam_is_one_run_ending_exactly_at_the_start():
    exams = [exam(1, 10 * H, 100)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    ep = p.exam(1)
    assert len(p.runs) == 1
    run = p.runs[0]
    assert (run.exam_id, run.count) == (1, 100)
    assert run.ready_ms(99) == T0 + 10 * H  # the last VM is ready exactly at the start
    assert run.slot_start_ms == T0 + 10 * H - 100 * IV  # and not a slot earlier than needed
    assert ep.expected_ready_at_start == 100 and ep.shortfall == 0
    assert ep.requesting_starts_ms == T0 + 10 * H - 100 * IV
    on_time, _ = replay(p, exams)
    assert on_time == {1: 100}
    # nothing is due yet; the first request is the next thing to do
    assert p.starts_due(T0) == []
    assert p.next_due_ms(T0) == run.first_request_ms


def test_requests_inside_a_run_go_out_early_but_the_first_at_its_slot():
    p = plan(exams=[exam(1, H, 3)], vms=[], now_ms=T0, config=CFG)
    run = p.runs[0]
    slot0 = run.slot_start_ms
    assert [run.request_ms(k) for k in range(3)] == [slot0, slot0 + IV - 1500, slot0 + 2 * IV - 1500]
    assert [run.ready_ms(k) for k in range(3)] == [slot0 + IV, slot0 + 2 * IV, slot0 + 3 * IV]


def test_ready_margin_moves_the_deadline():
    config = PlannerConfig(ready_margin_ms=60 * S)
    exams = [exam(1, H, 10)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=config)
    assert p.runs[0].end_ms == T0 + H - 60 * S
    assert replay(p, exams, config=config)[0] == {1: 10}


def test_equal_starts_are_packed_back_to_back_and_all_on_time():
    exams = [exam(1, 2 * H, 300), exam(2, 2 * H, 120)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    assert [(r.exam_id, r.count) for r in p.runs] == [(1, 300), (2, 120)]
    assert p.runs[0].end_ms == p.runs[1].slot_start_ms  # no gap, no overlap
    assert p.runs[1].end_ms == T0 + 2 * H
    assert p.runs[1].early_first  # it follows a busy allocator: may go out early too
    assert replay(p, exams)[0] == {1: 300, 2: 120}


def test_a_later_exam_pushes_an_overlapping_earlier_one_back():
    # B (12:30, 200 VMs = 20 min) overlaps A's natural run (12:00, 300 VMs = 30 min)
    exams = [exam(1, 12 * H, 300), exam(2, 12 * H + 10 * MIN, 200)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    runs = {r.exam_id: r for r in p.runs}
    assert runs[2].end_ms == T0 + 12 * H + 10 * MIN
    assert runs[1].end_ms == runs[2].slot_start_ms  # A ends where B begins: earlier than 12:00
    assert runs[1].end_ms < T0 + 12 * H
    assert replay(p, exams)[0] == {1: 300, 2: 200}


def test_a_gap_between_exams_stays_idle():
    exams = [exam(1, 2 * H, 10), exam(2, 5 * H, 10)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    assert [r.end_ms for r in p.runs] == [T0 + 2 * H, T0 + 5 * H]
    assert not p.runs[1].early_first


def test_infeasible_exam_gets_what_fits_and_late_vms_until_its_end():
    # 10 minutes to go: 100 VMs can be ready, 50 come late (before the end)
    exams = [exam(1, 10 * MIN, 150, end=40 * MIN)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    ep = p.exam(1)
    assert ep.expected_ready_at_start == 100
    assert ep.shortfall == 50
    assert ep.late_planned == 50
    on_time_run, late_run = p.runs
    assert on_time_run.slot_start_ms == T0 and on_time_run.count == 100
    assert late_run.late and late_run.slot_start_ms == T0 + 10 * MIN and late_run.count == 50
    assert p.starts_due(T0) == [1]  # start now
    assert replay(p, exams)[0] == {1: 100}


def test_late_vms_are_only_planned_while_they_are_ready_before_the_end():
    exams = [exam(1, 10 * MIN, 500, end=20 * MIN)]
    cfg = PlannerConfig(late_min_useful_ms=0)
    p = plan(exams=exams, vms=[], now_ms=T0, config=cfg)
    # 100 on time; from 10:00 to 20:00 99 more can be ready strictly before the end
    assert p.exam(1).shortfall == 400
    assert p.exam(1).late_planned == 99
    last = p.runs[-1]
    assert last.ready_ms(last.count - 1) < T0 + 20 * MIN


def test_late_vms_must_leave_the_student_the_minimum_useful_time():
    # VM_LATE_MIN_USEFUL_SECONDS = 600: ready by 10 minutes before the end
    exams = [exam(1, 10 * MIN, 500, end=30 * MIN)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    assert p.exam(1).late_planned == 100  # 10:00 .. 20:00
    assert p.exam(1).last_late_ready_ms == T0 + 20 * MIN
    # an exam ending 10 minutes after its start: none at all, and it says so
    p = plan(exams=[exam(1, 10 * MIN, 500, end=20 * MIN)], vms=[], now_ms=T0, config=CFG)
    assert p.exam(1).late_planned == 0 and len(p.runs) == 1
    assert p.exam(1).shortfall_note() == "no late VM can be provided before the exam ends"
    # a started exam's queued VM that would be ready in its last minutes is stopped
    now = T0 + 15 * MIN
    vms = [queued_vm(7, 1, now - S, now + 5 * S + 6 * MIN)]
    p = plan(exams=[exam(1, 10 * MIN, 1, end=25 * MIN)], vms=vms, now_ms=now, config=CFG)
    assert [s.vm_id for s in p.stops] == [7] and not p.runs


def test_late_vms_come_as_early_as_the_on_time_runs_allow():
    # exam 1 (10 min, 150) is short by 50; exam 2 (60 min, 300) is packed
    # as late as possible (30..60 min): the late VMs take 10..15 min at once
    exams = [exam(1, 10 * MIN, 150, end=2 * H), exam(2, 60 * MIN, 300)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    late = [r for r in p.runs if r.late]
    assert [(r.slot_start_ms - T0, r.count) for r in late] == [(10 * MIN, 50)]
    assert p.exam(2).shortfall == 0
    assert next(r for r in p.runs if r.exam_id == 2).end_ms == T0 + 60 * MIN


def test_earliest_exam_first_when_both_cannot_make_it():
    # capacity to the first deadline (10 min) is 100 VMs; to the second 150
    exams = [exam(1, 10 * MIN, 120), exam(2, 15 * MIN, 80)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    assert (p.exam(1).expected_ready_at_start, p.exam(1).shortfall) == (100, 20)
    assert (p.exam(2).expected_ready_at_start, p.exam(2).shortfall) == (50, 30)
    assert replay(p, exams)[0] == {1: 100, 2: 50}


def test_late_vms_never_take_a_slot_an_on_time_vm_needs():
    # exam 1 is short; exam 2 (later) has a run right after exam 1's start
    exams = [exam(1, 10 * MIN, 150, end=3 * H), exam(2, 40 * MIN, 100)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    assert p.exam(2).shortfall == 0
    assert replay(p, exams)[0] == {1: 100, 2: 100}
    busy = sorted((r.slot_start_ms, r.end_ms) for r in p.runs)
    for (_s1, e1), (s2, _e2) in pairwise(busy):
        assert e1 <= s2  # slots never overlap
    # exam 2 still gets its slots as late as possible
    assert next(r for r in p.runs if r.exam_id == 2).end_ms == T0 + 40 * MIN


def test_existing_ready_and_queued_vms_count_and_the_queue_delays_new_slots():
    now = T0 + 60 * MIN
    vms = [
        ready_vm(1, 1, 50 * MIN),
        ready_vm(2, 1, 55 * MIN),
        queued_vm(3, 1, 59 * MIN + 58 * S, 60 * MIN + 4 * S),  # allocating
        queued_vm(4, 2, 60 * MIN, 60 * MIN + 10 * S),  # waiting behind it
    ]
    # exam 1 needs 13 by 61:00: it has 3, and from 60:10 only 8 slots fit
    exams = [exam(1, 61 * MIN, 13), exam(2, 75 * MIN, 1)]
    p = plan(exams=exams, vms=vms, now_ms=now, config=CFG)
    assert p.allocator_free_ms == T0 + 60 * MIN + 10 * S
    ep = p.exam(1)
    run = p.runs[0]
    # as late as possible: the 8 slots end at the start, 2 s after the queue empties
    assert (run.exam_id, run.slot_start_ms, run.count) == (1, T0 + 61 * MIN - 8 * IV, 8)
    assert not run.early_first
    # earliest exam first: exam 2's fresh VM (ready at 60:10) goes to exam 1,
    # exam 2 gets a new one in good time for 75:00
    assert p.assigns == (Assign(vm_id=4, exam_id=1),)
    assert (ep.expected_ready_at_start, ep.new_on_time, ep.shortfall) == (12, 8, 1)
    assert (p.exam(2).expected_ready_at_start, p.exam(2).new_on_time) == (1, 1)
    assert p.stops == ()


def test_stopping_a_queued_vm_moves_the_ones_behind_it_forward():
    now = T0 + 60 * MIN
    vms = [
        # a stop of the VM being allocated is pending: it frees the allocator
        VmIn(id=1, exam_id=None, requested_ms=T0 + 59 * MIN + 58 * S, ready_ms=T0 + 60 * MIN + 4 * S, stopping=True),
        queued_vm(2, 2, 59 * MIN + 59 * S, 60 * MIN + 10 * S),  # waiting behind it, for exam 2
    ]
    p = plan(exams=[exam(2, 60 * MIN + 7 * S, 1)], vms=vms, now_ms=now, config=CFG)
    # exam 2's VM starts allocating at the stop (now): ready at 60:06, in time for 60:07
    assert [s.vm_id for s in p.stops] == [1]
    assert p.exam(2).expected_ready_at_start == 1 and p.exam(2).shortfall == 0
    assert p.allocator_free_ms == now + IV


def test_a_deleted_exams_allocating_vm_is_rebound_where_it_is_on_time():
    now = T0 + 60 * MIN
    vms = [
        queued_vm(1, 1, 59 * MIN + 58 * S, 60 * MIN + 4 * S),  # allocating, exam 1 (deleted)
        queued_vm(2, 1, 59 * MIN + 59 * S, 60 * MIN + 10 * S),  # waiting, exam 1 (deleted)
        queued_vm(3, 2, 60 * MIN, 60 * MIN + 16 * S),  # waiting, exam 2: too late for 60:07
    ]
    p = plan(exams=[exam(2, 60 * MIN + 7 * S, 1, end=60 * MIN + 10 * S)], vms=vms, now_ms=now, config=CFG)
    assert p.assigns == (Assign(vm_id=1, exam_id=2),)
    assert [s.vm_id for s in p.stops] == [2, 3]  # waiting ones, next in line first
    assert p.exam(2).expected_ready_at_start == 1


def test_fewer_students_stops_the_surplus_waiting_vms_first():
    now = T0 + 60 * MIN
    vms = [
        ready_vm(1, 1, 50 * MIN),
        ready_vm(2, 1, 55 * MIN),
        queued_vm(3, 1, 59 * MIN + 58 * S, 60 * MIN + 4 * S),  # allocating
        queued_vm(4, 1, 60 * MIN, 60 * MIN + 10 * S),  # waiting
    ]
    p = plan(exams=[exam(1, 65 * MIN, 1)], vms=vms, now_ms=now, config=CFG)
    assert [s.vm_id for s in p.stops] == [4, 3, 2]
    assert {s.reason for s in p.stops} == {STOP_SURPLUS}
    assert p.exam(1).expected_ready_at_start == 1
    assert p.runs == ()


def test_more_students_adds_a_run_behind_the_queue():
    now = T0 + 60 * MIN
    vms = [ready_vm(i, 1, 50 * MIN + i * IV) for i in range(10)]
    exams = [exam(1, 70 * MIN, 15)]
    p = plan(exams=exams, vms=vms, now_ms=now, config=CFG)
    assert p.exam(1).new_on_time == 5
    assert p.runs[0].end_ms == T0 + 70 * MIN
    assert p.stops == ()
    assert p.exam(1).expected_ready_at_start == 15


def test_deleted_exam_vms_are_stopped_when_nobody_can_use_them():
    now = T0 + 60 * MIN
    vms = [ready_vm(1, 7, 50 * MIN), queued_vm(2, 7, 59 * MIN, 61 * MIN)]
    p = plan(exams=[], vms=vms, now_ms=now, config=CFG)
    assert [(s.vm_id, s.reason) for s in p.stops] == [(2, STOP_SURPLUS), (1, STOP_SURPLUS)]
    assert p.assigns == ()


def test_used_vms_of_a_deleted_exam_are_stopped_never_rebound():
    now = T0 + 60 * MIN
    vms = [ready_vm(1, None, 50 * MIN, used=True)]
    p = plan(exams=[exam(2, 70 * MIN, 1)], vms=vms, now_ms=now, config=CFG)
    assert [(s.vm_id, s.reason) for s in p.stops] == [(1, STOP_ORPHAN)]
    assert p.assigns == ()
    assert p.exam(2).new_on_time == 1


def _shrunk_exam_a(now):
    """Exam A (12:00, 100 students) mid-way through its run at 11:55: 50 VMs
    ready, one allocating; it shrinks to 20, leaving 31 fresh VMs spare."""
    vms = [ready_vm(i, 1, 11 * H + 50 * MIN + (i + 1) * IV) for i in range(50)]
    vms.append(queued_vm(50, 1, 11 * H + 54 * MIN + 58 * S, 11 * H + 55 * MIN + 4 * S))
    return vms


def test_a_shrunk_exams_fresh_vms_are_rebound_to_an_exam_that_cannot_make_it_otherwise():
    now = T0 + 11 * H + 55 * MIN
    # exam B (12:10) needs 200: only 149 slots are left before it
    exams = [exam(1, 12 * H, 20), exam(2, 12 * H + 10 * MIN, 200)]
    p = plan(exams=exams, vms=_shrunk_exam_a(now), now_ms=now, config=CFG)
    assert len(p.assigns) == 31 and {a.exam_id for a in p.assigns} == {2}
    assert p.stops == ()  # nothing is stopped: every spare VM has a use
    assert (p.exam(2).rebound_in, p.exam(2).new_on_time) == (31, 149)
    assert (p.exam(2).expected_ready_at_start, p.exam(2).shortfall) == (180, 20)
    assert p.exam(1).expected_ready_at_start == 20


def test_a_shrunk_exams_fresh_vm_is_rebound_only_where_it_saves_an_allocation():
    now = T0 + 11 * H + 55 * MIN
    # exam B (12:15) needs 200: 199 slots are left; one spare VM makes it, and
    # the allocating one waits less for B than a new VM would: it is re-bound.
    # The 30 ready since before 11:55 would idle longer than new VMs: stopped.
    exams = [exam(1, 12 * H, 20), exam(2, 12 * H + 15 * MIN, 200)]
    p = plan(exams=exams, vms=_shrunk_exam_a(now), now_ms=now, config=CFG)
    assert p.assigns == (Assign(vm_id=50, exam_id=2),)
    assert len(p.stops) == 30 and {s.reason for s in p.stops} == {STOP_SURPLUS}
    assert (p.exam(2).expected_ready_at_start, p.exam(2).new_on_time) == (200, 199)


def test_surplus_vms_are_not_parked_for_days_just_to_save_an_allocation():
    now = T0 + 60 * MIN
    vms = [ready_vm(i, 1, 55 * MIN) for i in range(10)]
    exams = [exam(1, 70 * MIN, 0), exam(2, 48 * H, 10)]
    p = plan(exams=exams, vms=vms, now_ms=now, config=CFG)
    assert p.assigns == ()
    assert len(p.stops) == 10
    assert p.runs[0].end_ms == T0 + 48 * H


def test_an_earlier_exam_short_of_time_takes_a_later_exams_fresh_vms():
    # exam 2 (14:00) has 50 ready VMs; exam 1 is created at 12:55 for 13:00
    # with 80 students: 50 fit in 5 minutes, 30 come from exam 2 (earliest first)
    now = T0 + 12 * H + 55 * MIN
    vms = [ready_vm(i, 2, 12 * H + 50 * MIN + i * S) for i in range(50)]
    exams = [exam(1, 13 * H, 80), exam(2, 13 * H + 10 * MIN, 50)]
    p = plan(exams=exams, vms=vms, now_ms=now, config=CFG)
    assert p.exam(1).expected_ready_at_start == 80
    assert sum(1 for a in p.assigns if a.exam_id == 1) == 30
    # exam 2 makes up for them by its own start
    assert p.exam(2).expected_ready_at_start == 50
    assert p.exam(2).new_on_time == 30


def test_an_exam_moved_days_later_releases_its_vms_and_requests_again_later():
    now = T0 + 60 * MIN
    vms = [ready_vm(i, 1, 50 * MIN + i * IV) for i in range(20)]
    p = plan(exams=[exam(1, 3 * 24 * H, 20)], vms=vms, now_ms=now, config=CFG)
    assert {s.reason for s in p.stops} == {STOP_RELEASE}
    assert len(p.stops) == 20
    assert p.runs[0].count == 20 and p.runs[0].end_ms == T0 + 3 * 24 * H
    assert p.exam(1).expected_ready_at_start == 20


def test_an_exam_moved_a_little_later_keeps_its_vms():
    now = T0 + 60 * MIN
    vms = [ready_vm(i, 1, 50 * MIN + i * IV) for i in range(20)]
    p = plan(exams=[exam(1, 75 * MIN, 20)], vms=vms, now_ms=now, config=CFG)
    assert p.stops == () and p.runs == ()
    assert p.exam(1).expected_ready_at_start == 20


def test_releases_never_cost_an_exam_an_on_time_vm():
    # exam 1 moved far away, but the allocator is fully booked by exam 2 until
    # exam 1's start: re-requesting exam 1's VMs would not fit, so they stay
    now = T0
    vms = [ready_vm(i, 1, -10 * MIN + i * S) for i in range(10)]
    exams = [exam(1, 10 * H, 10), exam(2, 10 * H, 6000)]
    p = plan(exams=exams, vms=vms, now_ms=now, config=CFG)
    assert p.exam(1).expected_ready_at_start + p.exam(2).expected_ready_at_start == 6010
    assert not any(s.reason == STOP_RELEASE for s in p.stops)


def test_an_exam_moved_earlier_gets_what_fits_and_stops_useless_late_vms():
    now = T0 + 60 * MIN
    # its VMs are queued for 62:00..; the exam now starts at 61:00 and ends at 62:00
    vms = [queued_vm(1, 1, 59 * MIN, 62 * MIN + 30 * S)]
    p = plan(exams=[exam(1, 61 * MIN, 1, end=62 * MIN)], vms=vms, now_ms=now, config=CFG)
    assert [s.vm_id for s in p.stops] == [1]
    assert p.exam(1).shortfall == 1


def test_vms_of_ended_exams_are_stopped_earliest_end_first():
    now = T0 + 5 * H
    vms = [ready_vm(1, 1, H, used=True), ready_vm(2, 2, H, used=True), ready_vm(3, 1, H, used=True)]
    exams = [exam(1, 2 * H, 2, end=4 * H), exam(2, 2 * H, 1, end=3 * H)]
    p = plan(exams=exams, vms=vms, now_ms=now, config=CFG)
    assert [s.vm_id for s in p.stops] == [2, 1, 3]
    assert {s.reason for s in p.stops} == {STOP_ENDED}


def test_stops_that_protect_an_upcoming_start_go_ahead_of_plain_teardown():
    # exam 1 (ended at 10:00) still has 6 VMs to stop; exam 2 (10:05) was cut
    # to 1 student with 3 ready VMs; exam 3 was deleted (its used VM 20 and
    # fresh VM 21 are nobody's). The 2 surplus of exam 2 and the deleted
    # exam's VMs go first, the teardown after, earliest end first.
    now = T0 + 10 * H + 30 * S
    ended = [ready_vm(i, 1, 9 * H, used=True) for i in range(1, 7)]
    for_b = [ready_vm(10 + k, 2, 10 * H - k * IV) for k in range(3)]
    orphan = [ready_vm(20, 99, 9 * H, used=True), ready_vm(21, None, 9 * H)]
    exams = [exam(1, 9 * H, 6, end=10 * H), exam(2, 10 * H + 5 * MIN, 1)]
    p = plan(exams=exams, vms=ended + for_b + orphan, now_ms=now, config=CFG)
    order = [s.vm_id for s in p.stops]
    assert len(order) == 10  # no extra stop: 6 ended + 2 surplus + 2 orphans
    assert set(order[:4]) == {10, 11, 20, 21}  # the earliest ready (12) is kept
    assert order[4:] == [1, 2, 3, 4, 5, 6]
    # the deleted exam's VMs (protecting "now") before exam 2's surplus (10:05)
    assert set(order[:2]) == {20, 21}
    assert {s.reason for s in p.stops[:4]} == {STOP_SURPLUS, STOP_ORPHAN}
    assert p.exam(2).expected_ready_at_start == 1


def test_a_running_exams_surplus_stays_in_teardown_order():
    # a running exam's surplus protects no start: it waits behind an earlier end
    now = T0 + 10 * H + 30 * S
    vms = [ready_vm(1, 1, 9 * H, used=True), ready_vm(2, 2, 10 * H, used=True), ready_vm(3, 2, 10 * H - IV, used=True)]
    exams = [exam(1, 9 * H, 1, end=10 * H), exam(2, 10 * H, 1, end=11 * H)]
    p = plan(exams=exams, vms=vms, now_ms=now, config=CFG)
    assert [s.vm_id for s in p.stops] == [1, 2]


def test_a_started_exam_that_shrinks_stops_the_surplus_at_once():
    now = T0 + 2 * H + 10 * MIN
    vms = [ready_vm(i, 1, 2 * H - i * IV, used=True) for i in range(5)]
    p = plan(exams=[exam(1, 2 * H, 3, end=4 * H)], vms=vms, now_ms=now, config=CFG)
    assert len(p.stops) == 2 and {s.reason for s in p.stops} == {STOP_SURPLUS}
    assert p.exam(1).started


def test_a_started_exam_missing_vms_gets_late_ones_at_once():
    now = T0 + 2 * H + 10 * MIN
    vms = [ready_vm(1, 1, 2 * H, used=True)]
    p = plan(exams=[exam(1, 2 * H, 3, end=4 * H)], vms=vms, now_ms=now, config=CFG)
    assert p.runs[0].slot_start_ms == now and p.runs[0].count == 2 and p.runs[0].late
    assert p.starts_due(now) == [1]
    assert p.exam(1).expected_ready_at_start == 1 and p.exam(1).shortfall == 2


def test_vms_may_come_as_a_one_shot_iterable():
    # The planner reads the live VMs once (the scheduler could stream them):
    # a started exam's first request is learnt in the same pass.
    now = T0 + 2 * H + 10 * MIN
    vms = [ready_vm(1, 1, 2 * H, used=True), ready_vm(2, 1, 2 * H - IV, used=True), ready_vm(3, 2, 2 * H)]
    exams = [exam(1, 2 * H, 3, end=4 * H), exam(2, 5 * H, 20)]
    p = plan(exams=exams, vms=iter(vms), now_ms=now, config=CFG)
    assert p == plan(exams=exams, vms=vms, now_ms=now, config=CFG)
    assert p.exam(1).requesting_starts_ms == T0 + 2 * H - 2 * IV


def test_pending_stops_come_first():
    now = T0 + 5 * H
    vms = [ready_vm(1, 1, H, used=True), VmIn(id=2, exam_id=9, requested_ms=T0, ready_ms=T0 + IV, stopping=True)]
    p = plan(exams=[exam(1, 2 * H, 1, end=4 * H)], vms=vms, now_ms=now, config=CFG)
    assert [(s.vm_id, s.reason) for s in p.stops] == [(2, STOP_PENDING), (1, STOP_ENDED)]


def test_a_lost_start_is_planned_around_but_never_used_or_stopped():
    now = T0
    lost = VmIn(id=9, exam_id=1, requested_ms=T0, ready_ms=T0 + IV, unknown=True)
    p = plan(exams=[exam(1, 10 * MIN, 100)], vms=[lost], now_ms=now, config=CFG)
    assert p.allocator_free_ms == T0 + IV
    assert p.exam(1).expected_ready_at_start == 99  # one slot less: the lost VM may hold it
    assert p.stops == () and p.assigns == ()


def test_request_spacing_stays_under_the_call_rate():
    exams = [exam(i, H + i * 7 * S, 40) for i in range(1, 6)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    _on_time, times = replay(p, exams)
    for a, b in pairwise(times):
        assert b - a >= CFG.call_spacing_ms


def test_plan_size_grows_with_exams_not_students():
    exams = [exam(i, i * 24 * H, 2500) for i in range(1, 41)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    assert len(p.runs) == 40
    assert p.total_requests == 100_000
    assert all(e.shortfall == 0 for e in p.exams)


def test_dense_days_reach_back_across_every_future_exam():
    # dozens of 2,500-student exams a day: allocation reaches back days
    exams = [exam(i, 5 * 24 * H + 8 * H + (i % 24) * 20 * MIN, 2500) for i in range(1, 25)]
    p = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    assert all(e.shortfall == 0 for e in p.exams)
    first = min(r.slot_start_ms for r in p.runs)
    assert first < T0 + 2 * 24 * H  # 24 x 2,500 x 6 s = 100 h of allocation before day 5
    assert sum(r.count for r in p.runs) == 60_000
    starts = sorted((r.slot_start_ms, r.end_ms) for r in p.runs)
    assert all(e1 == s2 for (_s1, e1), (s2, _e2) in pairwise(starts))  # one dense block


def test_timeline_steps_from_existing_vms_through_the_runs():
    now = T0 + 60 * MIN
    vms = [ready_vm(1, 1, 50 * MIN), queued_vm(2, 1, 59 * MIN + 58 * S, 60 * MIN + 4 * S)]
    p = plan(exams=[exam(1, 70 * MIN, 12)], vms=vms, now_ms=now, config=CFG)
    points = timeline(p, 1, vms=[(v.id, v.exam_id, v.ready_ms) for v in vms])
    assert points[0] == (now, 1)
    assert points[1] == (T0 + 60 * MIN + 4 * S, 2)
    assert points[-1] == (T0 + 70 * MIN, 12)
    assert [n for _t, n in points] == sorted(n for _t, n in points)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allocation_interval_ms": 0},
        {"requests_per_second": 0},
        {"allocation_interval_ms": 100, "requests_per_second": 3},
        {"ready_margin_ms": -1},
    ],
)
def test_config_rejects_impossible_values(kwargs):
    with pytest.raises(ValueError):
        PlannerConfig(**kwargs)


def test_time_conversion_is_exact_to_the_millisecond():
    t = datetime(2030, 5, 1, 8, 0, 0, 123000, tzinfo=timezone.utc)
    assert from_ms(to_ms(t)) == t
    assert to_ms(t + timedelta(microseconds=1)) == to_ms(t) + 1  # never earlier than the instant
    with pytest.raises(ValueError):
        to_ms(datetime(2030, 5, 1))


def test_deadlines_round_down_and_now_rounds_up():
    t = datetime(2030, 5, 1, 10, 0, 0, 500, tzinfo=timezone.utc)  # 10:00:00.0005
    assert to_ms_floor(t) == to_ms(t) - 1 == to_ms(t.replace(microsecond=0))
    assert to_ms_floor(t.replace(microsecond=0)) == to_ms(t.replace(microsecond=0))
    # a plan for the rounded-down start has the last VM ready by the true start
    start = to_ms_floor(t)
    p = plan(exams=[ExamIn(1, start, start + H, 100)], vms=[], now_ms=start - 2 * H, config=CFG)
    assert p.exam(1).shortfall == 0 and from_ms(p.runs[-1].ready_ms(99)) <= t


def test_a_shortfall_note_promises_only_what_is_planned():
    # 10 slots before the start, an 11-minute exam: 10 late VMs are ready by
    # 10 minutes before its end, 30 cannot be provided
    p = plan(exams=[exam(1, 10 * MIN, 50, end=21 * MIN)], vms=[], now_ms=T0 + 9 * MIN, config=CFG)
    ep = p.exam(1)
    assert (ep.expected_ready_at_start, ep.shortfall, ep.late_planned) == (10, 40, 10)
    assert (
        ep.shortfall_note()
        == f"10 late VMs planned, the last ready at {from_ms(ep.last_late_ready_ms).isoformat(timespec='milliseconds').replace('+00:00', 'Z')}; 30 cannot be provided"
    )
    p = plan(exams=[exam(1, 10 * MIN, 50, end=10 * MIN + 5 * S)], vms=[], now_ms=T0 + 9 * MIN, config=CFG)
    assert p.exam(1).late_planned == 0
    assert p.exam(1).shortfall_note() == "no late VM can be provided before the exam ends"


def test_queue_ahead_keeps_two_minutes_of_a_run_waiting_at_no_cost():
    cfg = PlannerConfig(queue_ahead_ms=120 * S)
    exams = [exam(1, 2 * H, 100)]
    plain = plan(exams=exams, vms=[], now_ms=T0, config=CFG)
    ahead = plan(exams=exams, vms=[], now_ms=T0, config=cfg)
    run = ahead.runs[0]
    # the same slots (same ready times, same cost) ...
    assert [(r.slot_start_ms, r.count) for r in ahead.runs] == [(r.slot_start_ms, r.count) for r in plain.runs]
    first = run.slot_start_ms
    times = [t for t, _e, _r in ahead.start_requests()]
    # ... the first request at its slot, then the queue fills at the call rate
    # (one per 334 ms) up to 120 s ahead, then each request 120 s before its slot
    assert times[0] == first and times[1] == first + cfg.call_spacing_ms
    assert all(b - a >= cfg.call_spacing_ms for a, b in pairwise(times))
    assert all(run.slot_start_ms + k * IV - t <= 120 * S for k, t in enumerate(times))
    assert times[50] == run.slot_start_ms + 50 * IV - 120 * S
    # replayed through the provider model: every VM ready exactly at its slot's end
    assert replay(ahead, exams, config=cfg)[0] == {1: 100}
    clock = VirtualClock(from_ms(T0))
    provider = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3)
    ids = []
    for t, _e, _r in ahead.start_requests():
        clock.advance_to(from_ms(t))
        ids.append(provider.start())
    assert [to_ms(provider.ready_at(v)) for v in ids] == [run.ready_ms(k) for k in range(100)]


def test_queue_ahead_joins_a_busy_queue_from_now():
    cfg = PlannerConfig(queue_ahead_ms=120 * S)
    now = T0
    # 3 VMs already queued (ready at +6, +12, +18 s); the exam needs 10 more back to back
    vms = [queued_vm(i, 1, 0, (i + 1) * IV) for i in range(3)]
    p = plan(exams=[exam(1, 13 * IV, 13)], vms=vms, now_ms=now, config=cfg)
    times = [t for t, _e, _r in p.start_requests()]
    assert len(times) == 10 and times[0] == now and p.runs[0].early_first
    assert all(b - a == cfg.call_spacing_ms for a, b in pairwise(times))


def test_preview_is_pure_and_reports_who_is_affected():
    from vms.preview import ExamChange, exam_changes_impact, worsens

    exams = [exam(1, 30 * MIN, 100), exam(2, 35 * MIN, 100), exam(3, 3 * H, 10)]
    rows = exam_changes_impact(
        exams=exams, vms=[], now_ms=T0, config=CFG, changes=[ExamChange("update", 1, {"students": 280})]
    )
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {1, 2}
    assert by_id[2]["shortfall_before"] == 0 and by_id[2]["shortfall_after"] == 30 and worsens(rows)
    rows = exam_changes_impact(exams=exams, vms=[], now_ms=T0, config=CFG, changes=[ExamChange("delete", 3, {})])
    assert [r["id"] for r in rows] == [3] and rows[0]["deleted"] and not worsens(rows)
