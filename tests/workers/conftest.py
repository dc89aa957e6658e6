"""Factories for the worker tests: devices and queued jobs straight in the DB."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from devices.models import Device
from jobs.models import Job, Program

_seq = itertools.count(1)


@pytest.fixture
def make_device(db):
    def make(
        device_id: str | None = None,
        *,
        type: str = "analog",
        size: int = 4,
        address: str = "sim",
        status: str = "online",
    ):
        now = timezone.now()
        return Device.objects.create(
            id=device_id or f"dev-{next(_seq)}",
            type=type,
            size=size,
            address=address,
            status=status,
            registered_at=now,
            last_seen_at=now,
        )

    return make


@pytest.fixture
def make_program(db, user):
    def make(
        *,
        priority: int = 0,
        device_type: str = "analog",
        jobs: int = 1,
        owner=None,
        callback_url: str = "",
        shots: int = 1,
        min_size: int | None = None,
    ):
        owner = owner or user
        program = Program.objects.create(
            key=f"p-{next(_seq)}", owner=owner, priority=priority, device_type=device_type, callback_url=callback_url
        )
        Job.objects.bulk_create(
            [
                Job(
                    key=f"{program.key}-j{i}",
                    program=program,
                    owner=owner,
                    priority=priority,
                    device_type=device_type,
                    instructions=[{"op": "x", "q": i}],
                    shots=shots,
                    min_size=min_size,
                )
                for i in range(jobs)
            ]
        )
        return program

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
