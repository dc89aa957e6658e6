"""GET /exams/<id>/plan and GET /vms, and the admin pages built on them."""

from __future__ import annotations

import json
from dataclasses import fields as dataclass_fields
from datetime import timedelta

import pytest
from django.utils import timezone

from exams.models import Exam
from tests.vms.conftest import make_scheduler
from tests.vms.plan_helpers import store_plan
from vms.clock import VirtualClock
from vms.models import VM, ExamPlanSummary, VMState
from vms.plan_summary import ExamPlanReport, iso_ms, summarize
from vms.planner import from_ms, timeline, to_ms
from vms.providers import FakeProvider
from vms.serializers import ExamPlanSerializer

pytestmark = pytest.mark.django_db


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


def vm(exam, state, *, ready_in_s: float, requested_s_ago: float = 60, **fields):
    now = timezone.now()
    return VM.objects.create(
        exam=exam,
        exam_ref=exam.id if exam else fields.pop("exam_ref", None),
        state=state,
        uuid=fields.pop("uuid", None),
        requested_at=now - timedelta(seconds=requested_s_ago),
        ready_at=now + timedelta(seconds=ready_in_s),
        **fields,
    )


def test_plan_of_a_future_exam(staff_api, now):
    exam = Exam.objects.create(
        name="Maths", start=now + timedelta(minutes=15), end=now + timedelta(hours=1), students=100
    )
    vm(exam, VMState.WAITING, ready_in_s=-30, uuid="a")  # ready by now
    vm(exam, VMState.WAITING, ready_in_s=3, uuid="b")  # allocating
    store_plan()
    response = staff_api.get(f"/exams/{exam.id}/plan")
    assert response.status_code == 200
    body = response.json()
    assert body["students"] == 100
    assert body["vms"] == {"requested": 2, "ready": 1, "stopped": 0, "gone": 0}
    assert body["expected_ready_at_start"] == 100 and body["shortfall"] == 0 and not body["at_risk"]
    assert body["planned_requests"] == 98
    run = body["runs"][0]
    assert run["count"] == 98 and run["last_ready_at"] == exam.start.isoformat().replace("+00:00", ".000Z")
    assert body["requesting_starts_at"] <= run["first_request_at"]  # it began with the existing VMs
    planned = body["timeline"]["planned"]
    assert planned[0]["ready"] == 1 and planned[-1]["ready"] == 100
    assert [p["t"] for p in planned] == sorted(p["t"] for p in planned)
    assert body["timeline"]["actual"][-1]["ready"] == 1


def test_plan_shows_the_shortfall_of_an_exam_at_risk(staff_api, now):
    exam = Exam.objects.create(
        name="Soon", start=now + timedelta(minutes=10), end=now + timedelta(hours=1), students=500
    )
    store_plan()
    body = staff_api.get(f"/exams/{exam.id}/plan").json()
    assert body["at_risk"] and 0 < body["expected_ready_at_start"] <= 100
    assert body["shortfall"] == 500 - body["expected_ready_at_start"]
    assert body["late_planned"] > 0
    # 50 minutes: late VMs until 10 minutes before the end, the rest cannot be provided
    assert body["shortfall_note"] == (
        f"{body['late_planned']} late VMs planned, the last ready at {body['last_late_ready_at']}; "
        f"{body['shortfall'] - body['late_planned']} cannot be provided"
    )
    assert body["last_late_ready_at"] <= (exam.end - timedelta(minutes=10)).isoformat().replace("+00:00", ".000Z")


def test_plan_of_a_started_exam_counts_what_was_ready_at_its_start(staff_api, now):
    exam = Exam.objects.create(
        name="Running", start=now - timedelta(minutes=5), end=now + timedelta(hours=1), students=3
    )
    vm(exam, VMState.READY, ready_in_s=-600, uuid="x", used_at=now)
    vm(exam, VMState.READY, ready_in_s=-60, uuid="y", used_at=now)  # came late
    store_plan()
    body = staff_api.get(f"/exams/{exam.id}/plan").json()
    assert body["started"] and body["expected_ready_at_start"] == 1 and body["shortfall"] == 2


def test_a_vm_the_provider_no_longer_knows_stops_counting_as_ready(staff_api, admin_client, now):
    exam = Exam.objects.create(
        name="Running", start=now - timedelta(minutes=5), end=now + timedelta(hours=1), students=2
    )
    vm(exam, VMState.READY, ready_in_s=-600, uuid="x", used_at=now)
    # ready before the start, then a stop answered 404: gone
    vm(exam, VMState.GONE, ready_in_s=-600, uuid="ghost", used_at=now, stopped_at=now)
    store_plan()
    body = staff_api.get(f"/exams/{exam.id}/plan").json()
    assert body["vms"] == {"requested": 2, "ready": 1, "stopped": 0, "gone": 1}
    assert body["expected_ready_at_start"] == 1 and body["shortfall"] == 1
    assert body["timeline"]["actual"][-1]["ready"] == 1
    assert [v["uuid"] for v in staff_api.get("/vms?state=gone").json()["results"]] == ["ghost"]
    page = admin_client.get(f"/admin/exams/exam/{exam.id}/change/").content.decode()
    assert "gone (unknown to the provider) 1" in page


def test_exam_writes_answer_with_the_plan_summary(staff_api, now):
    start = now + timedelta(minutes=10)  # 100 slots from now
    body = {"name": "Soon", "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat(), "students": 80}
    response = staff_api.post("/exams", body, format="json")
    assert response.status_code == 201
    plan = response.json()["plan"]
    assert plan["expected_ready_at_start"] == 80 and plan["shortfall"] == 0 and plan["late_planned"] == 0
    assert plan["requesting_starts_at"] == (start - timedelta(seconds=80 * 6)).isoformat().replace("+00:00", ".000Z")
    assert plan["note"] == "all 80 VMs can be ready at the start"
    exam_id = response.json()["id"]
    # enlarged beyond what fits: the PATCH answer says so at once
    response = staff_api.patch(f"/exams/{exam_id}", {"students": 150}, format="json")
    assert response.status_code == 200
    plan = response.json()["plan"]
    assert 95 <= plan["expected_ready_at_start"] <= 100 and plan["shortfall"] == 150 - plan["expected_ready_at_start"]
    assert plan["late_planned"] == plan["shortfall"] and plan["last_late_ready_at"] > start.isoformat()
    assert plan["note"].startswith(f"{plan['late_planned']} late VMs planned, the last ready at ")
    # a bad write is still a 400 naming the field, without a plan
    response = staff_api.patch(f"/exams/{exam_id}", {"students": -1}, format="json")
    assert response.status_code == 400 and "students" in response.json()


def test_plan_is_for_staff_only_and_404s_for_unknown_exams(api, anon_api, staff_api, now):
    exam = Exam.objects.create(name="Maths", start=now + timedelta(hours=2), end=now + timedelta(hours=3), students=1)
    assert anon_api.get(f"/exams/{exam.id}/plan").status_code == 401
    assert api.get(f"/exams/{exam.id}/plan").status_code == 403
    missing = staff_api.get("/exams/999999/plan")
    assert missing.status_code == 404 and "id" in missing.json()


def test_vms_list_filters_by_exam_and_state(staff_api, now):
    a = Exam.objects.create(name="A", start=now + timedelta(hours=2), end=now + timedelta(hours=3), students=5)
    b = Exam.objects.create(name="B", start=now + timedelta(hours=2), end=now + timedelta(hours=3), students=5)
    vm(a, VMState.WAITING, ready_in_s=-10, uuid="a1")  # ready by now
    vm(a, VMState.WAITING, ready_in_s=30, uuid="a2")
    vm(b, VMState.STOPPED, ready_in_s=-100, uuid="b1", stopped_at=now)
    everything = staff_api.get("/vms").json()
    assert everything["count"] == 3
    assert {v["uuid"]: v["state"] for v in everything["results"]} == {"a1": "ready", "a2": "waiting", "b1": "stopped"}
    only_a = staff_api.get(f"/vms?exam={a.id}").json()
    assert [v["uuid"] for v in only_a["results"]] == ["a1", "a2"]
    ready = staff_api.get("/vms?state=ready").json()
    assert [v["uuid"] for v in ready["results"]] == ["a1"]
    waiting = staff_api.get(f"/vms?exam={a.id}&state=waiting").json()
    assert [v["uuid"] for v in waiting["results"]] == ["a2"]


def test_vms_of_a_deleted_exam_stay_listed_under_its_id(staff_api, now):
    exam = Exam.objects.create(name="Gone", start=now + timedelta(hours=2), end=now + timedelta(hours=3), students=5)
    exam_id = exam.id
    vm(exam, VMState.STOPPED, ready_in_s=-10, uuid="g1", stopped_at=now)
    exam.delete()
    body = staff_api.get(f"/vms?exam={exam_id}").json()
    assert [(v["uuid"], v["exam"], v["exam_ref"]) for v in body["results"]] == [("g1", None, exam_id)]


@pytest.mark.parametrize("query, field", [("state=sleeping", "state"), ("exam=abc", "exam"), ("exam=0", "exam")])
def test_vms_list_rejects_bad_filters_naming_them(staff_api, query, field):
    response = staff_api.get(f"/vms?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_vms_list_is_for_staff_only(api, anon_api):
    assert anon_api.get("/vms").status_code == 401
    assert api.get("/vms").status_code == 403


# --- admin --------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(user)
    return client


def test_exam_admin_lists_vm_columns_and_warns_about_a_shortfall(admin_client, now):
    Exam.objects.create(name="Fine", start=now + timedelta(hours=5), end=now + timedelta(hours=6), students=10)
    Exam.objects.create(name="Tight", start=now + timedelta(minutes=5), end=now + timedelta(hours=1), students=400)
    store_plan()
    page = admin_client.get("/admin/exams/exam/")
    assert page.status_code == 200
    html = page.content.decode()
    for heading in ("vms requested", "vms ready", "vms stopped", "requesting starts", "ready at start"):
        assert heading in html.lower()
    assert "short by" in html and "color:#ba2121" in html


def test_exam_admin_change_page_draws_the_plan_chart(admin_client, now):
    exam = Exam.objects.create(name="Chart", start=now + timedelta(hours=1), end=now + timedelta(hours=2), students=50)
    vm(exam, VMState.WAITING, ready_in_s=-5, uuid="c1")
    store_plan()
    page = admin_client.get(f"/admin/exams/exam/{exam.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "planned ready" in html and "actual ready" in html and "<polyline" in html
    assert ">start<" in html and ">end<" in html


def test_vm_and_call_admins_are_read_only_lists(admin_client, now):
    exam = Exam.objects.create(name="A", start=now + timedelta(hours=1), end=now + timedelta(hours=2), students=1)
    record = vm(exam, VMState.LOST, ready_in_s=5)
    page = admin_client.get("/admin/vms/vm/")
    assert page.status_code == 200 and "lost (start outcome unknown)" in page.content.decode()
    assert admin_client.get("/admin/vms/vm/add/").status_code == 403
    assert admin_client.get(f"/admin/vms/vm/{record.id}/delete/").status_code == 403
    assert admin_client.get("/admin/vms/vm/?state=lost").status_code == 200
    assert admin_client.get("/admin/vms/providercall/").status_code == 200


def test_plan_of_a_past_exam_has_no_planned_timeline_but_its_actual_one(staff_api, now):
    exam = Exam.objects.create(name="Over", start=now - timedelta(hours=2), end=now - timedelta(hours=1), students=2)
    vm(
        exam,
        VMState.STOPPED,
        ready_in_s=-7500,
        requested_s_ago=7800,
        uuid="o1",
        stopped_at=exam.end + timedelta(seconds=5),
    )
    store_plan()
    body = staff_api.get(f"/exams/{exam.id}/plan").json()
    assert body["timeline"]["planned"] == []  # no stray {t: now, ready: 0}
    assert [p["ready"] for p in body["timeline"]["actual"]] == [1, 0]
    assert body["started"] and body["expected_ready_at_start"] == 1 and body["shortfall"] == 1
    assert body["planned_requests"] == 0 and body["runs"] == []


def test_plan_of_a_running_exam_still_plans_from_now(staff_api, now):
    exam = Exam.objects.create(
        name="Running", start=now - timedelta(minutes=5), end=now + timedelta(hours=1), students=1
    )
    vm(exam, VMState.READY, ready_in_s=-600, uuid="r1", used_at=now)
    store_plan()
    planned = staff_api.get(f"/exams/{exam.id}/plan").json()["timeline"]["planned"]
    assert planned and planned[0]["ready"] == 1


# --- POST /exams/preview -------------------------------------------------------------


def test_preview_shows_the_impact_and_saves_nothing(staff_api, now):
    a = Exam.objects.create(name="A", start=now + timedelta(minutes=30), end=now + timedelta(hours=2), students=100)
    b = Exam.objects.create(name="B", start=now + timedelta(minutes=35), end=now + timedelta(hours=2), students=100)
    far = Exam.objects.create(
        name="Far", start=now + timedelta(days=3), end=now + timedelta(days=3, hours=1), students=10
    )
    before = list(Exam.objects.order_by("id").values())
    # A grows to 280 students (300 slots before its start): B, 5 minutes
    # later, gets only what is left of its 350 slots: 70
    body = {"changes": [{"action": "update", "exam": {"id": a.id, "students": 280}}]}
    response = staff_api.post("/exams/preview", body, format="json")
    assert response.status_code == 200, response.json()
    rows = {r["id"]: r for r in response.json()["exams"]}
    assert set(rows) == {a.id, b.id}  # the named one and the one whose outcome changes; not "Far"
    assert (rows[a.id]["on_time_before"], rows[a.id]["shortfall_before"]) == (100, 0)
    assert rows[a.id]["on_time_after"] == 280 and rows[a.id]["shortfall_after"] == 0
    assert rows[b.id]["shortfall_before"] == 0 and 29 <= rows[b.id]["shortfall_after"] <= 31
    assert rows[b.id]["on_time_after"] + rows[b.id]["shortfall_after"] == 100
    assert rows[a.id]["first_request_after"] < rows[a.id]["first_request_before"]
    assert list(Exam.objects.order_by("id").values()) == before and not VM.objects.exists()
    # create (no id) and delete together
    body = {
        "changes": [
            {"action": "delete", "exam": {"id": far.id}},
            {
                "action": "create",
                "exam": {
                    "name": "New",
                    "start": (now + timedelta(minutes=20)).isoformat(),
                    "end": (now + timedelta(hours=1)).isoformat(),
                    "students": 50,
                },
            },
        ]
    }
    rows = staff_api.post("/exams/preview", body, format="json").json()["exams"]
    new = next(r for r in rows if r["id"] is None)
    assert new["on_time_before"] is None and new["on_time_after"] == 50 and new["shortfall_after"] == 0
    gone = next(r for r in rows if r["id"] == far.id)
    assert gone["deleted"] and gone["on_time_after"] is None and gone["on_time_before"] == 10
    assert list(Exam.objects.order_by("id").values()) == before


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "changes"),
        ({"changes": []}, "changes"),
        ({"changes": "x"}, "changes"),
        ({"changes": [{"action": "rename", "exam": {"id": 1}}]}, "changes[0].action"),
        ({"changes": [{"action": "update", "exam": {"students": 5}}]}, "changes[0].exam.id"),
        ({"changes": [{"action": "update", "exam": {"id": "{id}", "students": -1}}]}, "changes[0].exam.students"),
        (
            {"changes": [{"action": "update", "exam": {"id": "{id}", "end": "2000-01-01T00:00:00Z"}}]},
            "changes[0].exam.end",
        ),
        (
            {"changes": [{"action": "create", "exam": {"name": "x", "start": "tomorrow", "end": "x", "students": 1}}]},
            "changes[0].exam.start",
        ),
        ({"changes": [{"at": "2030-01-01T00:00:00Z", "action": "delete", "exam": {"id": "{id}"}}]}, "changes[0]"),
    ],
)
def test_preview_rejects_bad_changes_naming_the_field(staff_api, now, body, field):
    exam = Exam.objects.create(name="A", start=now + timedelta(minutes=30), end=now + timedelta(hours=2), students=1)
    body = json.loads(json.dumps(body).replace('"{id}"', str(exam.id)))
    response = staff_api.post("/exams/preview", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json(), response.json()


@pytest.mark.parametrize(
    "change",
    [
        {"action": "update", "exam": {"id": 999999, "students": 5}},
        {"action": "delete", "exam": {"id": 999999}},
        {
            "action": "create",
            "exam": {
                "id": "{id}",
                "name": "B",
                "start": "2030-01-01T09:00:00Z",
                "end": "2030-01-01T10:00:00Z",
                "students": 1,
            },
        },
    ],
)
def test_a_preview_change_that_does_not_fit_the_stored_exams_is_a_409_naming_it(staff_api, now, change):
    exam = Exam.objects.create(name="A", start=now + timedelta(minutes=30), end=now + timedelta(hours=2), students=1)
    body = json.loads(json.dumps({"changes": [change]}).replace('"{id}"', str(exam.id)))
    response = staff_api.post("/exams/preview", body, format="json")
    assert response.status_code == 409, response.json()
    assert "changes[0].exam.id" in response.json(), response.json()


def test_preview_is_for_staff_only(api, anon_api):
    body = {"changes": [{"action": "delete", "exam": {"id": 1}}]}
    assert anon_api.post("/exams/preview", body, format="json").status_code == 401
    assert api.post("/exams/preview", body, format="json").status_code == 403


# --- reads come from the stored plan summary, never from the planner ----------------


def _ms_iso(t) -> str:
    return iso_ms(t)


def test_a_scheduler_pass_stores_the_summary_the_plan_endpoint_shows(staff_api, now):
    clock = VirtualClock(now)
    provider = FakeProvider(clock=clock, allocation_interval_s=6, requests_per_second=3)
    exam = Exam.objects.create(name="Maths", start=now + timedelta(hours=1), end=now + timedelta(hours=2), students=50)
    scheduler = make_scheduler(clock, provider)
    try:
        scheduler.run_pass()
        plan_ = scheduler.plan
        body = staff_api.get(f"/exams/{exam.id}/plan").json()
        assert body["planned_at"] == _ms_iso(now) and not body["stale"]
        assert body["plan_note"] == f"as planned by the VM scheduler at {_ms_iso(now)}"
        ep = plan_.exam(exam.id)
        assert (body["expected_ready_at_start"], body["shortfall"], body["at_risk"]) == (50, 0, False)
        assert body["planned_requests"] == 50 and [r["count"] for r in body["runs"]] == [50]
        assert body["requesting_starts_at"] == _ms_iso(from_ms(ep.requesting_starts_ms))
        assert body["runs"][0]["last_ready_at"] == _ms_iso(exam.start)
        # the planned line is the planner's own timeline of that pass
        expected = [{"t": _ms_iso(from_ms(t)), "ready": n} for t, n in timeline(plan_, exam.id)]
        assert body["timeline"]["planned"] == expected

        # an edit the scheduler has not seen yet: the old figures, said to be stale
        Exam.objects.filter(pk=exam.pk).update(students=80)
        body = staff_api.get(f"/exams/{exam.id}/plan").json()
        assert body["stale"] and body["planned_requests"] == 50
        assert "before its last change" in body["plan_note"]
        clock.advance_to(clock.now() + timedelta(seconds=1))
        scheduler.exams_changed()
        scheduler.run_pass()
        body = staff_api.get(f"/exams/{exam.id}/plan").json()
        assert not body["stale"] and body["planned_requests"] == 80
        assert body["planned_at"] == _ms_iso(now + timedelta(seconds=1))

        # a replan that changes nothing for the exam does not rewrite it
        replans = scheduler.stats.replans
        clock.advance_to(clock.now() + timedelta(seconds=1))
        scheduler.exams_changed()
        scheduler.run_pass()
        assert scheduler.stats.replans == replans + 1
        assert ExamPlanSummary.objects.get(exam_id=exam.id).planned_at == now + timedelta(seconds=1)

        # a deleted exam leaves the plan, and its summary goes with it
        exam.delete()
        clock.advance_to(clock.now() + timedelta(seconds=1))
        scheduler.exams_changed()
        scheduler.run_pass()
        assert not ExamPlanSummary.objects.exists()
    finally:
        scheduler.close()


def test_without_a_stored_summary_the_plan_says_so_instead_of_planning(staff_api, now, monkeypatch):
    exam = Exam.objects.create(name="New", start=now + timedelta(hours=1), end=now + timedelta(hours=2), students=5)
    _refuse_planning(monkeypatch)
    body = staff_api.get(f"/exams/{exam.id}/plan").json()
    assert body["planned_at"] is None and not body["stale"]
    assert body["plan_note"].startswith("not planned yet: the VM scheduler has not planned this exam")
    assert (body["expected_ready_at_start"], body["shortfall"], body["at_risk"]) == (None, None, None)
    assert body["runs"] == [] and body["timeline"]["planned"] == [] and body["planned_requests"] == 0
    assert body["students"] == 5 and body["vms"]["requested"] == 0


def _refuse_planning(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a read ran the planner")

    for target in ("vms.planner.plan", "vms.selectors.plan", "vms.planner.timeline", "vms.selectors.current_plan"):
        monkeypatch.setattr(target, refuse)


def test_plan_endpoint_and_admin_pages_never_run_the_planner(staff_api, admin_client, now, monkeypatch):
    tight = Exam.objects.create(
        name="Tight", start=now + timedelta(minutes=10), end=now + timedelta(hours=1), students=500
    )
    fine = Exam.objects.create(name="Fine", start=now + timedelta(hours=5), end=now + timedelta(hours=6), students=10)
    vm(fine, VMState.WAITING, ready_in_s=-5, uuid="f1")
    store_plan()
    _refuse_planning(monkeypatch)
    body = staff_api.get(f"/exams/{tight.id}/plan").json()
    assert body["at_risk"] and body["late_planned"] > 0 and body["timeline"]["planned"]
    page = admin_client.get("/admin/exams/exam/")
    assert page.status_code == 200 and "short by" in page.content.decode()
    for exam in (tight, fine):
        page = admin_client.get(f"/admin/exams/exam/{exam.id}/change/")
        assert page.status_code == 200
        html = page.content.decode()
        assert '<svg xmlns="http://www.w3.org/2000/svg" class="vm-plan-chart"' in html and "<polyline" in html
        assert "as planned by the VM scheduler at " in html


def test_admin_pages_say_when_nothing_is_planned_yet(admin_client, now, monkeypatch):
    exam = Exam.objects.create(name="New", start=now + timedelta(hours=1), end=now + timedelta(hours=2), students=5)
    _refuse_planning(monkeypatch)
    page = admin_client.get("/admin/exams/exam/").content.decode()
    assert "not planned yet" in page  # the tooltip of the empty "at start" cell
    page = admin_client.get(f"/admin/exams/exam/{exam.id}/change/").content.decode()
    assert "Plan: not planned yet: the VM scheduler has not planned this exam" in page
    assert "vm-plan-chart" in page


def test_summarize_draws_the_planners_timeline_for_every_exam(now):
    """One pass over the VMs gives what ``timeline`` gives exam by exam,
    including VMs the plan stops or moves to another exam."""
    a = Exam.objects.create(name="A", start=now + timedelta(minutes=30), end=now + timedelta(hours=1), students=3)
    b = Exam.objects.create(name="B", start=now + timedelta(minutes=40), end=now + timedelta(hours=1), students=20)
    c = Exam.objects.create(name="C", start=now + timedelta(minutes=3), end=now + timedelta(hours=1), students=60)
    for i in range(8):  # 5 more than A needs: moved to B or stopped
        vm(a, VMState.WAITING, ready_in_s=-60 + 10 * i, uuid=f"a{i}")
    vm(c, VMState.READY, ready_in_s=-100, uuid="c0")
    plan_ = store_plan(now)
    alive = [
        (v.id, v.exam_id, to_ms(v.ready_at)) for v in VM.objects.filter(state__in=[VMState.WAITING, VMState.READY])
    ]
    summaries = summarize(plan_, vms=alive, max_points=10_000)
    assert plan_.assigns or plan_.stops
    assert set(summaries) == {a.id, b.id, c.id}
    for exam_id, summary in summaries.items():
        assert list(summary.timeline) == timeline(plan_, exam_id, vms=alive), exam_id
    # and what is stored is what the endpoint's reader hands out
    stored = ExamPlanSummary.objects.get(exam_id=c.id)
    assert stored.shortfall == plan_.exam(c.id).shortfall > 0
    assert stored.shortfall_note == plan_.exam(c.id).shortfall_note()


def test_plan_schema_documents_every_field(staff_api):
    schema = staff_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    ok = schema["paths"]["/exams/{id}/plan"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    component = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    fields = set(ExamPlanSerializer().fields)
    assert set(component["properties"]) == fields
    assert {f.name for f in dataclass_fields(ExamPlanReport)} | {"at_risk"} == fields
    for name in ("planned_at", "stale", "plan_note", "expected_ready_at_start", "shortfall", "at_risk"):
        assert component["properties"][name].get("description"), name
    for name in ("planned_at", "expected_ready_at_start", "shortfall", "at_risk", "requesting_starts_at"):
        assert component["properties"][name].get("nullable"), name
