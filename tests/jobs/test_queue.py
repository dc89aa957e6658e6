from __future__ import annotations

import threading

import pytest

from jobs.queue import ProcessQueue, QueueEmpty


def test_brief_example_highest_priority_first_then_oldest():
    q = ProcessQueue()
    q.push("a", 10)
    q.push("b", 20)
    q.push("c", 20)
    assert [q.pop(), q.pop(), q.pop()] == ["b", "c", "a"]


def test_len_follows_pushes_and_pops():
    q = ProcessQueue()
    assert len(q) == 0 and not q
    q.push("x", 1)
    q.push("y", 1)
    assert len(q) == 2 and q
    q.pop()
    assert len(q) == 1


def test_equal_priorities_come_out_in_push_order_and_negative_priorities_last():
    q = ProcessQueue()
    for i in range(50):
        q.push(i, 0)
    q.push("late-high", 1)
    q.push("low", -5)
    popped = [q.pop() for _ in range(len(q))]
    assert popped == ["late-high", *range(50), "low"]


def test_items_need_not_be_comparable():
    q = ProcessQueue()
    q.push({"job": 1}, 3)
    q.push({"job": 2}, 3)
    assert q.pop() == {"job": 1}


def test_peek_does_not_remove():
    q = ProcessQueue()
    q.push("a", 1)
    q.push("b", 2)
    assert q.peek() == "b"
    assert len(q) == 2


def test_pop_on_empty_raises_an_index_error():
    q = ProcessQueue()
    with pytest.raises(QueueEmpty):
        q.pop()
    with pytest.raises(IndexError):
        q.pop()
    with pytest.raises(QueueEmpty):
        q.peek()


def test_blocking_pop_with_timeout_on_empty_raises():
    q = ProcessQueue()
    with pytest.raises(QueueEmpty):
        q.pop(block=True, timeout=0.01)


def test_blocking_pop_waits_for_a_push_from_another_thread():
    q = ProcessQueue()
    got = []
    waiting = threading.Event()

    def consumer():
        waiting.set()
        got.append(q.pop(block=True, timeout=30))

    t = threading.Thread(target=consumer)
    t.start()
    assert waiting.wait(30)
    q.push("job", 7)
    t.join(30)
    assert not t.is_alive() and got == ["job"]


def test_concurrent_producers_and_consumers_lose_and_duplicate_nothing():
    q = ProcessQueue()
    producers, per_producer = 8, 2000
    start = threading.Barrier(producers)

    def produce(p):
        start.wait()
        for i in range(per_producer):
            q.push((p, i), i % 5)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(q) == producers * per_producer

    popped: list[list] = [[] for _ in range(4)]

    def consume(bucket):
        while True:
            try:
                bucket.append(q.pop())
            except QueueEmpty:
                return

    consumers = [threading.Thread(target=consume, args=(b,)) for b in popped]
    for t in consumers:
        t.start()
    for t in consumers:
        t.join()
    everything = [item for bucket in popped for item in bucket]
    assert len(everything) == producers * per_producer
    assert set(everything) == {(p, i) for p in range(producers) for i in range(per_producer)}
    assert len(q) == 0
    # Each consumer popped in queue order: never a higher priority after a lower one.
    for bucket in popped:
        priorities = [i % 5 for _, i in bucket]
        assert priorities == sorted(priorities, reverse=True)


def test_fifo_among_equals_holds_per_producer_under_concurrency():
    q = ProcessQueue()

    def produce(p):
        for i in range(1000):
            q.push((p, i), 1)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    order = [q.pop() for _ in range(len(q))]
    for p in range(4):
        assert [i for (pp, i) in order if pp == p] == list(range(1000))
