from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from vms.clock import Clock, SystemClock, VirtualClock

T0 = datetime(2030, 5, 1, 9, 0, tzinfo=timezone.utc)


def test_system_clock_now_is_aware_utc():
    now = SystemClock().now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_system_clock_sleep_waits_on_the_stop_event():
    class RecordingEvent(threading.Event):
        waits: list[float] = []

        def wait(self, timeout=None):
            self.waits.append(timeout)
            return True

    event = RecordingEvent()
    SystemClock(stop_event=event).sleep(42.5)
    assert event.waits == [42.5]


def test_system_clock_sleep_is_cut_short_by_the_stop_event():
    event = threading.Event()
    clock = SystemClock(stop_event=event)
    sleeper = threading.Thread(target=clock.sleep, args=(3600,))
    sleeper.start()
    event.set()
    sleeper.join(timeout=30)
    assert not sleeper.is_alive(), "an hour's sleep did not end when the stop event was set"


def test_system_clock_sleep_of_nothing_returns():
    SystemClock().sleep(0)
    SystemClock().sleep(-5)


def test_virtual_clock_sleep_moves_time_instantly():
    clock = VirtualClock(T0)
    clock.sleep(6)
    clock.sleep(0.25)
    assert clock.now() == T0 + timedelta(seconds=6.25)


def test_virtual_clock_advance_to_never_goes_backwards():
    clock = VirtualClock(T0)
    clock.advance_to(T0 + timedelta(hours=2))
    clock.advance_to(T0 + timedelta(hours=1))
    assert clock.now() == T0 + timedelta(hours=2)


def test_virtual_clock_keeps_utc_for_other_offsets():
    cet = timezone(timedelta(hours=1))
    clock = VirtualClock(datetime(2030, 5, 1, 10, 0, tzinfo=cet))
    assert clock.now() == T0
    assert clock.now().utcoffset() == timedelta(0)


def test_virtual_clock_rejects_naive_times_and_negative_sleeps():
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2030, 5, 1, 9, 0))
    clock = VirtualClock(T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.advance_to(datetime(2030, 5, 2))
    with pytest.raises(ValueError, match="negative"):
        clock.sleep(-1)
    assert clock.now() == T0


def test_both_clocks_satisfy_the_protocol():
    assert isinstance(SystemClock(), Clock)
    assert isinstance(VirtualClock(T0), Clock)
