"""The job and device pages in a real browser (headless Chromium): the
queue position, estimated start, recent jobs and drain reason are drawn.
Skipped like tests/test_browser.py where no browser is installed;
BROWSER_SCREENSHOTS=<dir> keeps the screenshots."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.webdriver.support.ui import WebDriverWait

from devices.models import Device, DeviceStatus
from jobs.models import JobStatus
from tests.factories import make_device, make_job, make_program
from tests.test_browser import PASSWORD, _fill, browser  # noqa: F401 (the fixture)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_operator_reads_a_job_page_and_a_device_page(browser, live_server, django_user_model, tmp_path):  # noqa: F811
    django_user_model.objects.create_superuser("op", "", PASSWORD)
    owner = django_user_model.objects.create_user("alice")
    program = make_program(owner, key="prog.1", device_type="analog")
    device = make_device("qpu-7", type="analog")
    make_device("qpu-8", type="analog")
    now = timezone.now()
    for i in range(3):
        make_job(
            program,
            key=f"done-{i}",
            status=JobStatus.DONE,
            device=device,
            started_at=now - timedelta(minutes=10 - i),
            finished_at=now - timedelta(minutes=9 - i),
        )
    make_job(program, key="broke", status=JobStatus.FAILED, device=device, error="device timeout")
    make_job(program, key="ü-ß", status=JobStatus.RUNNING, device=device)
    make_job(program, key="ahead")
    make_job(program, key="%41")
    Device.objects.filter(pk="qpu-7").update(status=DeviceStatus.DRAINING, status_reason="failed 3 jobs in a row")

    browser.get(live_server.url + "/admin/login/?next=/admin/")
    _fill(browser, "username", "op")
    _fill(browser, "password", PASSWORD)
    browser.find_element("css selector", "input[type=submit]").click()
    assert browser.find_element("id", "user-tools").text.upper().startswith("WELCOME")

    # From the list to the job with the odd key, by its link.
    browser.get(live_server.url + "/admin/jobs/job/?q=%2541")
    browser.find_element("link text", "%41").click()
    # The click returns before the next page has loaded: wait for it.
    WebDriverWait(browser, 30).until(lambda driver: "/admin/jobs/job/_2541/change/?" in driver.current_url)
    position = browser.find_element("css selector", ".field-queue_position .readonly").text
    assert position == "2 (among queued analog jobs)"
    estimate = browser.find_element("css selector", ".field-estimated_start .readonly").text
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in about \d+m \d\ds\)", estimate), estimate
    assert not browser.find_elements("name", "_save")
    browser.save_screenshot(str(tmp_path / "job.png"))

    browser.get(live_server.url + "/admin/devices/device/qpu-7/change/")
    status = browser.find_element("css selector", ".field-shown_status .readonly").text
    assert status == "draining (failed 3 jobs in a row)"
    current = browser.find_element("css selector", ".field-current_job a")
    assert current.text == "ü-ß"
    rows = browser.find_elements("css selector", ".field-recent_jobs table.job-table tbody tr")
    assert [r.find_elements("tag name", "td")[0].text for r in rows] == ["ü-ß", "broke", "done-2", "done-1", "done-0"]
    browser.save_screenshot(str(tmp_path / "device.png"))
    current.click()
    WebDriverWait(browser, 30).until(lambda driver: "/admin/jobs/job/" in driver.current_url)
    assert browser.find_element("css selector", ".field-key .readonly").text == "ü-ß"
    if os.environ.get("BROWSER_SCREENSHOTS"):
        for name in ("job.png", "device.png"):
            shutil.copy(tmp_path / name, os.path.join(os.environ["BROWSER_SCREENSHOTS"], name))
