"""The scheduler loop on a virtual clock and the fake provider.

Every outcome is judged from the recorded call log, replayed through the
provider model (``build_report`` -> ``replay_calls``, which also refuses a log
that broke the rate limit), never from the scheduler's own beliefs.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from exams.models import Exam
from tests.factories import make_exam
from tests.helpers import wait_until
from tests.vms.conftest import at, drive, make_scheduler
from vms.exceptions import ProviderError, RateLimitExceeded
from vms.models import VM, CallEndpoint, CallOutcome, ProviderCall, VMState
from vms.planner import PlannerConfig, to_ms
from vms.scheduler import Pacer, SchedulerLock
from vms.simulation import build_report

pytestmark = pytest.mark.django_db


def report(until):
    return build_report(allocation_interval_s=6, requests_per_second=3, until=until)


def ready_at_start(rep) -> dict[int, int]:
    return {e["id"]: e["ready_at_start"] for e in rep["exams"]}


def max_calls_per_second(endpoint: str) -> int:
    times = [
        to_ms(t)
        for t in ProviderCall.objects.filter(endpoint=endpoint, outcome="ok")
        .order_by("t", "id")
        .values_list("t", flat=True)
    ]
    worst, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1000:
            j += 1
        worst = max(worst, i - j + 1)
    return worst


def test_exactly_enough_vms_are_ready_at_each_start_and_all_are_stopped_after(vclock, fake_provider, scheduler_factory):
    make_exam(id=1, start=at(30), students=40, end=at(50))
    make_exam(id=2, start=at(30), students=25, end=at(40))  # same start
    make_exam(id=3, start=at(33), students=30, end=at(60))  # overlaps: pushes the others back
    scheduler = scheduler_factory()
    drive(scheduler, vclock, at(75))
    rep = report(vclock.now())
    assert ready_at_start(rep) == {1: 40, 2: 25, 3: 30}  # not one fewer, not one more
    assert rep["summary"]["never_stopped"] == 0
    assert fake_provider.snapshot()["ready"] == 0 and fake_provider.snapshot()["queue_length"] == 0
    assert ProviderCall.objects.filter(endpoint="start").count() == 95  # no VM allocated twice
    assert max_calls_per_second("start") <= 3 and max_calls_per_second("stop") <= 3
    assert not ProviderCall.objects.exclude(outcome="ok").exists()  # client-side pacing: never refused


def test_requests_go_out_as_late_as_the_allocation_rate_allows(vclock, scheduler_factory):
    make_exam(id=1, start=at(30), students=20)
    drive(scheduler_factory(), vclock, at(31))
    starts = list(ProviderCall.objects.filter(endpoint="start").order_by("t").values_list("t", flat=True))
    assert starts[0] == at(30) - timedelta(seconds=20 * 6)  # the first request 2 minutes before
    # and the last VM is ready exactly at the start: the replay agrees
    rep = report(vclock.now())
    assert ready_at_start(rep) == {1: 20}
    assert VM.objects.filter(ready_at=at(30)).count() == 1


def test_stops_begin_at_the_end_earliest_end_first_as_fast_as_the_rate_allows(vclock, scheduler_factory):
    make_exam(id=1, start=at(20), students=9, end=at(40))
    make_exam(id=2, start=at(20), students=6, end=at(30))
    drive(scheduler_factory(), vclock, at(45))
    stops = list(ProviderCall.objects.filter(endpoint="stop").order_by("t", "id").values_list("t", "exam_ref"))
    assert [e for _t, e in stops] == [2] * 6 + [1] * 9
    assert stops[0][0] == at(30)  # at the end, not a moment later
    assert stops[5][0] == at(30, 1)  # 6 stops: 3 now, 3 a second later
    assert stops[6][0] == at(40)
    assert max_calls_per_second("stop") == 3


def test_fewer_students_stops_the_surplus_at_once(vclock, scheduler_factory):
    exam = make_exam(id=1, start=at(30), students=60)
    scheduler = scheduler_factory()
    drive(scheduler, vclock, at(27))  # 30 of 60 ready
    exam.students = 10
    exam.save()
    drive(scheduler, vclock, at(45))
    rep = report(vclock.now())
    assert ready_at_start(rep) == {1: 10}
    first_stop = ProviderCall.objects.filter(endpoint="stop").order_by("t").first()
    assert first_stop.t == at(27)  # at once, not at the end
    assert ProviderCall.objects.filter(endpoint="start").count() < 60  # it stopped requesting more


def test_more_students_and_a_new_exam_replan_at_once(vclock, scheduler_factory):
    exam = make_exam(id=1, start=at(30), students=20)
    scheduler = scheduler_factory()
    drive(scheduler, vclock, at(20))
    exam.students = 50
    exam.save()
    make_exam(id=2, start=at(35), students=30)
    drive(scheduler, vclock, at(50))
    assert ready_at_start(report(vclock.now())) == {1: 50, 2: 30}


def test_a_deleted_exam_has_all_its_vms_stopped(vclock, fake_provider, scheduler_factory):
    exam = make_exam(id=1, start=at(30), students=40)
    scheduler = scheduler_factory()
    drive(scheduler, vclock, at(28))
    assert VM.objects.filter(exam_id=1).count() > 10
    exam.delete()
    drive(scheduler, vclock, at(30))
    assert fake_provider.snapshot()["ready"] == 0 and fake_provider.snapshot()["queue_length"] == 0
    assert not VM.objects.exclude(state__in=[VMState.STOPPED]).exists()
    assert set(ProviderCall.objects.filter(endpoint="stop").values_list("exam_ref", flat=True)) == {1}


def test_a_moved_exam_is_served_at_its_new_time(vclock, scheduler_factory):
    exam = make_exam(id=1, start=at(30), students=20)
    make_exam(id=2, start=at(40), students=10)
    scheduler = scheduler_factory()
    drive(scheduler, vclock, at(10))
    exam.start, exam.end = at(20), at(50)
    exam.save()
    drive(scheduler, vclock, at(60))
    assert ready_at_start(report(vclock.now())) == {1: 20, 2: 10}


def test_an_exam_changed_through_the_service_wakes_the_scheduler(
    vclock, scheduler_factory, django_capture_on_commit_callbacks
):
    from exams.services import exam_create

    scheduler = scheduler_factory(poll_db_ms=None)  # no table polling: only the signal
    scheduler.run_pass()
    with django_capture_on_commit_callbacks(execute=True):
        exam_create(name="Late", start=at(5), end=at(20), students=10)
    due = scheduler.run_pass()
    assert scheduler.plan.exam(Exam.objects.get().id) is not None
    assert due is not None


def test_rate_limited_and_failing_calls_are_retried_without_crashing(vclock, fake_provider, scheduler_factory):
    class Flaky:
        def __init__(self):
            self.calls = Counter()

        def start(self):
            self.calls["start"] += 1
            if self.calls["start"] % 4 == 0:
                raise RateLimitExceeded("busy", endpoint="start", retry_after=0.5)
            if self.calls["start"] % 7 == 0:
                raise ProviderError("HTTP 500 before anything happened", may_have_taken_effect=False)
            return fake_provider.start()

        def stop(self, vm_id):
            self.calls["stop"] += 1
            if self.calls["stop"] % 5 == 0:
                raise ProviderError("timeout")
            return fake_provider.stop(vm_id)

    make_exam(id=1, start=at(30), students=20, end=at(40))
    scheduler = scheduler_factory(provider=Flaky(), planner=PlannerConfig(ready_margin_ms=60_000))
    drive(scheduler, vclock, at(50))
    rep = report(vclock.now())
    assert ready_at_start(rep) == {1: 20}
    outcomes = Counter(ProviderCall.objects.values_list("endpoint", "outcome"))
    assert (
        outcomes[("start", "ok")] == 20 and outcomes[("start", "rate_limited")] > 0 and outcomes[("start", "error")] > 0
    )
    assert outcomes[("stop", "error")] > 0
    assert rep["summary"]["never_stopped"] == 0
    assert (
        VM.objects.filter(state=VMState.FAILED).count()
        == outcomes[("start", "rate_limited")] + outcomes[("start", "error")]
    )


def test_an_ambiguous_start_error_is_recorded_as_lost_and_planned_around(vclock, fake_provider, scheduler_factory):
    class TimesOutOnce:
        failed = False

        def start(self):
            if not self.failed:
                self.failed = True
                fake_provider.start()  # the provider acted, but the answer never came
                raise ProviderError("read timeout", may_have_taken_effect=True)
            return fake_provider.start()

        def stop(self, vm_id):
            return fake_provider.stop(vm_id)

    make_exam(id=1, start=at(10), students=10, end=at(20))
    scheduler = scheduler_factory(provider=TimesOutOnce(), planner=PlannerConfig(ready_margin_ms=30_000))
    drive(scheduler, vclock, at(25))
    assert VM.objects.filter(state=VMState.LOST).count() == 1
    assert ready_at_start(report(vclock.now())) == {1: 10}
    assert scheduler.stats.lost == 1


def test_restart_in_the_middle_neither_leaks_nor_allocates_twice(vclock, fake_provider):
    make_exam(id=1, start=at(30), students=50, end=at(45))
    make_exam(id=2, start=at(31), students=30, end=at(40))
    first = make_scheduler(vclock, fake_provider)
    drive(first, vclock, at(25))
    started_before = ProviderCall.objects.filter(endpoint="start").count()
    assert 0 < started_before < 80
    first.close()  # the process dies: the object is gone, the database stays
    second = make_scheduler(vclock, fake_provider)
    try:
        drive(second, vclock, at(41))  # exam 2 is over: its stops happen after the restart
        pending = VM.objects.exclude(state=VMState.STOPPED).count()
        assert pending > 0
        drive(second, vclock, at(60))
    finally:
        second.close()
    rep = report(vclock.now())
    assert ready_at_start(rep) == {1: 50, 2: 30}
    assert ProviderCall.objects.filter(endpoint="start", outcome="ok").count() == 80  # none twice
    snap = fake_provider.snapshot()
    assert snap["total"] == 80 and snap["stopped"] == 80  # none leaked


def test_restart_during_pending_stops_finishes_them(vclock, fake_provider):
    make_exam(id=1, start=at(10), students=12, end=at(20))
    first = make_scheduler(vclock, fake_provider)
    drive(first, vclock, at(20))  # the end: the first 3 stops went out
    assert 0 < VM.objects.filter(state=VMState.STOPPED).count() < 12
    # a crash after marking a stop and before making it
    VM.objects.filter(state=VMState.READY).update(state=VMState.STOPPING, stop_requested_at=at(20))
    first.close()
    second = make_scheduler(vclock, fake_provider)
    try:
        drive(second, vclock, at(25))
    finally:
        second.close()
    assert not VM.objects.exclude(state=VMState.STOPPED).exists()
    assert fake_provider.snapshot()["stopped"] == 12


class CrashInTheWindow(BaseException):
    """The process dies (kill -9) between the provider's answer and our record."""


def test_a_crash_between_start_and_its_record_loses_exactly_one_vm_and_says_so(vclock, fake_provider):
    class DiesAfterFifthStart:
        n = 0

        def start(self):
            self.n += 1
            vm = fake_provider.start()
            if self.n == 5:
                raise CrashInTheWindow()
            return vm

        def stop(self, vm_id):
            return fake_provider.stop(vm_id)

    make_exam(id=1, start=at(10), students=10, end=at(20))
    first = make_scheduler(vclock, DiesAfterFifthStart(), planner=PlannerConfig(ready_margin_ms=30_000))
    with pytest.raises(CrashInTheWindow):
        drive(first, vclock, at(25))
    first.close()
    assert VM.objects.filter(state=VMState.REQUESTING).count() == 1  # the intent, with no uuid
    second = make_scheduler(vclock, fake_provider, planner=PlannerConfig(ready_margin_ms=30_000))
    try:
        drive(second, vclock, at(25))
    finally:
        second.close()
    assert VM.objects.filter(state=VMState.LOST).count() == 1
    assert second.stats.lost == 1
    assert ready_at_start(report(vclock.now())) == {1: 10}  # the exam still gets its VMs
    snap = fake_provider.snapshot()
    assert snap["total"] == 11 and snap["stopped"] == 10  # the one unnamed VM is the documented window


def test_recovery_restores_a_start_whose_call_was_logged_but_not_applied(db):
    from vms import services

    exam = make_exam(id=1, start=at(10), students=1)
    vm = VM.objects.create(exam=exam, exam_ref=1, state=VMState.REQUESTING, requested_at=at(0), ready_at=at(0, 6))
    ProviderCall.objects.create(
        t=at(0), endpoint=CallEndpoint.START, vm=vm, vm_uuid="abc", exam_ref=1, outcome=CallOutcome.OK
    )
    rec = services.vms_recover(now=at(1))
    vm.refresh_from_db()
    assert (vm.state, vm.uuid, rec.restored, rec.lost) == (VMState.WAITING, "abc", 1, 0)


def test_a_scheduler_without_the_lock_does_nothing(vclock, fake_provider, scheduler_factory, db):
    from django.db import connection

    if connection.vendor == "postgresql":
        pytest.skip("one connection holds a session lock re-entrantly; see the postgres test")
    make_exam(id=1, start=at(1), students=5)
    active = scheduler_factory()
    idle = scheduler_factory()
    assert active.run_pass() is not None
    assert idle.run_pass() == to_ms(vclock.now()) + idle.config.lock_retry_ms
    drive(active, vclock, at(1))
    calls = ProviderCall.objects.count()
    idle.run_pass()
    assert ProviderCall.objects.count() == calls
    active.close()
    idle.run_pass()  # now it takes over
    assert idle.lock.held


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_advisory_lock_lets_only_one_scheduler_act(vclock, fake_provider):
    import psycopg2
    from django.db import connection

    make_exam(id=1, start=at(2), students=10)
    settings = connection.settings_dict
    other = psycopg2.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        password=settings["PASSWORD"] or None,
    )
    other.autocommit = True
    try:
        # another scheduler process holds the lock
        holder = SchedulerLock()
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [holder.key])
            assert cursor.fetchone()[0]
        scheduler = make_scheduler(vclock, fake_provider)
        drive(scheduler, vclock, at(2))
        assert ProviderCall.objects.count() == 0 and not scheduler.lock.held
        # it dies: its session ends, the lock with it (the server notices
        # the disconnect asynchronously: give it a moment of real time)
        other.close()
        assert wait_until(lambda: scheduler.lock.acquire()[0], timeout=5)
        drive(scheduler, vclock, at(5))
        assert scheduler.lock.held
        assert ProviderCall.objects.filter(endpoint="start").count() == 10
        scheduler.close()
    finally:
        if not other.closed:
            other.close()


def test_pacer_allows_three_calls_in_any_rolling_second():
    # the provider's window is (t - 1 s, t]
    pacer = Pacer(3)
    for t in (0, 0, 0):
        assert pacer.next_allowed_ms(t) == t
        pacer.record(t)
    assert pacer.available(999) == 0 and pacer.next_allowed_ms(500) == 1000
    assert pacer.available(1000) == 3  # the calls at 0 have left the window
    for t in (1000, 1400, 1700):
        pacer.record(t)
    assert pacer.available(1999) == 0 and pacer.next_allowed_ms(1999) == 2000
    assert pacer.available(2000) == 1


def test_one_pass_command_makes_the_due_calls(db, fresh_default_provider):
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    make_exam(
        name="Now", start=timezone.now() + timedelta(seconds=3), end=timezone.now() + timedelta(hours=1), students=1
    )
    out = StringIO()
    call_command("schedule_vms", "--once", stdout=out)
    assert "1 starts" in out.getvalue()
    assert VM.objects.filter(state=VMState.WAITING).count() == 1


def test_a_planned_shortfall_and_a_short_start_are_logged_as_warnings(vclock, scheduler_factory, caplog):
    # at 06:00, 10 slots before 06:01: 30 students cannot all be ready
    make_exam(id=1, start=at(1), students=30, end=at(60))
    s = scheduler_factory()
    with caplog.at_level("WARNING", logger="vms.scheduler"):
        drive(s, vclock, at(2))
    texts = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    risk = [t for t in texts if "exam 1 at risk: 10 of 30" in t]
    short = [t for t in texts if "exam 1 started short: 10 of 30" in t]
    assert len(risk) == 1 and "20 late VMs planned, the last ready at" in risk[0]
    assert len(short) == 1  # once, not at every pass
    assert ready_at_start(report(at(2)))[1] == 10


def _ghost(i: int, *, state=VMState.STOPPING, exam_ref=None, ready=None) -> VM:
    """A VM on record whose uuid the provider does not know."""
    return VM.objects.create(
        uuid=f"ghost-{i}", exam=None, exam_ref=exam_ref, state=state, requested_at=at(-10), ready_at=ready or at(-9)
    )


def test_stops_answered_404_count_toward_the_rate_limit_and_mark_the_vm_gone(vclock, fake_provider, scheduler_factory):
    # Live: after three 404 stops in one second a fourth went out at once and
    # got a 429. The provider counts a 404 stop; so must the pacer.
    ghosts = [_ghost(i) for i in range(7)]
    s = scheduler_factory()
    drive(s, vclock, at(1))
    stops = list(ProviderCall.objects.filter(endpoint="stop").order_by("t", "id").values_list("t", "outcome"))
    assert [o for _t, o in stops] == ["error"] * 7  # all 404, none refused
    assert max_calls_per_second("stop") <= 3
    times = [to_ms(t) for t, _o in stops]
    assert all(times[k] - times[k - 3] >= 1000 for k in range(3, 7))
    assert s.stats.rate_limited == 0
    assert set(VM.objects.filter(pk__in=[g.pk for g in ghosts]).values_list("state", flat=True)) == {VMState.GONE}


class _Outage:
    """The fake provider behind a connection that is refused from ``down``
    to ``up`` (virtual time): those calls never reach it."""

    def __init__(self, provider, clock, down, up):
        self.provider, self.clock, self.down, self.up = provider, clock, down, up
        self.refused = 0
        self.tries: list[int] = []

    def _check(self, endpoint):
        if self.down <= self.clock.now() < self.up:
            self.refused += 1
            self.tries.append(to_ms(self.clock.now()))
            raise ProviderError(f"{endpoint}: connection refused", may_have_taken_effect=False, unreachable=True)

    def start(self):
        self._check("start")
        return self.provider.start()

    def stop(self, vm_id):
        self._check("stop")
        return self.provider.stop(vm_id)


def test_a_refused_connection_is_retried_within_a_second_and_logged_once(
    vclock, fake_provider, scheduler_factory, caplog
):
    # requests run 06:20..06:30; the provider is unreachable 06:25:00-06:26:00
    make_exam(id=1, start=at(30), students=100, end=at(40))
    down, up = at(25), at(26)
    provider = _Outage(fake_provider, vclock, down, up)
    s = scheduler_factory(provider=provider)
    with caplog.at_level("INFO", logger="vms.scheduler"):
        drive(s, vclock, at(45))
    starts = [to_ms(t) for t in ProviderCall.objects.filter(endpoint="start", outcome="ok").values_list("t", flat=True)]
    resumed = min(t for t in starts if t >= to_ms(down))
    # retried at the planned slots (at most once a second), never held back
    # by a back-off grown to 16 s: requests resume in the first slot after
    assert 6 <= provider.refused <= 62
    # consecutive pairs: the shifted copy is one element shorter
    gaps = [b - a for a, b in zip(provider.tries, provider.tries[1:], strict=False)]
    assert max(gaps) <= 6_000 and min(gaps) >= 1_000
    assert resumed - to_ms(up) <= 6_000
    # a 60 s outage costs the 10 slots it lasted, not more
    assert ready_at_start(report(vclock.now()))[1] >= 90
    assert VM.objects.filter(state=VMState.LOST).count() == 0  # refused: certainly no VM
    msgs = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len([m for lvl, m in msgs if lvl == "WARNING" and "unreachable (start)" in m]) == 1
    assert len([m for lvl, m in msgs if lvl == "INFO" and "reachable again (start)" in m]) == 1
