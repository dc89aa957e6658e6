"""Result delivery to the program's callback_url: signed, retried with backoff."""

from __future__ import annotations

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobs.models import Job
from jobs.runner import Worker
from jobs.tasks import deliver_callback

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_receivers_allowed(settings):
    # The receivers below listen on 127.0.0.1, which callbacks may only reach
    # when a deployment allows it on purpose.
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]


class Receiver:
    """A local HTTP endpoint that fails the first ``fail`` deliveries."""

    def __init__(self, fail: int = 0):
        self.fail = fail
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                code = 503 if receiver.fail > 0 else 204
                receiver.fail -= 1
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(fail=0):
        r = Receiver(fail)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def finish_one(make_device, make_program, url, recording):
    log, factory = recording
    make_program(callback_url=url, shots=2)
    make_device("qpu-w", size=3)
    Worker(client_factory=factory, listen=False).run_once()
    return Job.objects.get()


def test_finished_job_is_queued_for_delivery_and_delivered_signed(make_device, make_program, receiver, recording):
    r = receiver()
    job = finish_one(make_device, make_program, r.url, recording)
    assert job.callback_status == "pending"
    assert OrmQ.objects.count() == 1  # the django-q2 task for the first attempt
    assert deliver_callback(job.pk) == "delivered"
    headers, body = r.received[0]
    # The receiver's side: the program's secret verifies the delivery.
    payload = Webhook(job.program.webhook_secret).verify(body, headers)
    assert payload["id"] == job.key and payload["status"] == "done" and payload["result"] == ["111", "111"]
    assert "X-Signature-256" not in headers
    job.refresh_from_db()
    assert job.callback_status == "delivered" and job.callback_attempts == 1 and job.callback_delivered_at


def test_a_tampered_body_or_another_secret_fails_verification(make_device, make_program, receiver, recording):
    from jobs.models import new_webhook_secret

    r = receiver()
    job = finish_one(make_device, make_program, r.url, recording)
    assert deliver_callback(job.pk) == "delivered"
    headers, body = r.received[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(job.program.webhook_secret).verify(body.replace(b'"done"', b'"failed"'), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)


def test_retries_carry_the_same_webhook_id_and_a_fresh_signature(make_device, make_program, receiver, recording):
    r = receiver(fail=1)
    job = finish_one(make_device, make_program, r.url, recording)
    assert deliver_callback(job.pk) == "pending"
    assert deliver_callback(job.pk) == "delivered"
    (first, body1), (second, body2) = r.received
    assert first["webhook-id"] == second["webhook-id"] and body1 == body2
    for headers, body in r.received:
        Webhook(job.program.webhook_secret).verify(body, headers)


def test_failed_delivery_is_retried_with_exponential_backoff_until_it_succeeds(
    make_device, make_program, receiver, recording, settings
):
    settings.CALLBACK_BACKOFF_SECONDS = 10
    r = receiver(fail=2)
    job = finish_one(make_device, make_program, r.url, recording)
    delays = []
    for attempt in (1, 2):
        before = timezone.now()
        assert deliver_callback(job.pk) == "pending"
        retry = Schedule.objects.get(name=f"callback-{job.pk}-{attempt + 1}")
        assert retry.func == "jobs.tasks.deliver_callback" and retry.schedule_type == Schedule.ONCE
        delays.append((retry.next_run - before).total_seconds())
        job.refresh_from_db()
        assert job.callback_attempts == attempt and "503" in job.callback_error
    assert 9 < delays[0] < 11 and 19 < delays[1] < 21  # 10 s, then 20 s
    assert deliver_callback(job.pk) == "delivered"
    assert len(r.received) == 3
    job.refresh_from_db()
    assert job.callback_status == "delivered" and job.callback_error == ""


def test_delivery_gives_up_after_the_maximum_attempts(make_device, make_program, receiver, recording, settings):
    settings.CALLBACK_MAX_ATTEMPTS = 2
    r = receiver(fail=99)
    job = finish_one(make_device, make_program, r.url, recording)
    assert deliver_callback(job.pk) == "pending"
    assert deliver_callback(job.pk) == "failed"
    assert deliver_callback(job.pk) == "failed"  # a stray retry does not post again
    assert len(r.received) == 2
    job.refresh_from_db()
    assert job.callback_status == "failed" and job.callback_attempts == 2


def test_failed_jobs_are_delivered_too_and_unreachable_receivers_are_retried(
    make_device, make_program, recording, settings
):
    settings.JOB_MAX_ATTEMPTS = 1
    log, factory = recording
    factory.options.update(fail_times=1)
    make_program(callback_url="http://127.0.0.1:9/nothing-listens-here")
    make_device("qpu-w")
    Worker(client_factory=factory, listen=False).run_once()
    job = Job.objects.get()
    assert job.status == "failed" and job.callback_status == "pending"
    assert deliver_callback(job.pk) == "pending"
    job.refresh_from_db()
    assert job.callback_error == "connection failed"


def test_jobs_without_callback_url_create_no_delivery(make_device, make_program, recording):
    log, factory = recording
    make_program()
    make_device("qpu-w")
    Worker(client_factory=factory, listen=False).run_once()
    assert Job.objects.get().callback_status == "" and OrmQ.objects.count() == 0


def test_a_duplicate_task_for_the_same_attempt_posts_nothing(make_device, make_program, receiver, recording):
    r = receiver()
    job = finish_one(make_device, make_program, r.url, recording)
    assert deliver_callback(job.pk, 1) == "delivered"
    assert deliver_callback(job.pk, 1) == "delivered"
    assert len(r.received) == 1


def test_lost_deliveries_are_queued_again_by_the_sweeper(make_device, make_program, receiver, recording, settings):
    """A worker killed between storing the result and queueing the delivery,
    or a delivery that died mid-POST: the sweeper queues the next attempt."""
    from django.utils import timezone as tz

    from jobs.webhooks import callbacks_requeue_lost

    settings.CALLBACK_SWEEP_AFTER_SECONDS = 300
    r = receiver()
    job = finish_one(make_device, make_program, r.url, recording)
    OrmQ.objects.all().delete()  # the queued task is lost
    assert callbacks_requeue_lost() == 0  # too early to call it lost
    later = tz.now() + timedelta(seconds=301)
    assert callbacks_requeue_lost(now=later) == 1
    assert OrmQ.objects.count() == 1
    assert callbacks_requeue_lost(now=later) == 0  # not again at once
    # A delivery that claimed attempt 1 and died mid-POST:
    Job.objects.filter(pk=job.pk).update(callback_attempts=1, callback_due_at=tz.now())
    assert callbacks_requeue_lost(now=tz.now() + timedelta(seconds=301)) == 1
    assert deliver_callback(job.pk, 1) == "pending"  # the stale attempt-1 task does nothing
    assert deliver_callback(job.pk, 2) == "delivered"
    assert len(r.received) == 1
    job.refresh_from_db()
    assert job.callback_attempts == 2 and job.callback_due_at is None
