"""End to end in a real browser (headless Chromium through selenium).

An operator logs into the admin, creates an exam, opens its page and sees the
VM timeline chart drawn, then opens the job list and sees the queue table.
Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run`
installs them); without them the test is skipped with the reason, except
where REQUIRE_BROWSER=1 (CI), where a missing browser is an error.
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_device, make_job, make_program, make_user

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
PASSWORD = "Browser-test-pw-8142"


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    if not (CHROMIUM and DRIVER):
        return "needs the Debian packages chromium and chromium-driver"
    return None


@pytest.fixture
def browser(tmp_path):
    reason = _missing()
    if reason:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1600",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    driver.implicitly_wait(10)  # element lookups wait for the page, not a sleep
    yield driver
    driver.quit()


def _fill(driver, name: str, value: str) -> None:
    field = driver.find_element("name", name)
    field.clear()
    field.send_keys(value)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_operator_creates_an_exam_and_sees_its_chart_and_the_queue(browser, live_server, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    from exams.models import Exam

    make_user("op", password=PASSWORD, is_superuser=True)
    owner = make_user("alice")
    make_device("qpu-1", type="analog")
    make_job(make_program(owner, device_type="analog"))
    make_job(make_program(owner, device_type="lonely"))

    browser.get(live_server.url + "/admin/login/?next=/admin/")
    _fill(browser, "username", "op")
    _fill(browser, "password", PASSWORD)
    browser.find_element("css selector", "input[type=submit]").click()
    assert browser.find_element("id", "user-tools").text.upper().startswith("WELCOME")

    start = (timezone.now() + timedelta(hours=2)).replace(second=0, microsecond=0)
    end = start + timedelta(hours=2)
    browser.get(live_server.url + "/admin/exams/exam/add/")
    _fill(browser, "name", "Browser exam")
    _fill(browser, "start_0", start.strftime("%Y-%m-%d"))
    _fill(browser, "start_1", start.strftime("%H:%M:%S"))
    _fill(browser, "end_0", end.strftime("%Y-%m-%d"))
    _fill(browser, "end_1", end.strftime("%H:%M:%S"))
    _fill(browser, "students", "30")
    browser.find_element("name", "_continue").click()  # save and stay on its page
    # the click returns before the POST is answered: wait for the saved exam's page
    WebDriverWait(browser, 60).until(lambda driver: "/change/" in driver.current_url)

    exam = Exam.objects.get(name="Browser exam")
    assert (exam.start, exam.end, exam.students) == (start, end, 30)
    assert f"/admin/exams/exam/{exam.pk}/change/" in browser.current_url
    _scheduler_pass()  # as the running service's scheduler does on the change: plans and stores the summary
    browser.refresh()
    chart = browser.find_element("css selector", "svg.vm-plan-chart")
    assert chart.is_displayed()
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    # the planned line is drawn (a polyline with points), not just the frame
    assert browser.find_elements("css selector", "svg.vm-plan-chart polyline")
    browser.save_screenshot(str(tmp_path / "exam.png"))

    browser.get(live_server.url + "/admin/jobs/job/")
    table = browser.find_element("id", "queue-summary")
    assert table.is_displayed()
    rows = {r.find_elements("tag name", "td")[0].text: r.text for r in table.find_elements("css selector", "tbody tr")}
    assert set(rows) == {"analog", "lonely (no online device)"}
    flagged = table.find_elements("css selector", "tbody tr.no-device")
    assert [r.find_elements("tag name", "td")[0].text for r in flagged] == ["lonely (no online device)"]
    assert "QPU & exam VM scheduling" in browser.find_element("id", "site-name").text
    browser.save_screenshot(str(tmp_path / "queue.png"))
    if os.environ.get("BROWSER_SCREENSHOTS"):
        for name in ("exam.png", "queue.png"):
            shutil.copy(tmp_path / name, os.path.join(os.environ["BROWSER_SCREENSHOTS"], name))


def _scheduler_pass() -> None:
    from tests.vms.conftest import make_scheduler
    from vms.clock import SystemClock
    from vms.providers import FakeProvider

    clock = SystemClock()
    scheduler = make_scheduler(clock, FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3))
    try:
        scheduler.run_pass()
    finally:
        scheduler.close()
