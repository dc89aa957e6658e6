"""The DRF browsable API works on every QPU endpoint for a logged-in user."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_device, make_job, make_program

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


def test_every_endpoint_renders_as_html(browser, user):
    make_device("dev-1")
    program = make_program(user, key="p1")
    make_job(program, key="j1")
    for path in (
        "/devices",
        "/devices/dev-1",
        "/devices/dev-1/heartbeat",
        "/devices/dev-1/drain",
        "/devices/dev-1/resume",
        "/programs",
        "/programs/p1",
        "/programs/p1/cancel",
        "/jobs",
        "/jobs/j1",
        "/jobs/j1/cancel",
    ):
        response = browser.get(path, HTTP_ACCEPT="text/html")
        # POST-only actions answer GET with 405, still as an HTML page.
        expected = 405 if path.rsplit("/", 1)[-1] in {"heartbeat", "drain", "resume", "cancel"} else 200
        assert response.status_code == expected, (path, response.status_code)
        assert response["Content-Type"].startswith("text/html")
        assert b"<html" in response.content.lower()


def test_html_pages_offer_a_form_for_submissions(browser):
    for path in ("/programs", "/jobs", "/devices"):
        content = browser.get(path, HTTP_ACCEPT="text/html").content.decode()
        assert 'method="POST"' in content or 'method="post"' in content.lower(), path


def test_session_post_from_the_browsable_api_form(browser):
    """An HTML form post (urlencoded key=value, CSRF checks off in the test client)."""
    response = browser.post(
        "/jobs", {"priority": "2", "device_type": "analog", "program_id": "web", "instructions": '["x"]'}
    )
    assert response.status_code == 201, response.content
    assert response.json()["instructions"] == ["x"]
    response = browser.post(
        "/programs", {"priority": "1", "device_type": "analog", "jobs": '[{"id": "w1"}, {"shots": "3"}]'}
    )
    assert response.status_code == 201, response.content
    assert response.json()["job_ids"][0] == "w1"
