"""One slow callback receiver costs the delivery workers at most one timeout
per quiet period; other users' deliveries go through meanwhile."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from jobs.models import SlowReceiver
from jobs.receivers import give_up_after, receiver_gate
from jobs.webhooks import callback_deliver
from tests.security.conftest import answer, hold

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_peers(settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.CALLBACK_TIMEOUT_SECONDS = 1
    settings.CALLBACK_SLOW_RECEIVER_SECONDS = 60


def test_a_slow_receiver_costs_one_timeout_and_the_fast_one_is_served(finished_job, peer, other_user):
    slow, fast = peer(hold), peer(answer(204))
    slow_jobs = [finished_job(slow.url + "/hook") for _ in range(3)]
    fast_jobs = [finished_job(fast.url + "/hook", owner=other_user) for _ in range(3)]
    # One worker taking the deliveries in queue order, the two users interleaved.
    outcomes = [callback_deliver(job_id=job.pk) for pair in zip(slow_jobs, fast_jobs, strict=True) for job in pair]
    assert outcomes == ["pending", "delivered"] * 3
    assert slow.accepted == 1 and len(fast.requests) == 3
    first, *waiting = [type(j).objects.get(pk=j.pk) for j in slow_jobs]
    assert first.callback_attempts == 1 and first.callback_error == "timed out after 1 s"
    until = SlowReceiver.objects.get(receiver=f"http://127.0.0.1:{slow.port}").until
    for job in waiting:  # rescheduled to the end of the quiet period, no attempt used
        assert job.callback_attempts == 0 and job.callback_status == "pending" and job.callback_due_at == until
        assert Schedule.objects.filter(name=f"callback-{job.pk}-1", next_run__gte=until - timedelta(seconds=1)).exists()


def test_after_the_quiet_period_one_delivery_probes_and_the_others_keep_waiting(finished_job, peer):
    slow = peer(hold)
    jobs = [finished_job(slow.url + "/hook") for _ in range(3)]
    callback_deliver(job_id=jobs[0].pk)
    SlowReceiver.objects.update(until=timezone.now() - timedelta(seconds=1))
    callback_deliver(job_id=jobs[1].pk)  # the probe: still slow
    callback_deliver(job_id=jobs[2].pk)  # waits again
    assert slow.accepted == 2
    assert [type(j).objects.get(pk=j.pk).callback_attempts for j in jobs] == [1, 1, 0]


def test_a_receiver_that_answers_again_is_no_longer_slow(finished_job, peer):
    receiver = peer(answer(204))
    job = finished_job(receiver.url + "/hook")
    now = timezone.now()
    SlowReceiver.objects.create(receiver=f"http://127.0.0.1:{receiver.port}", since=now, until=now)
    assert callback_deliver(job_id=job.pk) == "delivered"
    assert not SlowReceiver.objects.exists()


def test_deliveries_to_a_receiver_slow_for_longer_than_all_retries_fail_without_a_call(finished_job, peer):
    slow = peer(hold)
    job = finished_job(slow.url + "/hook")
    long_ago = timezone.now() - give_up_after() - timedelta(seconds=1)
    quiet_until = timezone.now() + timedelta(seconds=60)  # still failing: renewed by the last probe
    SlowReceiver.objects.create(receiver=f"http://127.0.0.1:{slow.port}", since=long_ago, until=quiet_until)
    assert callback_deliver(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.callback_error.startswith("receiver unreachable for over") and slow.accepted == 0


def test_a_receiver_silent_for_long_is_probed_again_not_given_up(finished_job, peer):
    receiver = peer(answer(204))
    job = finished_job(receiver.url + "/hook")
    long_ago = timezone.now() - 2 * give_up_after()
    SlowReceiver.objects.create(
        receiver=f"http://127.0.0.1:{receiver.port}", since=long_ago, until=long_ago + timedelta(seconds=60)
    )
    assert callback_deliver(job_id=job.pk) == "delivered"


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_elect_exactly_one_probe():
    now = timezone.now()
    SlowReceiver.objects.create(receiver="http://hooks.example.com:80", since=now, until=now - timedelta(seconds=1))
    barrier = threading.Barrier(4)
    gates = []

    def worker():
        try:
            barrier.wait()
            gates.append(receiver_gate(receiver="http://hooks.example.com:80", now=timezone.now()))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(gates) == 4 and sum(g.go for g in gates) == 1
