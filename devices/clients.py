"""How the scheduler talks to a QPU.

A device whose address is an ``http(s)://`` URL is a real (or `simulate_qpu`)
device reached over HTTP; any other address gets the built-in simulated QPU of
the brief, which runs inside the worker. Both satisfy ``DeviceClient`` so the
runner never knows which one it drives, and tests inject their own.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from core import outbound

logger = logging.getLogger(__name__)

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
        raise DeviceError(f"device {device.id} returned no list of bit strings")
    if len(result) != job.shots:
        raise DeviceError(f"device {device.id} returned {len(result)} bit strings for {job.shots} shots")
    for index, value in enumerate(result):
        if not isinstance(value, str) or len(value) != device.size or not BITSTRING.match(value):
            # What the device wrote is not echoed: the job's owner reads this.
            raise DeviceError(f"device {device.id} returned a bad shot {index}, expected {device.size} bits of 0/1")
    return result


def random_bitstrings(*, size: int, shots: int, rng: random.Random | None = None) -> list[str]:
    getrandbits = rng.getrandbits if rng is not None else random.getrandbits
    return [format(getrandbits(size), f"0{size}b") for _ in range(shots)]


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


# A result is one bit string per shot: even 100,000 shots of a large device
# fit; anything bigger is a misbehaving device, not a result to hold in memory.
DEVICE_MAX_ANSWER_BYTES = 1024 * 1024
_HTTP_SCHEME_RE = re.compile(r"^https?:", re.IGNORECASE)


class HttpQPU:
    """POST ``{address}/run`` with the job; the device answers
    ``{"result": ["0101", ...]}`` when done (synchronous, like the brief's
    ``Device.send``).

    The call goes through ``core.outbound``: the resolved address is
    checked against the device policy and pinned, redirects are not
    followed, DEVICE_HTTP_TIMEOUT_SECONDS bounds the whole call and at most
    DEVICE_MAX_ANSWER_BYTES are read. Errors carry fixed reasons only: the
    job's owner (any user) reads them, and the device's answer may come
    from a service that was never meant to be reached.
    """

    def __init__(self, *, timeout: float | None = None, post=outbound.post):
        self.timeout = settings.DEVICE_HTTP_TIMEOUT_SECONDS if timeout is None else timeout
        self.post = post

    def run(self, *, device: DeviceRef, job: JobPayload) -> list[str]:
        url = device.address.rstrip("/") + "/run"
        body = json.dumps({"job_id": job.key, "instructions": job.instructions, "shots": job.shots}).encode()
        try:
            answer = self.post(
                url,
                body=body,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
                allowed=outbound.device_address_allowed,
                max_body=DEVICE_MAX_ANSWER_BYTES,
            )
        except outbound.OutboundError as exc:
            logger.warning("device %s call failed: %s (%s)", device.id, exc.reason, exc.detail)
            raise DeviceError(f"device {device.id}: {exc.reason}") from None
        if answer.status == 409:
            raise DeviceBusy(f"device {device.id} is busy (HTTP 409)")
        if answer.status != 200:
            logger.warning("device %s answered HTTP %d: %r", device.id, answer.status, answer.body[:200])
            raise DeviceError(f"device {device.id} answered {_status_reason(answer.status)}")
        try:
            payload = json.loads(answer.body)
        except ValueError:
            raise DeviceError(f"device {device.id} answered invalid JSON") from None
        result = payload.get("result") if isinstance(payload, dict) else None
        return validate_result(result, device=device, job=job)


def _status_reason(status: int) -> str:
    if 300 <= status < 400:
        return f"with a redirect (HTTP {status}), not followed"
    return f"HTTP {status}"


def is_http_address(address: str) -> bool:
    return address.startswith(("http://", "https://"))


def device_address_normalized(address: str) -> str:
    """The address to store, or ValueError saying why it cannot be one.

    ``http(s)://host...`` in any letter case is a real device (stored with a
    lowercase scheme: the runner's SQL matches ``LIKE 'http://%'``); a value
    with ``://`` and another scheme, or a broken http URL (``http:/host``,
    ``https:host``), is an error rather than silently a simulated device; a
    plain label (e.g. ``addr1``) is the built-in simulator. A literal
    address the device policy refuses (link-local such as 169.254.169.254,
    multicast, reserved, unspecified, or outside DEVICE_ALLOWED_NETWORKS) is
    an error too; names are checked at every call.
    """
    if _HTTP_SCHEME_RE.match(address):
        try:
            target = outbound.parse_target(address)
        except outbound.InvalidTarget as exc:
            raise ValueError(f"Not a usable device URL: {exc}.") from None
        if target.literal is not None and not outbound.device_address_allowed(target.literal):
            raise ValueError(
                "Devices may not be at link-local, multicast, reserved or unspecified addresses"
                + (" nor outside DEVICE_ALLOWED_NETWORKS." if settings.DEVICE_ALLOWED_NETWORKS else ".")
            )
        scheme, rest = address.split(":", 1)
        return scheme.lower() + ":" + rest
    if "://" in address:
        raise ValueError(
            "Must be an http(s):// URL with a host, or a plain label (e.g. 'sim') for the built-in simulator."
        )
    return address


def client_for(device: DeviceRef, *, stop_event: threading.Event | None = None) -> DeviceClient:
    if is_http_address(device.address):
        return HttpQPU()
    return SimulatedQPU(stop_event=stop_event)
