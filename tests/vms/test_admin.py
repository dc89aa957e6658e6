"""The exam admin's VM columns and plan panel, as an operator reads them."""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from exams.models import Exam
from tests.vms.plan_helpers import store_plan
from vms.admin_exam import chart_range, fmt_utc, plan_chart_svg
from vms.models import VM, VMState
from vms.plan_summary import ExamPlanReport, PlanTimeline, ReadyPoint, VmCounts

pytestmark = pytest.mark.django_db

UTC_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}Z")


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


def text(html: str) -> str:
    """What the operator sees: tags dropped, whitespace collapsed."""
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def row_of(html: str, exam: Exam) -> str:
    rows = re.findall(r"<tr[^>]*>.*?</tr>", html, flags=re.S)
    return next(r for r in rows if f"/admin/exams/exam/{exam.id}/change/" in r)


def cell(row: str, field: str) -> str:
    match = re.search(rf'<td class="field-{field}[^"]*">(.*?)</td>', row, flags=re.S)
    assert match, f"no {field} cell in {row}"
    return text(match.group(1)).strip()


def past_exam_short_by_one(now) -> Exam:
    """Over an hour ago; 9 of 10 VMs were ready at its start, the 10th came late."""
    exam = Exam.objects.create(
        name="Physics", start=now - timedelta(hours=3), end=now - timedelta(hours=2), students=10
    )
    for i in range(10):
        ready = exam.start - timedelta(minutes=5) + timedelta(seconds=6 * i) + timedelta(minutes=12 if i == 9 else 0)
        VM.objects.create(
            exam=exam,
            exam_ref=exam.id,
            uuid=f"p{i}",
            state=VMState.STOPPED,
            requested_at=ready - timedelta(minutes=4),
            ready_at=ready,
            used_at=max(ready, exam.start),
            stop_requested_at=exam.end,
            stopped_at=exam.end + timedelta(seconds=2 * i),
        )
    return exam


def svg_of(html: str) -> str:
    match = re.search(r'<svg[^>]*class="vm-plan-chart".*?</svg>', html, flags=re.S)
    assert match, "no chart"
    return match.group(0)


def marker_x(svg: str, name: str) -> float | None:
    match = re.search(rf'<line class="marker-{name}" x1="([\d.]+)"', svg)
    return None if match is None else float(match.group(1))


def axis(svg: str) -> tuple[float, float, datetime, datetime]:
    attrs = dict(re.findall(r'data-(x0|x1|t0|t1)="([^"]+)"', svg))
    parse = lambda s: datetime.strptime(s, "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=dt_timezone.utc)  # noqa: E731
    return float(attrs["x0"]), float(attrs["x1"]), parse(attrs["t0"]), parse(attrs["t1"])


# --- change list ----------------------------------------------------------------------


def test_list_shows_the_shortfall_of_a_past_exam(admin_client, now):
    exam = past_exam_short_by_one(now)
    store_plan()
    html = admin_client.get("/admin/exams/exam/").content.decode()
    row = row_of(html, exam)
    assert cell(row, "ready_at_start") == "9"
    assert cell(row, "at_risk") == "⚠ short by 1" and "color:#ba2121" in row
    assert cell(row, "vm_counts") == "10 / 0 / 10"


def test_list_and_change_page_agree_on_a_running_exam(admin_client, now):
    exam = Exam.objects.create(
        name="Running", start=now - timedelta(minutes=5), end=now + timedelta(hours=1), students=3
    )
    for i, ready_s_ago in enumerate((600, 60)):  # the second came after the start
        VM.objects.create(
            exam=exam,
            exam_ref=exam.id,
            uuid=f"r{i}",
            state=VMState.READY,
            used_at=now,
            requested_at=now - timedelta(seconds=ready_s_ago + 240),
            ready_at=now - timedelta(seconds=ready_s_ago),
        )
    store_plan()
    row = row_of(admin_client.get("/admin/exams/exam/").content.decode(), exam)
    assert cell(row, "ready_at_start") == "1" and cell(row, "at_risk") == "⚠ short by 2"
    page = text(admin_client.get(f"/admin/exams/exam/{exam.id}/change/").content.decode())
    assert "1 of 3 VMs were ready when the exam started (short by 2)" in page
    # 2 VMs alive for 3 students: one late VM is planned, and the page says
    # when it should be ready - nothing more is promised
    assert re.search(r"short by 2\); 1 late VM planned, the last ready at " + UTC_SECONDS.pattern, page), page
    assert "follow" not in page


def test_running_exam_with_nothing_planned_promises_nothing(admin_client, now):
    # 5 minutes left, less than VM_LATE_MIN_USEFUL_SECONDS: no late VM is useful
    exam = Exam.objects.create(
        name="Ending", start=now - timedelta(minutes=55), end=now + timedelta(minutes=5), students=3
    )
    store_plan()
    page = text(admin_client.get(f"/admin/exams/exam/{exam.id}/change/").content.decode())
    assert "0 of 3 VMs were ready when the exam started (short by 3); no further late VM is planned." in page
    assert "follow" not in page


def test_list_shows_future_exams_expected_and_fine(admin_client, now):
    fine = Exam.objects.create(name="Fine", start=now + timedelta(hours=5), end=now + timedelta(hours=6), students=10)
    risky = Exam.objects.create(
        name="Tight", start=now + timedelta(minutes=5), end=now + timedelta(hours=1), students=400
    )
    store_plan()
    html = admin_client.get("/admin/exams/exam/").content.decode()
    assert cell(row_of(html, fine), "ready_at_start") == "~10" and cell(row_of(html, fine), "at_risk") == "ok"
    assert cell(row_of(html, risky), "at_risk").startswith("⚠ short by ")


def test_list_times_are_utc_with_seconds(admin_client, now):
    exam = past_exam_short_by_one(now)
    store_plan()
    row = row_of(admin_client.get("/admin/exams/exam/").content.decode(), exam)
    assert cell(row, "start_utc") == fmt_utc(exam.start) and UTC_SECONDS.fullmatch(cell(row, "start_utc"))
    assert cell(row, "end_utc") == fmt_utc(exam.end)
    first_request = min(VM.objects.values_list("requested_at", flat=True))
    assert cell(row, "requesting_starts") == fmt_utc(first_request)
    vms = admin_client.get("/admin/vms/vm/").content.decode()
    first = VM.objects.get(uuid="p0")
    for field in ("requested", "ready", "used", "stopped"):
        assert UTC_SECONDS.fullmatch(cell(row_of_vm(vms, first), f"{field}_utc"))
    assert cell(row_of_vm(vms, first), "stopped_utc") == fmt_utc(first.stopped_at)


def row_of_vm(html: str, vm: VM) -> str:
    rows = re.findall(r"<tr[^>]*>.*?</tr>", html, flags=re.S)
    return next(r for r in rows if f"/admin/vms/vm/{vm.id}/change/" in r)


def test_list_is_compact(admin_client, now):
    Exam.objects.create(name="Fine", start=now + timedelta(hours=5), end=now + timedelta(hours=6), students=10)
    store_plan()
    html = admin_client.get("/admin/exams/exam/").content.decode()
    headers = re.findall(r'<th scope="col" class="([^"]*)"', html)
    columns = [re.search(r"column-(\S+)", h).group(1) for h in headers if "column-" in h]
    assert columns == [
        "id",
        "name",
        "start_utc",
        "end_utc",
        "students",
        "vm_counts",
        "requesting_starts",
        "ready_at_start",
        "at_risk",
    ]
    # short headers, the full names as tooltips
    for full in ("VMs requested / VMs ready now / VMs stopped", "requesting starts (UTC)", "shortfall at the start"):
        assert f'title="{full}"' in html


# --- change page ----------------------------------------------------------------------


def test_change_page_of_a_past_exam_speaks_in_the_past_and_frames_the_exam(admin_client, now):
    exam = past_exam_short_by_one(now)
    store_plan()
    html = admin_client.get(f"/admin/exams/exam/{exam.id}/change/").content.decode()
    page = text(html)
    assert "9 of 10 VMs were ready when the exam started (short by 1)" in page
    assert "1 more became ready during the exam, which ended at " + fmt_utc(exam.end) in page
    assert "follow as soon as" not in page and "until the exam ends" not in page
    svg = svg_of(html)
    x0, x1, t0, t1 = axis(svg)
    first_request = min(VM.objects.values_list("requested_at", flat=True))
    assert t0 < first_request and exam.end < t1 < now  # not stretched to "now"
    assert (t1 - t0) < (exam.end - first_request) * 1.2
    for name in ("start", "end"):
        assert x0 < marker_x(svg, name) < x1
    assert marker_x(svg, "now") is None
    assert "planned ready (none: exam over)" in svg and svg.count("<polyline") == 1  # actual only


def test_change_page_of_an_exam_at_risk(admin_client, now):
    exam = Exam.objects.create(
        name="Tight", start=now + timedelta(minutes=10), end=now + timedelta(hours=1), students=500
    )
    store_plan()
    html = admin_client.get(f"/admin/exams/exam/{exam.id}/change/").content.decode()
    assert "VMs can be ready at the start (short by" in text(html)
    assert re.search(r"late VMs planned, the last ready at " + UTC_SECONDS.pattern, text(html))
    svg = svg_of(html)
    x0, x1, t0, t1 = axis(svg)
    assert t0 <= now <= t1
    for name in ("start", "end", "now"):
        assert x0 <= marker_x(svg, name) <= x1
    assert marker_x(svg, "now") < marker_x(svg, "start") < marker_x(svg, "end")


def test_change_page_of_a_fine_future_exam_does_not_squeeze_it(admin_client, now):
    exam = Exam.objects.create(name="Fine", start=now + timedelta(hours=5), end=now + timedelta(hours=6), students=20)
    store_plan()
    html = admin_client.get(f"/admin/exams/exam/{exam.id}/change/").content.decode()
    assert "At risk" not in html
    svg = svg_of(html)
    x0, x1, t0, t1 = axis(svg)
    assert now < t0 < exam.start and exam.end < t1 < exam.end + timedelta(minutes=10)
    assert marker_x(svg, "now") is None
    # the exam takes most of the width
    assert marker_x(svg, "end") - marker_x(svg, "start") > 0.8 * (x1 - x0)


def test_chart_labels_stay_inside_and_apart():
    start = datetime(2030, 5, 1, 9, tzinfo=dt_timezone.utc)
    t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    summary = ExamPlanReport(
        id=1,
        name="Short",
        students=3,
        started=False,
        ended=False,
        start=t("2030-05-01T09:00:00.000Z"),
        end=t("2030-05-01T09:01:00.000Z"),  # a one-minute exam: start and end labels would collide
        requesting_starts_at=t("2030-05-01T08:59:30.000Z"),
        timeline=PlanTimeline(planned=(), actual=(ReadyPoint(t("2030-05-01T08:59:50.000Z"), 3),)),
        planned_at=None,
        stale=False,
        plan_note="",
        vms=VmCounts(0, 0, 0, 0),
        expected_ready_at_start=None,
        shortfall=None,
        planned_requests=0,
        late_planned=0,
        last_late_ready_at=None,
        shortfall_note="",
    )
    svg = str(plan_chart_svg(summary, now=start + timedelta(seconds=30)))
    width = float(re.search(r'width="(\d+)"', svg).group(1))
    labels = {
        name: (float(x), float(y), label)
        for name, x, y, label in re.findall(
            r'<text class="label-(\w+)" x="([\d.]+)" y="([\d.]+)"[^>]*>(\w+<tspan>[^<]*)</tspan>', svg
        )
    }
    assert set(labels) == {"start", "end", "now"}
    labels = {name: (x, y, label.replace("<tspan>", "")) for name, (x, y, label) in labels.items()}
    for x, _, label in labels.values():
        half = 5.6 * len(label) / 2
        assert 0 <= x - half and x + half <= width
    placed = sorted(labels.values())
    # consecutive pairs: the shifted copy is one element shorter
    for (xa, ya, la), (xb, yb, lb) in zip(placed, placed[1:], strict=False):
        assert ya != yb or xa + 5.6 * len(la) / 2 < xb - 5.6 * len(lb) / 2
    t0, t1 = chart_range(summary)
    assert t0 < datetime(2030, 5, 1, 8, 59, 30, tzinfo=dt_timezone.utc) and t1 > datetime(
        2030, 5, 1, 9, 1, tzinfo=dt_timezone.utc
    )


def _form(start, end, students, **extra):
    data = {
        "name": "Tight",
        "start_0": start.strftime("%Y-%m-%d"),
        "start_1": start.strftime("%H:%M:%S"),
        "end_0": end.strftime("%Y-%m-%d"),
        "end_1": end.strftime("%H:%M:%S"),
        "students": str(students),
    }
    data.update(extra)
    return data


def test_add_form_shows_the_vm_impact_and_asks_for_confirmation(admin_client, now):
    start, end = now + timedelta(minutes=10), now + timedelta(hours=1)
    # 500 students 10 minutes from now: at most ~100 VMs on time
    response = admin_client.post("/admin/exams/exam/add/", _form(start, end, 500))
    assert response.status_code == 200 and not Exam.objects.exists()
    page = text(response.content.decode())
    assert re.search(
        r"This change leaves students without a VM at the start - this exam \(start "
        + UTC_SECONDS.pattern
        + r", 500 students\): \d+ VMs on time, short by \d+ \(new\)",
        page,
    ), page
    assert "Save despite the VM impact" in page
    response = admin_client.post("/admin/exams/exam/add/", _form(start, end, 500, confirm_vm_impact="on"))
    assert response.status_code == 302 and Exam.objects.get().students == 500
    # a change with no impact on anyone saves at once
    response = admin_client.post(
        "/admin/exams/exam/add/", _form(now + timedelta(days=2), now + timedelta(days=2, hours=1), 5)
    )
    assert response.status_code == 302 and Exam.objects.count() == 2


def test_change_form_names_the_other_exam_it_makes_short(admin_client, now):
    a = Exam.objects.create(name="A", start=now + timedelta(minutes=30), end=now + timedelta(hours=2), students=100)
    b = Exam.objects.create(name="B", start=now + timedelta(minutes=35), end=now + timedelta(hours=2), students=100)
    response = admin_client.post(f"/admin/exams/exam/{a.id}/change/", _form(a.start, a.end, 280, name="A"))
    assert response.status_code == 200
    page = text(response.content.decode())
    assert f"exam {b.id} (start" in page and "was 100, short by 0" in page
    assert Exam.objects.get(pk=a.id).students == 100  # nothing saved
    response = admin_client.post(
        f"/admin/exams/exam/{a.id}/change/", _form(a.start, a.end, 280, name="A", confirm_vm_impact="on")
    )
    assert response.status_code == 302 and Exam.objects.get(pk=a.id).students == 280
    # a decrease helps everyone: no question asked
    response = admin_client.post(f"/admin/exams/exam/{a.id}/change/", _form(a.start, a.end, 50, name="A"))
    assert response.status_code == 302 and Exam.objects.get(pk=a.id).students == 50


@pytest.mark.django_db
def test_an_exam_recorded_after_the_fact_needs_no_vm_confirmation(admin_client):
    from exams.models import Exam

    form = {
        "name": "past",
        "start_0": "2020-01-01",
        "start_1": "09:00:00",
        "end_0": "2020-01-01",
        "end_1": "11:00:00",
        "students": "30",
    }
    response = admin_client.post("/admin/exams/exam/add/", form)
    assert response.status_code == 302, response.content[:2000]
    assert Exam.objects.filter(name="past").exists()
