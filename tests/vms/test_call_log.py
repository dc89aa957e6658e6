"""Every VM start, stop and re-binding of the live scheduler is one INFO line
with the exam and VM ids as record fields (issue 8, point 3); the simulation's
calls, which reach no real provider, are not logged."""

from __future__ import annotations

import json
import logging

import pytest

from core.logs import JsonFormatter
from tests.factories import make_exam
from tests.vms.conftest import at, drive
from vms.models import VM, CallEndpoint, ProviderCall
from vms.simulation import parse_scenario, simulate

pytestmark = pytest.mark.django_db


@pytest.fixture
def vm_lines(caplog):
    caplog.set_level(logging.INFO, logger="vms.scheduler")

    def lines(event: str) -> list[dict]:
        return [
            json.loads(JsonFormatter().format(r))
            for r in caplog.records
            if r.name == "vms.scheduler" and getattr(r, "event", None) == event
        ]

    return lines


def test_starts_and_stops_are_logged_with_exam_and_vm(vclock, scheduler_factory, vm_lines):
    make_exam(id=7, start=at(10), students=3, end=at(20))
    drive(scheduler_factory(), vclock, at(25))
    vms = {vm.id: vm for vm in VM.objects.all()}
    assert len(vms) == 3
    started, stopped = vm_lines("vm_started"), vm_lines("vm_stopped")
    assert sorted(line["vm"] for line in started) == sorted(vms) == sorted(line["vm"] for line in stopped)
    for line in started + stopped:
        assert line["level"] == "INFO" and line["exam"] == 7 and line["uuid"] == vms[line["vm"]].uuid
        assert str(line["vm"]) in line["message"] and "exam 7" in line["message"]


def test_a_re_binding_is_logged_with_both_exams(vclock, scheduler_factory, vm_lines):
    # At 07:59 in the acceptance scenario's terms: exam 1 drops from 60 to 20
    # students and exam 2 appears 2 minutes after exam 1: surplus fresh VMs
    # of exam 1 are re-bound to exam 2.
    first = make_exam(id=1, start=at(30), students=60, end=at(90))
    scheduler = scheduler_factory()
    drive(scheduler, vclock, at(29))
    first.students = 20
    first.save()
    make_exam(id=2, start=at(31), students=30, end=at(90))
    drive(scheduler, vclock, at(35))
    assigns = list(ProviderCall.objects.filter(endpoint=CallEndpoint.ASSIGN).values_list("vm_id", "exam_ref"))
    assert assigns, "the scenario must re-bind VMs"
    rebound = vm_lines("vm_rebound")
    assert sorted((line["vm"], line["exam"]) for line in rebound) == sorted(assigns)
    assert all(line["from_exam"] == 1 and line["exam"] == 2 and line["level"] == "INFO" for line in rebound)


def test_the_simulation_logs_no_vm_calls(vm_lines):
    scenario = parse_scenario(
        {
            "start": "2026-03-02T07:00:00Z",
            "exams": [
                {"id": 1, "name": "M", "start": "2026-03-02T08:00:00Z", "end": "2026-03-02T08:30:00Z", "students": 5}
            ],
        }
    )
    report = simulate(scenario)
    assert any(c["endpoint"] == "start" for c in report["calls"])
    assert vm_lines("vm_started") == [] and vm_lines("vm_stopped") == []
