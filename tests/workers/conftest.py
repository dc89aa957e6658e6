"""Fixtures for the worker tests: ``make_device`` and ``make_program`` are
tests/factories.py with the defaults these tests share (simulated 4-qubit
devices; programs of the ``user`` fixture with one queued job)."""

from __future__ import annotations

import pytest

from tests import factories


@pytest.fixture
def make_device(db):
    def make(device_id: str | None = None, *, size: int = 4, address: str = "sim", **fields):
        return factories.make_device(device_id, size=size, address=address, **fields)

    return make


@pytest.fixture
def make_program(db, user):
    def make(*, owner=None, jobs: int = 1, **fields):
        return factories.make_program(owner or user, jobs=jobs, **fields)

    return make


class RecordingClient:
    """A device client that answers at once and records what it ran."""

    def __init__(self, log: list, *, fail_times: int = 0, error: Exception | None = None):
        self.log = log
        self.fail_times = fail_times
        self.error = error

    def run(self, *, device, job):
        self.log.append((device.id, job.key))
        if self.fail_times > 0:
            self.fail_times -= 1
            raise self.error or RuntimeError("boom")
        return ["1" * device.size for _ in range(job.shots)]


@pytest.fixture
def recording():
    """(log, factory) where factory builds RecordingClients sharing the log."""
    log: list = []
    options: dict = {}

    def factory(device, stop_event=None):
        return RecordingClient(log, **options)

    factory.options = options
    return log, factory
