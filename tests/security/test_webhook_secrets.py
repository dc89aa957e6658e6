"""Per-program webhook secrets: made at creation, shown once, rotatable by
the owner only; real deliveries verify with the standardwebhooks package."""

from __future__ import annotations

import base64

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from jobs.models import Program
from jobs.webhooks import callback_deliver
from tests.security.conftest import answer

pytestmark = pytest.mark.django_db


def create(api, **extra):
    payload = {"id": "p1", "priority": 1, "device_type": "analog", "jobs": [{}], **extra}
    return api.post("/programs", payload, format="json")


def test_the_secret_is_returned_once_at_creation_and_never_by_get(api):
    response = create(api)
    assert response.status_code == 201
    secret = response.json()["webhook_secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert Program.objects.get().webhook_secret == secret
    assert "webhook_secret" not in api.get("/programs/p1").json()
    assert all("webhook_secret" not in p for p in api.get("/programs").json()["results"])
    assert secret not in api.get("/programs").content.decode()


def test_every_program_gets_its_own_secret_including_the_flat_jobs_form(api):
    create(api)
    response = api.post("/jobs", {"priority": 1, "device_type": "analog", "program_id": "flat"}, format="json")
    assert response.status_code == 201 and "webhook_secret" not in response.json()
    secrets = list(Program.objects.values_list("webhook_secret", flat=True))
    assert len(secrets) == 2 and len(set(secrets)) == 2 and all(s.startswith("whsec_") for s in secrets)


def test_the_owner_rotates_the_secret(api):
    old = create(api).json()["webhook_secret"]
    response = api.post("/programs/p1/webhook-secret")
    assert response.status_code == 200
    new = response.json()["webhook_secret"]
    assert response.json()["program"] == "p1" and new != old and new.startswith("whsec_")
    assert Program.objects.get().webhook_secret == new


def test_nobody_else_rotates_or_reads_it(api, other_api, anon_api):
    old = create(api).json()["webhook_secret"]
    assert other_api.post("/programs/p1/webhook-secret").status_code == 404
    assert anon_api.post("/programs/p1/webhook-secret").status_code == 401
    assert Program.objects.get().webhook_secret == old


def test_deliveries_after_a_rotation_verify_with_the_new_secret_only(api, finished_job, peer, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    receiver = peer(answer(204))
    job = finished_job(receiver.url + "/hook")
    old = job.program.webhook_secret
    job.program.key = "mine"
    job.program.save()
    new = api.post("/programs/mine/webhook-secret").json()["webhook_secret"]
    assert callback_deliver(job_id=job.pk) == "delivered"
    head, _, body = receiver.requests[0].partition(b"\r\n\r\n")
    headers = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n")[1:])
    assert Webhook(new).verify(body, headers)["id"] == job.key
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)
