"""Fixtures for the VM scheduler's tests: a virtual clock, the fake provider,
a scheduler on both, and a driver that runs it through virtual time (exams
come from tests/factories.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from vms.clock import VirtualClock
from vms.planner import PlannerConfig, from_ms, to_ms
from vms.providers.fake import FakeProvider
from vms.scheduler import Scheduler, SchedulerConfig, SchedulerLock

T0 = datetime(2030, 5, 1, 6, 0, tzinfo=timezone.utc)


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


@pytest.fixture
def vclock():
    return VirtualClock(T0)


@pytest.fixture
def fake_provider(vclock):
    return FakeProvider(clock=vclock, allocation_interval_s=6, requests_per_second=3)


def make_scheduler(clock, provider, *, lock: SchedulerLock | None = None, **overrides) -> Scheduler:
    config = SchedulerConfig(
        planner=overrides.pop("planner", PlannerConfig()),
        poll_db_ms=overrides.pop("poll_db_ms", 0),  # tests change exams through the ORM: look every pass
        **overrides,
    )
    return Scheduler(clock=clock, provider=provider, config=config, lock=lock or SchedulerLock())


def drive(scheduler: Scheduler, clock: VirtualClock, until: datetime, *, max_passes: int = 200_000) -> None:
    """Run passes, jumping the virtual clock to each next due moment, up to ``until``."""
    until_ms = to_ms(until)
    for _ in range(max_passes):
        due = scheduler.run_pass()
        now_ms = to_ms(clock.now())
        if now_ms >= until_ms:
            return
        nxt = until_ms if due is None else min(max(due, now_ms), until_ms)
        if nxt == now_ms:
            nxt = now_ms if due is not None and due <= now_ms else now_ms + 1
        clock.advance_to(from_ms(nxt))
    raise AssertionError("the scheduler did not reach the end time")


@pytest.fixture
def scheduler_factory(vclock, fake_provider):
    made = []

    def factory(**overrides) -> Scheduler:
        s = make_scheduler(overrides.pop("clock", vclock), overrides.pop("provider", fake_provider), **overrides)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.close()


@pytest.fixture
def fresh_default_provider(settings, monkeypatch):
    """No VM_PROVIDER_URL, and a new process-wide fake (the module's one piece
    of state, reset for the test and dropped after it)."""
    from vms.providers import selection

    settings.VM_PROVIDER_URL = ""
    monkeypatch.setattr(selection, "_default_fake", None)
