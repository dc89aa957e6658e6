"""Store the plan summary as a scheduler pass does, without its provider calls.

Readers (``GET /exams/<id>/plan``, the admin) show what the VM scheduler
stored when it last planned; tests that are about what they show plan "now"
from the database and store it the way ``Scheduler._store_summary`` does.
``tests/vms/test_api.py`` checks that a real scheduler pass stores the same.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from vms import services
from vms.models import VMState
from vms.plan_summary import summarize
from vms.planner import Plan, to_ms
from vms.selectors import current_plan, planner_config_from_settings, vms_alive


def store_plan(now: datetime | None = None) -> Plan:
    now = now or timezone.now()
    config = planner_config_from_settings()
    plan_ = current_plan(now=now, config=config)
    alive = [
        (v.id, v.exam_id, v.ready_ms)
        for v in vms_alive(now_ms=to_ms(now), interval_ms=config.allocation_interval_ms)
        if v.state in (VMState.WAITING, VMState.READY)
    ]
    summaries = summarize(plan_, vms=alive)
    services.exam_plan_summaries_store(summaries=list(summaries.values()), planned_at=now, keep_only=list(summaries))
    return plan_
