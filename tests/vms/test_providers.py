"""The provider model as FakeProvider implements it (and replay_calls re-runs it)."""

from __future__ import annotations

import copy
import random
import threading
from datetime import datetime, timedelta, timezone

import pytest

from vms.clock import SystemClock, VirtualClock
from vms.exceptions import ProviderError, RateLimitExceeded, UnknownVM
from vms.providers.fake import FakeProvider
from vms.providers.http import HttpProvider
from vms.providers.protocol import CloudProvider
from vms.providers.replay import replay_calls
from vms.providers.selection import provider_from_settings

T0 = datetime(2030, 5, 1, 9, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return VirtualClock(T0)


@pytest.fixture
def fake(clock):
    return FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3)


def call_at(clock, seconds, fn, *args):
    clock.advance_to(at(seconds))
    return fn(*args)


# --- the brief's example ------------------------------------------------------


@pytest.mark.parametrize(
    "call_times",
    [
        [i // 3 for i in range(27)],  # bursts of three at 0 s, 1 s, ... 8 s
        [i / 3 for i in range(27)],  # evenly, one every third of a second
    ],
    ids=["bursts", "even"],
)
def test_briefs_example_27_calls_over_9_seconds(clock, fake, call_times):
    for t in call_times:
        call_at(clock, t, fake.start)
    assert fake.ready_count(at(60)) == 10
    assert fake.ready_count(at(120)) == 20
    assert fake.ready_count(at(174)) == 27
    # one every 6 s: the 10th exactly at 1 min, the last at 2 min 42 s
    assert fake.ready_count(at(59.999)) == 9
    assert fake.ready_count(at(161.999)) == 26
    assert fake.allocator_free_at() == at(162)
    # and the same when the clock really gets there
    clock.advance_to(at(60))
    assert fake.ready_count() == 10
    clock.advance_to(at(174))
    assert fake.ready_count() == 27
    assert fake.snapshot()["ready"] == 27


def test_settings_give_the_defaults(clock, settings):
    settings.VM_ALLOCATION_INTERVAL_SECONDS = 10
    settings.VM_REQUESTS_PER_SECOND = 5
    provider = FakeProvider(clock=clock)
    assert provider.allocation_interval_s == 10
    assert provider.requests_per_second == 5
    ids = [provider.start() for _ in range(5)]
    with pytest.raises(RateLimitExceeded):
        provider.start()
    assert provider.ready_at(ids[0]) == at(10)


# --- allocation queue ------------------------------------------------------------


def test_vm_requested_on_an_idle_provider_is_ready_one_interval_later(clock, fake):
    first = call_at(clock, 0, fake.start)
    later = call_at(clock, 100, fake.start)
    assert fake.ready_at(first) == at(6)
    assert fake.ready_at(later) == at(106)


def test_fifo_queue_allocates_one_vm_at_a_time(clock, fake):
    a = call_at(clock, 0, fake.start)
    b = call_at(clock, 0, fake.start)
    c = call_at(clock, 10, fake.start)  # A ready at 6, B at 12: C starts at 12
    assert [fake.ready_at(v) for v in (a, b, c)] == [at(6), at(12), at(18)]


def test_states_over_time(clock, fake):
    a = call_at(clock, 0, fake.start)
    b = call_at(clock, 0, fake.start)
    assert fake.vm_state(a) == "allocating"
    assert fake.vm_state(b) == "waiting"
    assert fake.vm_state(b, at(5.999)) == "waiting"
    assert fake.vm_state(b, at(6)) == "allocating"
    assert fake.vm_state(b, at(12)) == "ready"
    clock.advance_to(at(7))
    assert (fake.vm_state(a), fake.vm_state(b)) == ("ready", "allocating")
    # the past stays answerable
    assert fake.vm_state(a, at(3)) == "allocating"
    assert fake.vm_state(b, at(3)) == "waiting"
    call_at(clock, 20, fake.stop, a)
    assert fake.vm_state(a) == "stopped"
    assert fake.vm_state(a, at(19)) == "ready"
    with pytest.raises(ValueError, match="only requested"):
        fake.vm_state(a, at(-1))


# --- stop semantics ----------------------------------------------------------------


def test_stop_of_a_waiting_vm_removes_it_and_later_vms_move_up(clock, fake):
    a, b, c = (call_at(clock, 0, fake.start) for _ in range(3))
    d = call_at(clock, 1, fake.start)
    assert [fake.ready_at(v) for v in (a, b, c, d)] == [at(6), at(12), at(18), at(24)]
    call_at(clock, 2, fake.stop, b)
    assert fake.vm_state(b) == "stopped"
    assert fake.ready_at(b) is None
    assert fake.allocation_started_at(b) is None  # never allocated
    assert [fake.ready_at(v) for v in (a, c, d)] == [at(6), at(12), at(18)]
    clock.advance_to(at(18))
    assert fake.ready_count() == 3


def test_stop_of_the_vm_being_allocated_frees_the_allocator_at_once(clock, fake):
    a = call_at(clock, 0, fake.start)
    b = call_at(clock, 0, fake.start)
    call_at(clock, 2, fake.stop, a)
    assert fake.ready_at(a) is None
    assert fake.allocation_started_at(a) == at(0)
    assert fake.vm_state(b) == "allocating"
    assert fake.allocation_started_at(b) == at(2)
    assert fake.ready_at(b) == at(8)


def test_stop_of_the_allocating_vm_with_an_empty_queue_leaves_the_allocator_idle(clock, fake):
    a = call_at(clock, 0, fake.start)
    call_at(clock, 3, fake.stop, a)
    b = call_at(clock, 4, fake.start)
    assert fake.ready_at(b) == at(10)


def test_stop_of_a_ready_vm_releases_it(clock, fake):
    a = call_at(clock, 0, fake.start)
    b = call_at(clock, 0, fake.start)
    clock.advance_to(at(30))
    assert fake.ready_count() == 2
    fake.stop(a)
    assert fake.ready_count() == 1
    assert fake.ready_at(a) == at(6)  # it was ready; stopping does not rewrite history
    assert fake.ready_count(at(29)) == 2
    assert fake.ready_count(at(30)) == 1
    assert fake.vm_state(b) == "ready"


def test_stop_at_the_instant_a_vm_becomes_ready(clock, fake):
    a = call_at(clock, 0, fake.start)
    call_at(clock, 6, fake.stop, a)
    assert fake.ready_at(a) == at(6)
    assert fake.ready_count() == 0
    assert fake.ready_count(at(5.9)) == 0
    assert fake.snapshot()["stopped"] == 1


def test_stop_of_an_unknown_vm_raises_and_a_second_stop_is_harmless(clock, fake):
    with pytest.raises(UnknownVM) as excinfo:
        fake.stop("no-such-vm")
    assert excinfo.value.vm_id == "no-such-vm"
    assert isinstance(excinfo.value, ProviderError)
    assert excinfo.value.may_have_taken_effect is False

    a = call_at(clock, 1.5, fake.start)
    call_at(clock, 10, fake.stop, a)
    call_at(clock, 11, fake.stop, a)  # idempotent
    assert fake.snapshot()["stopped"] == 1
    assert fake.vm_state(a, at(10.5)) == "stopped"
    with pytest.raises(UnknownVM):
        fake.ready_at("no-such-vm")


# --- rate limits ---------------------------------------------------------------------


def test_at_most_three_calls_in_any_rolling_second(clock, fake):
    for t in (0.5, 0.6, 0.7):
        call_at(clock, t, fake.start)
    clock.advance_to(at(1.2))  # window (0.2, 1.2] holds three calls
    with pytest.raises(RateLimitExceeded) as excinfo:
        fake.start()
    assert excinfo.value.endpoint == "start"
    assert excinfo.value.retry_after == pytest.approx(0.3)
    clock.advance_to(at(1.5))  # the call at 0.5 s is out of (0.5, 1.5]
    fake.start()
    assert fake.snapshot()["total"] == 4


def test_a_refused_call_has_no_effect_and_does_not_count(clock, fake):
    for _ in range(3):
        fake.start()
    before = fake.snapshot()
    for t in (0.1, 0.5, 0.9, 0.999999):
        with pytest.raises(RateLimitExceeded):
            call_at(clock, t, fake.start)
    assert fake.snapshot()["total"] == before["total"] == 3
    assert fake.snapshot()["queue_length"] == before["queue_length"]
    clock.advance_to(at(1))  # the refused calls did not push the window on
    for _ in range(3):
        fake.start()
    assert fake.snapshot()["total"] == 6


def test_refused_stop_leaves_the_vm_alone(clock, fake):
    vms = [fake.start() for _ in range(3)]
    clock.advance_to(at(20))
    for vm in vms:
        fake.stop(vm)
    victim = call_at(clock, 20.5, fake.start)
    with pytest.raises(RateLimitExceeded) as excinfo:
        fake.stop(victim)
    assert excinfo.value.endpoint == "stop"
    assert fake.vm_state(victim) == "allocating"
    assert fake.ready_at(victim) == at(26.5)


def test_start_and_stop_have_separate_windows(clock, fake):
    vms = [fake.start() for _ in range(3)]
    for vm in vms:
        fake.stop(vm)
    with pytest.raises(RateLimitExceeded):
        fake.start()
    with pytest.raises(RateLimitExceeded):
        fake.stop(vms[0])


def test_stop_of_unknown_or_stopped_vm_uses_a_slot(clock, fake):
    vm = fake.start()
    fake.stop(vm)
    fake.stop(vm)
    with pytest.raises(UnknownVM):
        fake.stop("nope")
    with pytest.raises(RateLimitExceeded):
        fake.stop(vm)


def test_bad_settings_are_refused(clock):
    with pytest.raises(ValueError, match="requests_per_second"):
        FakeProvider(clock=clock, requests_per_second=0)
    with pytest.raises(ValueError, match="allocation_interval_s"):
        FakeProvider(clock=clock, allocation_interval_s=0)


# --- ids, snapshot, listing -------------------------------------------------------------


def test_ids_are_unique_uuids_unless_given(clock, fake):
    import uuid

    ids = set()
    for i in range(30):
        clock.advance_to(at(i))
        ids.add(fake.start())
    assert len(ids) == 30
    assert all(str(uuid.UUID(v)) == v for v in ids)
    clock.advance_to(at(100))
    assert fake.start_with_id("vm-chosen") == "vm-chosen"
    with pytest.raises(ValueError, match="already taken"):
        fake.start_with_id("vm-chosen")


def test_snapshot_and_listing(clock, fake):
    a, b, c = (fake.start() for _ in range(3))
    clock.advance_to(at(7))
    fake.stop(c)
    snap = fake.snapshot()
    assert snap == {
        "now": at(7).isoformat(),
        "allocation_interval_s": 6.0,
        "requests_per_second": 3,
        "total": 3,
        "waiting": 0,
        "allocating": 1,
        "ready": 1,
        "stopped": 1,
        "queue_length": 1,
        "allocator_free_at": at(12).isoformat(),
    }
    listing = {vm["id"]: vm for vm in fake.vms()}
    assert listing[a]["state"] == "ready" and listing[a]["ready_at"] == at(6).isoformat()
    assert listing[b]["state"] == "allocating" and listing[b]["ready_at"] == at(12).isoformat()
    assert listing[c]["state"] == "stopped" and listing[c]["ready_at"] is None
    assert listing[c]["requested_at"] == at(0).isoformat()


def test_record_calls_logs_every_call_with_its_outcome(clock):
    fake = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=1, record_calls=True)
    vm = fake.start()
    with pytest.raises(RateLimitExceeded):
        fake.start()
    fake.stop(vm)
    assert [(c["endpoint"], c["vm"], c["outcome"]) for c in fake.calls] == [
        ("start", vm, "ok"),
        ("start", None, "rate_limited"),
        ("stop", vm, "ok"),
    ]


def test_the_fake_never_goes_back_in_time():
    class JumpyClock:
        def __init__(self):
            self.value = at(100)

        def now(self):
            return self.value

        def sleep(self, seconds):
            pass

    clock = JumpyClock()
    fake = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3)
    fake.start()
    clock.value = at(50)  # e.g. the system clock stepped back
    vm = fake.start()
    assert fake.ready_at(vm) == at(112)


# --- against an independent reference ------------------------------------------------------


class ReferenceModel:
    """The provider model as a plain discrete-event simulation (lists, O(n) steps)."""

    def __init__(self, interval: float):
        self.interval = interval
        self.queue: list[str] = []
        self.current: tuple[str, float] | None = None
        self.free_since = float("-inf")
        self.vms: dict[str, dict] = {}

    def run_until(self, t: float) -> None:
        while True:
            if self.current is None and self.queue:
                vm = self.queue.pop(0)
                start = max(self.vms[vm]["requested"], self.free_since)
                self.current = (vm, start)
                self.vms[vm]["alloc"] = start
            if self.current is None:
                return
            vm, start = self.current
            if start + self.interval > t:
                return
            self.vms[vm]["ready"] = start + self.interval
            self.free_since = start + self.interval
            self.current = None

    def start(self, t: float, vm: str) -> None:
        self.run_until(t)
        self.vms[vm] = {"requested": t, "alloc": None, "ready": None, "stopped": None}
        self.queue.append(vm)

    def stop(self, t: float, vm: str) -> None:
        self.run_until(t)
        info = self.vms[vm]
        if info["stopped"] is not None:
            return
        if vm in self.queue:
            self.queue.remove(vm)
        elif self.current and self.current[0] == vm:
            self.current = None
            self.free_since = t
        info["stopped"] = t

    def finish(self) -> None:
        self.run_until(float("inf"))

    def ready_count(self, t: float) -> int:
        return sum(
            1
            for v in self.vms.values()
            if v["ready"] is not None and v["ready"] <= t and (v["stopped"] is None or v["stopped"] > t)
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_a_reference_simulation_on_random_calls(seed):
    """Thousands of random starts and stops (beyond the tree's first capacity), then every VM's times,
    states and the ready counts at many instants agree with a naive simulation of the model."""
    rng = random.Random(seed)
    clock = VirtualClock(T0)
    fake = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3)
    ref = ReferenceModel(6.0)
    t = 0.0
    live: list[str] = []
    checkpoints = []
    for step in range(3000):
        # bursts (queue grows), pauses (queue drains), and everything between
        t += rng.choice([0.0, 0.1, 0.34, 1.0, 3.0, 6.0, 7.5, 40.0])
        t = round(t, 6)
        clock.advance_to(at(t))
        if live and rng.random() < 0.45:
            vm = rng.choice(live)
            try:
                fake.stop(vm)
            except RateLimitExceeded:
                continue
            ref.stop(t, vm)
            if rng.random() < 0.8:
                live.remove(vm)
        else:
            try:
                vm = fake.start()
            except RateLimitExceeded:
                continue
            ref.start(t, vm)
            live.append(vm)
        if step % 97 == 0:
            # a projection made now must hold for the future as long as no call changes it
            future = t + rng.choice([0, 5, 30, 300])
            projection = copy.deepcopy(ref)
            projection.run_until(future)
            checkpoints.append((fake.ready_count(at(future)), projection.ready_count(future)))
            probe = rng.choice(live) if live else None
            if probe is not None:
                projection.finish()
                expected = projection.vms[probe]["ready"]
                assert fake.ready_at(probe) == (None if expected is None else at(expected))
    ref.finish()
    assert len(ref.vms) > 1500
    for vm, info in ref.vms.items():
        expected_ready = None if info["ready"] is None else at(info["ready"])
        assert fake.ready_at(vm) == expected_ready, vm
        expected_alloc = None if info["alloc"] is None else at(info["alloc"])
        assert fake.allocation_started_at(vm) == expected_alloc, vm
    for _ in range(300):
        x = round(rng.uniform(0, t + 600), 3)
        assert fake.ready_count(at(x)) == ref.ready_count(x), x
    for vm in rng.sample(sorted(ref.vms), 200):
        info = ref.vms[vm]
        x = round(rng.uniform(info["requested"], t + 100), 3)
        if info["stopped"] is not None and x >= info["stopped"]:
            expected = "stopped"
        elif info["ready"] is not None and x >= info["ready"]:
            expected = "ready"
        elif info["alloc"] is not None and x >= info["alloc"]:
            expected = "allocating"
        else:
            expected = "waiting"
        assert fake.vm_state(vm, at(x)) == expected
    # projections made mid-run ("how many ready at this later time if no
    # further call comes") agree too
    assert len(checkpoints) > 20
    for projected, expected in checkpoints:
        assert projected == expected


def test_is_thread_safe():
    clock = VirtualClock(T0)
    fake = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=10**9)
    started: list[str] = []
    lock = threading.Lock()

    def worker():
        mine = [fake.start() for _ in range(300)]
        for vm in mine[::2]:
            fake.stop(vm)
        with lock:
            started.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    snap = fake.snapshot()
    assert len(set(started)) == snap["total"] == 2400
    assert snap["stopped"] == 1200
    assert snap["queue_length"] + snap["ready"] == 1200
    clock.advance_to(at(6 * 1200))
    assert fake.ready_count() == 1200


# --- replay_calls --------------------------------------------------------------------------


def test_replay_of_the_briefs_example():
    calls = [(at(i / 3), "start", f"vm-{i}", "ok") for i in range(27)]
    result = replay_calls(calls)
    assert len(result) == 27
    ready = sorted(r["ready_at"] for r in result.values())
    assert sum(1 for r in ready if r <= at(60)) == 10
    assert sum(1 for r in ready if r <= at(120)) == 20
    assert max(ready) <= at(174)
    assert result["vm-0"] == {
        "requested_at": at(0),
        "allocation_started_at": at(0),
        "ready_at": at(6),
        "stopped_at": None,
    }


def test_replay_reads_report_calls_and_skips_what_had_no_effect():
    calls = [
        {"t": at(0).isoformat(), "endpoint": "start", "vm": "a", "exam": 1, "outcome": "ok"},
        {"t": at(0).isoformat(), "endpoint": "start", "vm": "x", "exam": 1, "outcome": "error"},
        {"t": at(0.1).isoformat(), "endpoint": "start", "vm": "b", "exam": 1, "outcome": "ok"},
        {"t": at(0.2).isoformat(), "endpoint": "start", "vm": "", "exam": 1, "outcome": "rate_limited"},
        {"t": at(1).isoformat(), "endpoint": "assign", "vm": "b", "exam": 2},
        {"t": "2030-05-01T09:00:02.000Z", "endpoint": "stop", "vm": "a", "exam": 1, "outcome": "ok"},
        {"t": at(3).isoformat(), "endpoint": "stop", "vm": "b", "exam": 2, "outcome": "rate_limited"},
    ]
    result = replay_calls(calls)
    assert set(result) == {"a", "b"}
    assert result["a"]["ready_at"] is None
    assert result["a"]["stopped_at"] == at(2)
    assert result["b"]["allocation_started_at"] == at(2)
    assert result["b"]["ready_at"] == at(8)
    assert result["b"]["stopped_at"] is None


def test_replay_uses_the_given_provider_settings():
    calls = [(at(0), "start", "a", "ok"), (at(0), "start", "b", "ok")]
    result = replay_calls(calls, allocation_interval_s=10)
    assert result["b"]["ready_at"] == at(20)


def test_replay_refuses_logs_the_provider_could_not_have_produced():
    four = [(at(0.1 * i), "start", f"v{i}", "ok") for i in range(4)]
    with pytest.raises(ValueError, match="call 3 .*would refuse"):
        replay_calls(four)
    assert len(replay_calls(four, requests_per_second=4)) == 4
    assert len(replay_calls(four, strict=False)) == 4
    with pytest.raises(ValueError, match="never started"):
        replay_calls([(at(0), "stop", "ghost", "ok")])
    with pytest.raises(ValueError, match="already taken"):
        replay_calls([(at(0), "start", "a", "ok"), (at(1), "start", "a", "ok")])
    with pytest.raises(ValueError, match="earlier than the call before"):
        replay_calls([(at(5), "start", "a", "ok"), (at(1), "start", "b", "ok")])
    with pytest.raises(ValueError, match="timezone-aware"):
        replay_calls([(datetime(2030, 1, 1), "start", "a", "ok")])
    assert replay_calls([]) == {}


def test_replay_agrees_with_the_fake_that_produced_the_log():
    rng = random.Random(7)
    clock = VirtualClock(T0)
    fake = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3, record_calls=True)
    live: list[str] = []
    for _ in range(800):
        clock.sleep(rng.choice([0.0, 0.2, 1.0, 5.0, 13.0]))
        try:
            if live and rng.random() < 0.4:
                fake.stop(live.pop(rng.randrange(len(live))))
            else:
                live.append(fake.start())
        except RateLimitExceeded:
            pass
    assert any(c["outcome"] == "rate_limited" for c in fake.calls)
    result = replay_calls(fake.calls)
    assert set(result) == {c["vm"] for c in fake.calls if c["endpoint"] == "start" and c["outcome"] == "ok"}
    for vm, times in result.items():
        assert times["ready_at"] == fake.ready_at(vm)
        assert times["allocation_started_at"] == fake.allocation_started_at(vm)


class PublicOnly:
    """A FakeProvider seen only through its public names: touching a private one fails the test."""

    def __init__(self, fake: FakeProvider):
        object.__setattr__(self, "_fake", fake)
        object.__setattr__(self, "used", set())

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AssertionError(f"replay reached into the fake's private {name!r}")
        self.used.add(name)
        return getattr(self._fake, name)

    def __setattr__(self, name, value):
        raise AssertionError(f"replay set {name!r} on the fake")


def test_replay_drives_the_fake_through_its_public_interface_only(monkeypatch):
    import vms.providers.replay as replay_module

    built: list[PublicOnly] = []

    def public_fake(**kwargs):
        built.append(PublicOnly(FakeProvider(**kwargs)))
        return built[-1]

    monkeypatch.setattr(replay_module, "FakeProvider", public_fake)
    calls = [
        (at(0), "start", "a", "ok"),
        (at(0.5), "start", "b", "ok"),
        (at(1), "assign", "a", "ok"),
        (at(2), "stop", "a", "ok"),
        (at(3), "stop", "a", "ok"),  # idempotent
    ]
    result = replay_calls(calls)
    assert len(built) == 1
    assert built[0].used == {"start_with_id", "stop", "timeline"}
    assert result["a"] == {"requested_at": at(0), "allocation_started_at": at(0), "ready_at": None, "stopped_at": at(2)}
    assert result["b"]["allocation_started_at"] == at(2) and result["b"]["ready_at"] == at(8)
    # the refusals are found through the public interface too
    with pytest.raises(ValueError, match="call 3 .*would refuse"):
        replay_calls([(at(0.1 * i), "start", f"v{i}", "ok") for i in range(4)])
    with pytest.raises(ValueError, match="never started"):
        replay_calls([(at(0), "stop", "ghost", "ok")])


def test_replay_without_strict_ignores_what_the_provider_would_refuse():
    calls = [
        (at(0), "start", "a", "ok"),
        (at(0), "start", "b", "ok"),
        (at(0), "start", "c", "ok"),
        (at(0), "start", "d", "ok"),  # a fourth start in one second: not judged
        (at(1), "stop", "ghost", "ok"),  # never started: ignored
        (at(2), "start", "a", "ok"),  # id reused: ignored, "a" keeps its first request
        (at(3), "start", "", "ok"),  # no id: ignored
    ]
    result = replay_calls(calls, strict=False)
    assert list(result) == ["a", "b", "c", "d"]
    assert [result[v]["ready_at"] for v in "abcd"] == [at(6), at(12), at(18), at(24)]
    assert result["a"]["requested_at"] == at(0)
    with pytest.raises(ValueError, match="needs the VM id"):
        replay_calls(calls[6:])


def test_timeline_gives_recorded_and_projected_times(clock, fake):
    a, b, c = (fake.start() for _ in range(3))
    clock.advance_to(at(7))
    fake.stop(c)  # waiting: never allocated
    timeline = fake.timeline()
    assert list(timeline) == [a, b, c]
    assert timeline[a] == {"requested_at": at(0), "allocation_started_at": at(0), "ready_at": at(6), "stopped_at": None}
    assert timeline[b] == {
        "requested_at": at(0),
        "allocation_started_at": at(6),
        "ready_at": at(12),
        "stopped_at": None,
    }
    assert timeline[c] == {"requested_at": at(0), "allocation_started_at": None, "ready_at": None, "stopped_at": at(7)}
    # the same times as the debugging listing, as datetimes instead of strings
    for vm in fake.vms():
        times = timeline[vm["id"]]
        assert {k: None if v is None else v.isoformat() for k, v in times.items()} == {k: vm[k] for k in times}


def test_timeline_of_a_random_run_is_its_replay(clock):
    rng = random.Random(11)
    fake = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3, record_calls=True)
    live: list[str] = []
    for _ in range(300):
        clock.sleep(rng.choice([0.0, 0.3, 2.0, 7.0]))
        try:
            if live and rng.random() < 0.4:
                fake.stop(live.pop(rng.randrange(len(live))))
            else:
                live.append(fake.start())
        except RateLimitExceeded:
            pass
    assert replay_calls(fake.calls) == fake.timeline()


def test_a_fake_without_rate_limit_accepts_every_call(clock):
    fake = FakeProvider(
        clock=clock, allocation_interval_s=6, requests_per_second=1, record_calls=True, enforce_rate_limit=False
    )
    ids = [fake.start() for _ in range(5)]
    fake.stop(ids[0])
    fake.stop(ids[0])
    with pytest.raises(UnknownVM):
        fake.stop("ghost")
    assert [c["outcome"] for c in fake.calls] == ["ok"] * 7 + ["error"]
    assert fake.ready_at(ids[1]) == at(6) and fake.ready_at(ids[4]) == at(24)
    limited = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=1)
    limited.start()
    with pytest.raises(RateLimitExceeded):
        limited.start()


def test_the_package_reexports_the_owning_modules_names():
    import vms.providers as package
    from vms.providers import mock_server, protocol

    assert package.FakeProvider is FakeProvider
    assert package.HttpProvider is HttpProvider
    assert package.replay_calls is replay_calls
    assert package.CloudProvider is protocol.CloudProvider
    assert package.MockCloudServer is mock_server.MockCloudServer
    assert package.provider_from_settings is provider_from_settings


# --- choosing a provider ----------------------------------------------------------------------


def test_provider_from_settings_is_the_shared_fake_by_default(fresh_default_provider):
    first = provider_from_settings()
    assert isinstance(first, FakeProvider)
    assert isinstance(first.clock, SystemClock)
    assert provider_from_settings() is first
    assert isinstance(first, CloudProvider)


def test_provider_from_settings_with_a_clock_builds_a_fake_on_it(settings):
    settings.VM_PROVIDER_URL = ""
    clock = VirtualClock(T0)
    provider = provider_from_settings(clock=clock)
    assert isinstance(provider, FakeProvider) and provider.clock is clock


def test_provider_from_settings_uses_http_when_a_url_is_set(settings):
    settings.VM_PROVIDER_URL = "http://cloud.example:8001/"
    provider = provider_from_settings(clock=VirtualClock(T0))
    assert isinstance(provider, HttpProvider)
    assert provider.base_url == "http://cloud.example:8001"
    assert isinstance(provider, CloudProvider)


def test_http_provider_needs_an_http_url():
    with pytest.raises(ValueError, match="http"):
        HttpProvider("cloud.example:8001")
