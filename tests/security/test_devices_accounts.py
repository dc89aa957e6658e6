"""`manage.py create_device_account`: a lab's QPU credentials, and the QPU
tools (`simulate_qpu`, the brief's `curl -d` client) working with them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from devices.models import Device
from tests.helpers import ROOT, wait_until

pytestmark = pytest.mark.django_db


def create(*args) -> str:
    out = StringIO()
    call_command("create_device_account", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def token_of(output: str) -> str:
    return next(line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("Token"))


def test_creates_a_device_account_with_exactly_the_device_permissions_and_prints_its_token():
    output = create("qpu-7")
    user = get_user_model().objects.get(username="qpu-7")
    assert not user.is_staff and not user.is_superuser and not user.has_usable_password()
    assert user.get_all_permissions() == {"devices.add_device", "devices.change_device", "devices.delete_device"}
    assert token_of(output) == Token.objects.get(user=user).key
    assert "created" in output


def test_running_it_again_reuses_the_account_and_token_repairs_permissions_and_rotate_replaces_the_token():
    from django.contrib.auth.models import Group, Permission

    first = token_of(create("qpu-7"))
    user = get_user_model().objects.get(username="qpu-7")
    extra = Permission.objects.get(codename="view_device")
    group = Group.objects.create(name="ops")
    group.permissions.add(Permission.objects.get(codename="add_job"))
    user.user_permissions.add(extra)
    user.groups.add(group)
    assert token_of(create("qpu-7")) == first
    user = get_user_model().objects.get(pk=user.pk)
    assert user.get_all_permissions() == {"devices.add_device", "devices.change_device", "devices.delete_device"}

    out = StringIO()
    call_command("create_device_account", "qpu-7", "--rotate", "-v", "0", stdout=out)
    rotated = out.getvalue().strip()
    assert rotated != first and Token.objects.get(user=user).key == rotated
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert client.get("/devices").status_code == 401  # the old token stopped working


@pytest.mark.parametrize("make", ["staff", "person"])
def test_refuses_to_turn_a_persons_account_into_a_device_account(make):
    User = get_user_model()
    if make == "staff":
        User.objects.create_user(username="ops", is_staff=True)
    else:
        User.objects.create_user(username="ops", password="a-real-password-123")
    with pytest.raises(CommandError, match="person's account"):
        create("ops")
    assert not User.objects.get(username="ops").user_permissions.exists()


@pytest.mark.parametrize("name", ["has space", "a/b", "x" * 151])
def test_refuses_names_that_cannot_be_usernames(name):
    with pytest.raises(CommandError):
        create(name)
    assert not get_user_model().objects.exists()


def test_the_docs_flow_with_the_briefs_curl_d_client():
    """docs/api.md: create the account, register, heartbeat, unregister."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_of(create('lab-7'))}")

    def curl_d(path, body=None):
        return client.generic(
            "POST", path, json.dumps(body) if body else "", content_type="application/x-www-form-urlencoded"
        )

    response = curl_d("/devices", {"id": "qpu-7", "address": "addr1", "type": "analog", "size": 5})
    assert response.status_code == 201, response.content
    assert response.json()["address"] == "addr1" and response.json()["simulated"] is True
    assert curl_d("/devices/qpu-7/heartbeat").status_code == 200
    assert client.delete("/devices/qpu-7").status_code == 204
    assert not Device.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_simulate_qpu_joins_heartbeats_and_leaves_with_a_device_account_token_and_cannot_take_another_labs_id(
    live_server,
):
    lab_a, lab_b = token_of(create("lab-a")), token_of(create("lab-b"))

    def simulate(token, *extra):
        return subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "simulate_qpu",
                "--id",
                "qpu-a",
                "--type",
                "analog",
                "--size",
                "3",
                "--scheduler",
                live_server.url,
                "--token",
                token,
                "--heartbeat",
                "0.1",
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    proc = simulate(lab_a)
    try:
        assert wait_until(lambda: Device.objects.filter(pk="qpu-a").exists() or proc.poll() is not None, timeout=30)
        device = Device.objects.get(pk="qpu-a")
        assert device.owner.username == "lab-a" and device.address.startswith("http://127.0.0.1:")
        seen = device.last_seen_at
        assert wait_until(lambda: Device.objects.get(pk="qpu-a").last_seen_at > seen, timeout=30)  # heartbeats pass

        thief = simulate(lab_b)
        out, err = thief.communicate(timeout=60)
        assert thief.returncode != 0 and "HTTP 403" in err, (out, err)
        assert Device.objects.get(pk="qpu-a").address == device.address
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert "stopped" in out and "refused" not in err, (out, err)
    assert not Device.objects.filter(pk="qpu-a").exists()  # it removed itself on the way out
