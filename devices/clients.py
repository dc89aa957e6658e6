"""How the scheduler talks to a QPU.

A device whose address is an ``http(s)://`` URL is a real (or `simulate_qpu`)
device reached over HTTP; any other address gets the built-in simulated QPU of
the brief, which runs inside the worker. Both satisfy ``DeviceClient`` so the
runner never knows which one it drives, and tests inject their own.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from django.conf import settings

BITSTRING = re.compile(r"^[01]+$")


class DeviceError(Exception):
    """The device failed the job, answered garbage, or could not be reached.
    The job is retried elsewhere until it has used JOB_MAX_ATTEMPTS."""


class DeviceBusy(DeviceError):
    """The device is still running another job (HTTP 409): the job is handed
    back untouched and tried again shortly."""


@dataclass(frozen=True)
class DeviceRef:
    id: str
    type: str
    size: int
    address: str


@dataclass(frozen=True)
class JobPayload:
    key: str
    instructions: Any
    shots: int


class DeviceClient(Protocol):
    def run(self, *, device: DeviceRef, job: JobPayload) -> list[str]:
        """Run one job to completion and return one bit string per shot."""
        ...


def validate_result(result: Any, *, device: DeviceRef, job: JobPayload) -> list[str]:
    """A result is exactly one bit string per shot, each as long as the
    device has qubits; anything else is a device error, not a result."""
    if not isinstance(result, list):
        raise DeviceError(f"device {device.id} returned {type(result).__name__}, expected a list of bit strings")
    if len(result) != job.shots:
        raise DeviceError(f"device {device.id} returned {len(result)} bit strings for {job.shots} shots")
    for value in result:
        if not isinstance(value, str) or len(value) != device.size or not BITSTRING.match(value):
            raise DeviceError(f"device {device.id} returned {value!r}, expected {device.size} bits of 0/1")
    return result


def random_bitstrings(*, size: int, shots: int, rng: random.Random | None = None) -> list[str]:
    rng = rng or random
    return [format(rng.getrandbits(size), f"0{size}b") for _ in range(shots)]


class SimulatedQPU:
    """The brief's mock device: takes ``seconds`` and returns random bits.

    The wait is on an Event so a worker shutting down is not held up by it.
    """

    def __init__(self, *, seconds: float | None = None, stop_event: threading.Event | None = None):
        self.seconds = settings.DEVICE_SIM_SECONDS if seconds is None else seconds
        self.stop_event = stop_event or threading.Event()

    def run(self, *, device: DeviceRef, job: JobPayload) -> list[str]:
        if self.seconds > 0 and self.stop_event.wait(self.seconds):
            raise DeviceError("worker shutting down before the simulated run finished")
        return random_bitstrings(size=device.size, shots=job.shots)


class HttpQPU:
    """POST ``{address}/run`` with the job; the device answers
    ``{"result": ["0101", ...]}`` when done (synchronous, like the brief's
    ``Device.send``)."""

    def __init__(self, *, timeout: float | None = None, session: requests.Session | None = None):
        self.timeout = settings.DEVICE_HTTP_TIMEOUT_SECONDS if timeout is None else timeout
        self.session = session or requests.Session()

    def run(self, *, device: DeviceRef, job: JobPayload) -> list[str]:
        url = device.address.rstrip("/") + "/run"
        body = {"job_id": job.key, "instructions": job.instructions, "shots": job.shots}
        try:
            response = self.session.post(url, json=body, timeout=(min(5.0, self.timeout), self.timeout))
        except requests.Timeout as exc:
            raise DeviceError(f"device {device.id} timed out after {self.timeout:g}s") from exc
        except requests.RequestException as exc:
            raise DeviceError(f"device {device.id} unreachable: {exc}") from exc
        if response.status_code == 409:
            raise DeviceBusy(f"device {device.id} is busy: {response.text[:200]}")
        if response.status_code != 200:
            raise DeviceError(f"device {device.id} answered HTTP {response.status_code}: {response.text[:200]}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise DeviceError(f"device {device.id} answered invalid JSON") from exc
        result = payload.get("result") if isinstance(payload, dict) else None
        return validate_result(result, device=device, job=job)


def is_http_address(address: str) -> bool:
    return address.startswith(("http://", "https://"))


def client_for(device: DeviceRef, *, stop_event: threading.Event | None = None) -> DeviceClient:
    if is_http_address(device.address):
        return HttpQPU()
    return SimulatedQPU(stop_event=stop_event)
