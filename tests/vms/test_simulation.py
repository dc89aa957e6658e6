"""``schedule_vms --simulate``: scenarios with changes, judged from the call log."""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from django.core.management import CommandError, call_command

from exams.models import Exam
from tests.data import EXAMPLE_SCENARIO as EXAMPLE
from tests.factories import make_exam
from vms.models import VM, ProviderCall, VMState
from vms.providers import replay_calls
from vms.simulation import Progress, ScenarioError, make_scenario, parse_scenario, simulate

pytestmark = pytest.mark.django_db

EXAMPLE_DATA = json.loads(EXAMPLE.read_text())


def t(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def by_id(report) -> dict:
    return {e["id"]: e for e in report["exams"]}


def check_log(report, *, rps: int = 3, interval: float = 6.0) -> dict:
    """What every simulated report must satisfy, from its call log alone."""
    calls = report["calls"]
    assert [c["t"] for c in calls] == sorted(c["t"] for c in calls)
    assert all(c["t"].endswith("Z") and len(c["t"]) == len("2026-03-02T00:00:00.000Z") for c in calls)
    # strict replay: refuses any log the provider's rate limit would have refused
    replay = replay_calls(calls, allocation_interval_s=interval, requests_per_second=rps)
    assert all(v["stopped_at"] is not None for v in replay.values())  # nothing leaked
    for e in report["exams"]:
        assert e["ready_at_start"] <= e["students_at_start"]  # never one more
        assert e["shortfall"] == e["students_at_start"] - e["ready_at_start"]
    starts = Counter(c["vm"] for c in calls if c["endpoint"] == "start" and c["outcome"] == "ok")
    assert all(n == 1 for n in starts.values())
    return replay


def test_the_example_scenario(tmp_path):
    report = simulate(parse_scenario(EXAMPLE_DATA))
    replay = check_log(report)
    exams = by_id(report)
    # the update at 03:00 is in force; 1 and 2 are exact
    assert (exams[1]["ready_at_start"], exams[2]["ready_at_start"]) == (300, 150)
    # exam 4 appears at 07:55 needing 400 by 08:20 while 1 and 2 take the
    # allocator until 08:00: 200 fit, earliest deadline first, so exam 3
    # (08:30) keeps only the 10 minutes after exam 4's deadline
    assert (exams[4]["ready_at_start"], exams[4]["shortfall"]) == (200, 200)
    assert (exams[3]["ready_at_start"], exams[3]["shortfall"]) == (100, 100)
    calls = report["calls"]
    first_for_4 = min(c["t"] for c in calls if c["exam"] == 4)
    assert t(first_for_4) >= t("2026-03-02T07:55:00Z")
    # late students still get a VM before their exam ends
    ready = defaultdict(list)
    for c in calls:
        if c["endpoint"] == "start":
            ready[c["exam"]].append(replay[c["vm"]]["ready_at"])
    assert sum(1 for r in ready[4] if r < t("2026-03-02T09:00:00Z")) == 400
    assert sum(1 for r in ready[3] if r < t("2026-03-02T09:30:00Z")) == 200
    # VMs go from each end, earliest end first, 3 a second
    stops = [c for c in calls if c["endpoint"] == "stop"]
    assert stops[0]["t"] == "2026-03-02T09:00:00.000Z"
    assert [c["exam"] for c in stops[:150]] == [2] * 150
    assert report["vm_seconds"] > 0


def test_the_example_file_through_the_command(tmp_path):
    out = tmp_path / "report.json"
    stdout = io.StringIO()
    call_command("schedule_vms", "--simulate", str(EXAMPLE), "--report", str(out), "--quiet", stdout=stdout)
    report = json.loads(out.read_text())
    check_log(report)
    assert {e["id"]: e["ready_at_start"] for e in report["exams"]} == {1: 300, 2: 150, 3: 100, 4: 200}
    assert "2 with a shortfall" in stdout.getvalue()


def test_a_shrunk_exams_spare_vms_are_rebound_and_logged_as_assign():
    scenario = parse_scenario(
        {
            "start": "2030-01-01T11:00:00Z",
            "exams": [
                {"id": 1, "name": "A", "start": "2030-01-01T12:00:00Z", "end": "2030-01-01T13:00:00Z", "students": 100},
                {"id": 2, "name": "B", "start": "2030-01-01T12:10:00Z", "end": "2030-01-01T13:00:00Z", "students": 10},
            ],
            "changes": [
                {"at": "2030-01-01T11:55:00Z", "action": "update", "exam": {"id": 1, "students": 20}},
                {"at": "2030-01-01T11:55:00Z", "action": "update", "exam": {"id": 2, "students": 200}},
            ],
        }
    )
    report = simulate(scenario)
    check_log(report)
    assigns = [c for c in report["calls"] if c["endpoint"] == "assign"]
    assert assigns and {c["exam"] for c in assigns} == {2}
    assert all(c["t"] == "2030-01-01T11:55:00.000Z" for c in assigns)
    moved = {c["vm"] for c in assigns}
    started_for = {c["vm"]: c["exam"] for c in report["calls"] if c["endpoint"] == "start"}
    assert {started_for[vm] for vm in moved} == {1}  # they were A's VMs
    exams = by_id(report)
    assert exams[1]["ready_at_start"] == 20
    # from 11:55 the allocator has 150 slots to 12:10 (A's VMs still queued
    # take some of them and are re-bound with the rest of A's surplus): B gets
    # those 150 plus A's 30 ready spare VMs
    assert exams[2]["ready_at_start"] == 180 and len(assigns) >= 30


def test_deletes_creates_and_moves_are_applied_at_their_times():
    scenario = parse_scenario(
        {
            "start": "2030-01-01T06:00:00Z",
            "exams": [
                {
                    "id": 1,
                    "name": "Kept",
                    "start": "2030-01-01T09:00:00Z",
                    "end": "2030-01-01T10:00:00Z",
                    "students": 120,
                },
                {
                    "id": 2,
                    "name": "Deleted",
                    "start": "2030-01-01T09:00:00Z",
                    "end": "2030-01-01T10:00:00Z",
                    "students": 80,
                },
                {
                    "id": 3,
                    "name": "Moved",
                    "start": "2030-01-01T11:00:00Z",
                    "end": "2030-01-01T12:00:00Z",
                    "students": 50,
                },
            ],
            "changes": [
                {"at": "2030-01-01T08:55:00Z", "action": "delete", "exam": {"id": 2}},
                {"at": "2030-01-01T09:30:00Z", "action": "update", "exam": {"id": 3, "start": "2030-01-01T10:30:00Z"}},
                {
                    "at": "2030-01-01T09:40:00Z",
                    "action": "create",
                    "exam": {
                        "id": 9,
                        "name": "New",
                        "start": "2030-01-01T10:00:00Z",
                        "end": "2030-01-01T10:45:00Z",
                        "students": 30,
                    },
                },
            ],
        }
    )
    report = simulate(scenario)
    check_log(report)
    exams = by_id(report)
    assert 2 not in exams
    assert {i: e["ready_at_start"] for i, e in exams.items()} == {1: 120, 3: 50, 9: 30}
    calls = report["calls"]
    deleted_stops = [c["t"] for c in calls if c["endpoint"] == "stop" and c["exam"] == 2]
    assert deleted_stops and min(deleted_stops) == "2030-01-01T08:55:00.000Z"  # at once
    assert min(c["t"] for c in calls if c["exam"] == 9) >= "2030-01-01T09:40:00.000Z"
    assert report["summary"]["simulated_until"] >= "2030-01-01T12:00:00.000Z"


def test_changes_while_exams_run():
    scenario = parse_scenario(
        {
            "start": "2030-01-01T08:00:00Z",
            "exams": [
                {
                    "id": 1,
                    "name": "Running already",
                    "start": "2030-01-01T07:50:00Z",
                    "end": "2030-01-01T09:00:00Z",
                    "students": 30,
                },
                {
                    "id": 2,
                    "name": "Empty, then not",
                    "start": "2030-01-01T09:00:00Z",
                    "end": "2030-01-01T10:00:00Z",
                    "students": 0,
                },
                {
                    "id": 3,
                    "name": "Cut short",
                    "start": "2030-01-01T08:30:00Z",
                    "end": "2030-01-01T10:00:00Z",
                    "students": 40,
                },
                {
                    "id": 4,
                    "name": "Shrinks",
                    "start": "2030-01-01T08:40:00Z",
                    "end": "2030-01-01T10:00:00Z",
                    "students": 50,
                },
                {
                    "id": 5,
                    "name": "Deleted",
                    "start": "2030-01-01T08:45:00Z",
                    "end": "2030-01-01T10:00:00Z",
                    "students": 20,
                },
            ],
            "changes": [
                {
                    "at": "2030-01-01T08:35:00Z",
                    "action": "update",
                    "exam": {"id": 3, "end": "2030-01-01T08:35:00.001Z"},
                },
                {"at": "2030-01-01T08:50:00Z", "action": "update", "exam": {"id": 4, "students": 10}},
                {"at": "2030-01-01T08:55:00Z", "action": "delete", "exam": {"id": 5}},
                {
                    "at": "2030-01-01T08:56:00Z",
                    "action": "update",
                    "exam": {"id": 2, "students": 5, "start": "2030-01-01T08:58:00Z"},
                },
            ],
        }
    )
    report = simulate(scenario)
    replay = check_log(report)
    exams = by_id(report)
    assert {i: (e["students_at_start"], e["ready_at_start"]) for i, e in exams.items()} == {
        1: (30, 0),
        2: (5, 5),
        3: (40, 40),
        4: (50, 50),
    }
    calls = report["calls"]
    # an exam already running gets its VMs as fast as possible, before its end
    ready_1 = [replay[c["vm"]]["ready_at"] for c in calls if c["endpoint"] == "start" and c["exam"] == 1]
    assert len(ready_1) == 30 and max(ready_1) < t("2030-01-01T09:00:00Z")
    assert min(c["t"] for c in calls if c["exam"] == 1) == "2030-01-01T08:00:00.000Z"

    def stops(exam_id):
        return [c["t"] for c in calls if c["endpoint"] == "stop" and c["exam"] == exam_id]

    assert min(stops(3)) == "2030-01-01T08:35:00.001Z" and len(stops(3)) == 40  # the new end
    # 40 of 50 go at once when exam 4 shrinks during the exam; 10 at its end
    assert sum(1 for x in stops(4) if x < "2030-01-01T10:00:00.000Z") == 40
    assert min(stops(4)) == "2030-01-01T08:50:00.000Z"
    assert min(stops(5)) == "2030-01-01T08:55:00.000Z" and len(stops(5)) == 20
    assert report["summary"]["surplus_at_start"] == 0


def test_the_scenarios_provider_settings_are_used():
    scenario = parse_scenario(
        {
            "start": "2030-01-01T06:00:00Z",
            "exams": [
                {"id": 1, "name": "A", "start": "2030-01-01T07:00:00Z", "end": "2030-01-01T08:00:00Z", "students": 10}
            ],
            "provider": {"allocation_interval_s": 3, "requests_per_second": 2},
        }
    )
    report = simulate(scenario)
    check_log(report, rps=2, interval=3)
    first = min(c["t"] for c in report["calls"] if c["endpoint"] == "start")
    assert first == "2030-01-01T06:59:30.000Z"  # 10 VMs x 3 s before the start
    assert by_id(report)[1]["ready_at_start"] == 10


def test_existing_exams_and_vms_are_left_untouched():
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    exam = make_exam(id=1, name="Real", start=now, end=now + timedelta(hours=1), students=7)
    vm = VM.objects.create(exam=exam, exam_ref=1, uuid="real-vm", state=VMState.READY, requested_at=now, ready_at=now)
    ProviderCall.objects.create(t=now, endpoint="start", vm=vm, vm_uuid="real-vm", exam_ref=1, outcome="ok")
    report = simulate(parse_scenario(EXAMPLE_DATA))
    assert len(report["calls"]) > 1000
    assert list(Exam.objects.values_list("id", "name", "students")) == [(1, "Real", 7)]
    assert list(VM.objects.values_list("uuid", "state")) == [("real-vm", VMState.READY)]
    assert ProviderCall.objects.count() == 1


def test_same_scenario_and_seed_give_the_same_report():
    a = simulate(parse_scenario(EXAMPLE_DATA), seed=3)
    b = simulate(parse_scenario(EXAMPLE_DATA), seed=3)
    assert a["calls"] == b["calls"] and a["exams"] == b["exams"]


def test_generated_scenario_with_changes_runs_clean():
    data = make_scenario(6, days=1, vms=1500, changes=4, seed=5)
    assert sum(e["students"] for e in data["exams"]) == 1500
    assert make_scenario(6, days=1, vms=1500, changes=4, seed=5) == data  # reproducible
    report = simulate(parse_scenario(data))
    check_log(report)
    assert report["summary"]["never_stopped"] == 0


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.pop("start"), "start"),
        (lambda d: d.update(start="yesterday"), "start"),
        (lambda d: d["exams"][0].update(end="2026-03-02T07:00:00Z"), "exams[0].end"),
        (lambda d: d["exams"][1].update(students=-1), "exams[1].students"),
        (lambda d: d["exams"][1].update(students=100_000), "exams[1].students"),
        (lambda d: d["exams"][2].update(id=1), "exams[2].id"),
        (lambda d: d["exams"][2].pop("name"), "exams[2].name"),
        (lambda d: d["changes"][0].update(action="rename"), "changes[0].action"),
        (lambda d: d["changes"][0]["exam"].update(id=99), "changes[0].exam.id"),
        (lambda d: d["changes"][1]["exam"].update(id=1), "changes[1].exam.id"),
        (lambda d: d["changes"][0].update(at="2026-03-01T00:00:00Z"), "changes[0].at"),
        (lambda d: d.update(provider={"requests_per_second": 0}), "provider.requests_per_second"),
        (lambda d: d.update(provider={"allocation_interval_s": "6"}), "provider.allocation_interval_s"),
        (lambda d: d.update(extra=1), None),
    ],
)
def test_bad_scenarios_are_rejected_naming_the_field(mutate, field):
    data = json.loads(json.dumps(EXAMPLE_DATA))
    mutate(data)
    with pytest.raises(ScenarioError) as excinfo:
        parse_scenario(data)
    assert excinfo.value.field == field
    if field:
        assert field in excinfo.value.message


def test_the_command_reports_a_bad_scenario_clearly(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"start": "2026-03-02T00:00:00Z", "exams": [{"id": 1}]}')
    with pytest.raises(CommandError, match=r"exams\[0\]\.name: required"):
        call_command("schedule_vms", "--simulate", str(bad), "--report", str(tmp_path / "r.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("schedule_vms", "--simulate", str(tmp_path / "broken.json"), "--report", "-")
    with pytest.raises(CommandError, match="--report"):
        call_command("schedule_vms", "--simulate", str(bad))


def test_progress_is_one_line_on_a_terminal_and_silent_otherwise():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    simulate(parse_scenario(EXAMPLE_DATA), progress=Progress(stream=tty, every_s=0))
    text = tty.getvalue()
    assert text.startswith("\rsimulating ") and "starts" in text and text.endswith("\n")
    assert "\n" not in text[:-1]
    pipe = io.StringIO()
    simulate(parse_scenario(EXAMPLE_DATA), progress=Progress(stream=pipe, every_s=0))
    assert pipe.getvalue() == ""


def test_make_scenario_command_writes_a_valid_scenario(tmp_path):
    out = tmp_path / "s.json"
    stdout = io.StringIO()
    call_command(
        "schedule_vms",
        "--make-scenario",
        "12",
        "--days",
        "2",
        "--vms",
        "5000",
        "--changes",
        "3",
        "--out",
        str(out),
        stdout=stdout,
    )
    data = json.loads(out.read_text())
    scenario = parse_scenario(data)
    assert len(scenario.exams) == 12 and sum(e.students for e in scenario.exams) == 5000
    assert len(scenario.changes) == 3
    assert "12 exams, 5000 students" in stdout.getvalue()


def test_each_shortfall_has_its_cause_in_the_report_and_summary(tmp_path):
    from vms.simulation import CAUSE_BUSY, CAUSE_DURING, CAUSE_TOO_CLOSE

    day = "2031-01-06T"
    scn = {
        "start": day + "06:00:00Z",
        "exams": [
            # 2,500 VMs need 4h10m: exam 2 right after gets the allocator's leftovers
            {"id": 1, "name": "big", "start": day + "10:00:00Z", "end": day + "12:00:00Z", "students": 2500},
            {"id": 2, "name": "behind", "start": day + "10:05:00Z", "end": day + "12:00:00Z", "students": 100},
            {"id": 4, "name": "moved", "start": day + "12:00:00Z", "end": day + "13:00:00Z", "students": 5},
        ],
        "changes": [
            {
                "at": day + "09:50:00Z",
                "action": "create",
                "exam": {"id": 3, "name": "late", "start": day + "11:00:00Z", "end": day + "12:00:00Z", "students": 50},
            },
            {"at": day + "10:58:00Z", "action": "update", "exam": {"id": 3, "students": 80}},
            # moved after it started, to a minute later (10 slots), with more students
            {
                "at": day + "12:30:00Z",
                "action": "update",
                "exam": {"id": 4, "start": day + "12:31:00Z", "end": day + "13:30:00Z", "students": 15},
            },
        ],
    }
    src, dst = tmp_path / "s.json", tmp_path / "r.json"
    src.write_text(json.dumps(scn))
    out = io.StringIO()
    call_command("schedule_vms", "--simulate", str(src), "--report", str(dst), "--quiet", stdout=out)
    report = json.loads(dst.read_text())
    by_id = {e["id"]: e for e in report["exams"]}
    assert by_id[1]["shortfall"] > 0 and by_id[1]["shortfall_cause"] == CAUSE_TOO_CLOSE  # 4 h for 4h10m of work
    assert by_id[2]["shortfall"] > 0 and by_id[2]["shortfall_cause"] == CAUSE_BUSY
    assert by_id[3]["shortfall"] > 0 and by_id[3]["shortfall_cause"] == CAUSE_TOO_CLOSE  # +30 two minutes before
    assert by_id[4]["shortfall"] > 0 and by_id[4]["shortfall_cause"] == CAUSE_DURING
    assert {s["id"]: s["cause"] for s in report["summary"]["shortfalls"]} == {
        1: CAUSE_TOO_CLOSE,
        2: CAUSE_BUSY,
        3: CAUSE_TOO_CLOSE,
        4: CAUSE_DURING,
    }
    assert f"#2 {by_id[2]['ready_at_start']}/100 ({CAUSE_BUSY})" in out.getvalue()


@pytest.mark.parametrize(
    "item,field",
    [
        ({"at": "2030-01-01T11:00:00Z", "action": "scheduler_down"}, "changes[0].seconds"),
        ({"at": "2030-01-01T11:00:00Z", "action": "scheduler_down", "seconds": 0}, "changes[0].seconds"),
        ({"at": "2030-01-01T11:00:00Z", "action": "scheduler_down", "seconds": "10"}, "changes[0].seconds"),
        ({"at": "2030-01-01T11:00:00Z", "action": "scheduler_down", "seconds": 5, "exam": {"id": 1}}, "changes[0]"),
        ({"at": "yesterday", "action": "scheduler_down", "seconds": 5}, "changes[0].at"),
    ],
)
def test_bad_scheduler_down_items_are_rejected_naming_the_field(item, field):
    data = {"start": "2030-01-01T10:00:00Z", "exams": [], "changes": [item]}
    with pytest.raises(ScenarioError) as excinfo:
        parse_scenario(data)
    assert excinfo.value.field == field


def test_scheduler_down_items_are_parsed_apart_from_exam_changes():
    data = {
        "start": "2030-01-01T10:00:00Z",
        "exams": [],
        "changes": [{"at": "2030-01-01T11:00:00Z", "action": "scheduler_down", "seconds": 30}],
    }
    scenario = parse_scenario(data)
    assert scenario.changes == () and len(scenario.downs) == 1 and scenario.downs[0].fields == {"seconds": 30}
