"""The device admin shows who owns a device and can hand it to a device account."""

from __future__ import annotations

import pytest

from devices.accounts import device_account_ensure
from devices.models import Device
from tests.conftest import _client_for
from tests.factories import make_device

pytestmark = pytest.mark.django_db


def test_changelist_shows_the_owner_and_the_change_form_hands_a_device_to_an_account(admin_client_):
    lab = device_account_ensure(name="lab-a").user
    make_device("owned", address="sim")
    Device.objects.filter(pk="owned").update(owner=lab)
    make_device("staff-reg", address="http://10.0.0.2:1")
    page = admin_client_.get("/admin/devices/device/?q=lab-a")
    assert page.status_code == 200
    assert "lab-a" in page.content.decode() and "staff-reg" not in page.content.decode()
    assert _client_for(lab).post("/devices/staff-reg/heartbeat").status_code == 403

    response = admin_client_.post(
        "/admin/devices/device/staff-reg/change/",
        {"address": "http://10.0.0.2:1", "type": "analog", "size": 8, "owner": lab.pk},
    )
    assert response.status_code == 302, response.content
    assert Device.objects.get(pk="staff-reg").owner == lab
    assert _client_for(lab).post("/devices/staff-reg/heartbeat").status_code == 200


def test_a_device_added_in_the_admin_belongs_to_no_account(admin_client_):
    response = admin_client_.post(
        "/admin/devices/device/add/", {"id": "new-1", "address": "sim", "type": "a", "size": 2}
    )
    assert response.status_code == 302, response.content
    assert Device.objects.get(pk="new-1").owner is None
