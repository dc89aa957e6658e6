from __future__ import annotations

import sys
import types
from datetime import datetime, timezone

import pytest

from exams.services import exam_create


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
def exam_changed(monkeypatch):
    """Stand in for vms.signals.exam_changed and record the exam ids it is called with."""
    calls: list[int] = []
    module = types.ModuleType("vms.signals")
    module.exam_changed = lambda *, exam_id: calls.append(exam_id)
    monkeypatch.setitem(sys.modules, "vms.signals", module)
    return calls


@pytest.fixture
def no_vm_signals(monkeypatch):
    """As if vms.signals did not exist (yet)."""
    monkeypatch.setitem(sys.modules, "vms.signals", None)
