from __future__ import annotations

from datetime import datetime, timezone

import pytest

from exams import signals
from exams.services import exam_create
from vms.signals import on_exam_changed


@pytest.fixture
def make_exam(db):
    def make(**overrides):
        values = {
            "name": "Calculus I",
            "start": datetime(2030, 6, 1, 9, 0, tzinfo=timezone.utc),
            "end": datetime(2030, 6, 1, 11, 0, tzinfo=timezone.utc),
            "students": 120,
        }
        values.update(overrides)
        return exam_create(**values)

    return make


@pytest.fixture
def exam_changed():
    """Record the exam ids ``exams.signals.exam_changed`` goes out with."""
    calls: list[int] = []

    def record(sender, *, exam_id, **kwargs):
        calls.append(exam_id)

    signals.exam_changed.connect(record, dispatch_uid="tests.record_exam_changed")
    yield calls
    signals.exam_changed.disconnect(dispatch_uid="tests.record_exam_changed")


@pytest.fixture
def no_vm_signals():
    """As if no VM scheduler listened (exams works alone)."""
    signals.exam_changed.disconnect(dispatch_uid="vms.on_exam_changed")
    yield
    signals.exam_changed.connect(on_exam_changed, dispatch_uid="vms.on_exam_changed")
