"""Coalesced wake-ups (``core.wakeups.Wakeup.broadcast``): however many
threads ask at once, a NOTIFY starts after each request - no wake-up is
lost - while a request made during a send costs no NOTIFY of its own."""

from __future__ import annotations

import select
import threading

import psycopg2
import pytest
from django.db import DatabaseError, connection, connections

from core.wakeups import Wakeup

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class Recorded(Wakeup):
    """A Wakeup whose NOTIFYs are recorded; the first one can be held."""

    def __init__(self):
        super().__init__("test_wakeups")
        self.sent: list[int] = []  # the number of requests made before each send started
        self.requests = 0
        self.first_started = threading.Event()
        self.release_first = threading.Event()

    def broadcast(self) -> None:
        self.requests += 1
        super().broadcast()

    def _notify(self) -> None:
        self.sent.append(self.requests)
        if len(self.sent) == 1:
            self.first_started.set()
            assert self.release_first.wait(10)


def test_a_request_during_a_send_is_served_by_one_more_send():
    wakeup = Recorded()
    first = threading.Thread(target=wakeup.broadcast)
    first.start()
    assert wakeup.first_started.wait(10)
    before = wakeup.generation()
    for _ in range(5):  # while the first NOTIFY is on its way: none of their own
        wakeup.broadcast()
    assert wakeup.generation() == before + 5  # this process's loops are woken at once
    assert wakeup.sent == [1]
    wakeup.release_first.set()
    first.join(10)
    # One more NOTIFY, started after all six requests; then nothing is pending.
    assert wakeup.sent == [1, 6]
    wakeup.broadcast()
    assert wakeup.sent == [1, 6, 7]


def test_a_failed_send_is_logged_and_the_next_request_sends_again(monkeypatch, caplog):
    wakeup = Wakeup("test_wakeups")
    calls = []

    def failing():
        calls.append(1)
        raise DatabaseError("the database is away")

    monkeypatch.setattr(wakeup, "_notify", failing)
    wakeup.broadcast()
    wakeup.broadcast()
    assert len(calls) == 2
    assert "NOTIFY on test_wakeups failed" in caplog.text


def test_concurrent_requests_reach_a_listener():
    listener = psycopg2.connect(**connection.get_connection_params())
    listener.autocommit = True
    listener.cursor().execute("LISTEN test_wakeups")
    wakeup = Wakeup("test_wakeups")
    start = threading.Barrier(8)

    def ask():
        try:
            start.wait(10)
            for _ in range(25):
                wakeup.broadcast()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    received = 0
    while select.select([listener], [], [], 0.5)[0]:  # drained: nothing more within half a second
        listener.poll()
        received += len(listener.notifies)
        listener.notifies.clear()
    listener.close()
    assert received >= 1
