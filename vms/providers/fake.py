"""The cloud-provider seam: the API the scheduler calls, and its implementations.

The brief's provider has two calls, ``start() -> uuid`` and ``stop(uuid)``.
Everything the scheduler knows about timing comes from this module's model,
which ``FakeProvider`` implements exactly and ``docs/provider.md`` spells out:

* start requests join one FIFO allocation queue; one VM is allocated at a
  time, each taking ``allocation_interval_s`` (6 s): the i-th VM is ready at
  ``max(requested_i, ready_{i-1}) + 6 s``;
* ``stop`` of a waiting VM removes it from the queue (later VMs move up),
  ``stop`` of the VM being allocated frees the allocator at once, ``stop`` of
  a ready VM releases it;
* each endpoint accepts at most ``requests_per_second`` (3) calls in any
  rolling one-second window ``(t - 1 s, t]``; a further call raises
  ``RateLimitExceeded`` and has no effect (and does not count).

Implementations: ``FakeProvider`` (in process, on an injected clock: tests,
the simulation and the mock-cloud server), ``HttpProvider`` (client of an
HTTP provider such as ``manage.py run_mock_cloud``), chosen by
``provider_from_settings``. ``replay_calls`` re-runs a call log through the
same model to judge when each VM was ready.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid as uuid_module
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, unquote, urlsplit

import requests
from django.conf import settings

from vms.clock import Clock, SystemClock, VirtualClock
from vms.exceptions import ProviderError, RateLimitExceeded, UnknownVM

__all__ = [
    "CloudProvider",
    "FakeProvider",
    "HttpProvider",
    "MockCloudServer",
    "ProviderError",
    "RateLimitExceeded",
    "UnknownVM",
    "VMState",
    "provider_from_settings",
    "replay_calls",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class CloudProvider(Protocol):
    def start(self) -> str:
        """Request a VM; returns its uuid. May raise RateLimitExceeded / ProviderError."""
        ...

    def stop(self, vm_id: str) -> None:
        """Release a VM (waiting, allocating or ready). May raise RateLimitExceeded / ProviderError."""
        ...


class VMState:
    WAITING = "waiting"
    ALLOCATING = "allocating"
    READY = "ready"
    STOPPED = "stopped"


# --- time as integer microseconds ------------------------------------------
# The model adds 6 s tens of thousands of times and compares instants for
# equality (a VM ready at exactly 60 s counts "after 1 minute"): integers keep
# that exact, floats would drift.

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_SECOND = 1_000_000


def _to_us(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time must be timezone-aware, got naive {value.isoformat()}")
    return (value - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _seconds_to_us(seconds: float, what: str) -> int:
    us = round(float(seconds) * _SECOND)
    if us <= 0:
        raise ValueError(f"{what} must be positive, got {seconds!r}")
    return us


# --- the allocation queue ----------------------------------------------------
#
# Ready times along the queue follow ready_k = max(req_k, ready_{k-1}) + I,
# starting from x0 = the moment the allocator is free for the head. Each VM is
# the function x -> max(req + I, x + I) and a removed VM is the identity;
# compositions of such functions stay of the form x -> max(a, x + I * c) where
# c counts the VMs in the range. A segment tree over queue positions holds
# (a, c) per node, so removing a VM anywhere (a stop) is one O(log n) update
# and any VM's ready time, "how many ready by t" and "when is the allocator
# free" are O(log n) queries, whatever the queue length.

_NEG = -(1 << 100)  # the "a" of the identity function: below any real instant


class _ChainTree:
    def __init__(self, capacity: int, interval_us: int):
        self.cap = capacity
        self.interval = interval_us
        self.a = [_NEG] * (2 * capacity)
        self.c = [0] * (2 * capacity)

    def set(self, pos: int, a: int, c: int) -> None:
        A, C, step = self.a, self.c, self.interval
        i = pos + self.cap
        A[i], C[i] = a, c
        i >>= 1
        while i:
            left = i << 1
            right = left | 1
            # first the left range, then the right one
            left_then = A[left] + step * C[right]
            A[i] = A[right] if A[right] > left_then else left_then
            C[i] = C[left] + C[right]
            i >>= 1

    def rebuild(self) -> None:
        A, C, step = self.a, self.c, self.interval
        for i in range(self.cap - 1, 0, -1):
            left = i << 1
            right = left | 1
            A[i] = max(A[right], A[left] + step * C[right])
            C[i] = C[left] + C[right]

    def prefix(self, pos: int) -> tuple[int, int]:
        """(a, c) of the composition of positions 0..pos (inclusive)."""
        A, C, step = self.a, self.c, self.interval
        la, lc, ra, rc = _NEG, 0, _NEG, 0
        lo, hi = self.cap, self.cap + pos + 1
        while lo < hi:
            if lo & 1:
                la, lc = max(A[lo], la + step * C[lo]), lc + C[lo]
                lo += 1
            if hi & 1:
                hi -= 1
                ra, rc = max(ra, A[hi] + step * rc), C[hi] + rc
            lo >>= 1
            hi >>= 1
        return max(ra, la + step * rc), lc + rc

    def total(self) -> tuple[int, int]:
        return self.a[1], self.c[1]

    def count_ready_by(self, x0: int, t: int) -> int:
        """How many queued VMs are ready at ``t`` when the allocator is free at ``x0``.

        Ready times increase along the queue, so descend towards the last VM
        ready by ``t``: a whole left subtree is ready iff its last VM is.
        """
        A, C, step = self.a, self.c, self.interval
        if max(A[1], x0 + step * C[1]) <= t:
            return C[1]
        node, fa, fc = 1, _NEG, 0
        while node < self.cap:
            left = node << 1
            na, nc = max(A[left], fa + step * C[left]), fc + C[left]
            if max(na, x0 + step * nc) <= t:
                fa, fc, node = na, nc, left | 1
            else:
                node = left
        na, nc = max(A[node], fa + step * C[node]), fc + C[node]
        return nc if max(na, x0 + step * nc) <= t else fc


class _VM:
    __slots__ = ("id", "requested", "alloc_start", "ready", "stopped", "pos")

    def __init__(self, vm_id: str, requested: int):
        self.id = vm_id
        self.requested = requested
        self.alloc_start: int | None = None  # set once known for good (ready or stopped)
        self.ready: int | None = None
        self.stopped: int | None = None
        self.pos = -1  # position in the queue tree while waiting/allocating


class _RateWindow:
    """Accepted calls of one endpoint in the rolling window ``(t - 1 s, t]``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.accepted: deque[int] = deque()

    def refusal(self, t: int) -> int | None:
        """None when a call at ``t`` is accepted, else microseconds until one would be."""
        accepted = self.accepted
        while accepted and accepted[0] <= t - _SECOND:
            accepted.popleft()
        if len(accepted) >= self.limit:
            return accepted[0] + _SECOND - t
        return None

    def record(self, t: int) -> None:
        self.accepted.append(t)


_MIN_CAPACITY = 1024


class FakeProvider:
    """The provider model, in process, driven by an injected clock.

    Thread-safe (one lock). Each call costs O(log n) in the number of queued
    VMs (amortised), never O(all VMs ever started): the simulation of a
    three-day, 20,000-VM scenario makes ~40,000 calls.

    Stop of an id that was never started raises ``UnknownVM``; stop of a VM
    that is already stopped succeeds and does nothing, so a scheduler that
    crashed after the provider accepted a stop but before recording it can
    simply stop again. Both kinds of stop count towards the rate limit (the
    provider checks the rate before looking at the id).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        allocation_interval_s: float | None = None,
        requests_per_second: int | None = None,
        id_factory: Callable[[], str] | None = None,
        record_calls: bool = False,
    ):
        if allocation_interval_s is None:
            allocation_interval_s = settings.VM_ALLOCATION_INTERVAL_SECONDS
        if requests_per_second is None:
            requests_per_second = settings.VM_REQUESTS_PER_SECOND
        if int(requests_per_second) != requests_per_second or requests_per_second < 1:
            raise ValueError(f"requests_per_second must be a positive integer, got {requests_per_second!r}")
        self.clock = clock
        self.allocation_interval_s = float(allocation_interval_s)
        self.requests_per_second = int(requests_per_second)
        self._interval = _seconds_to_us(allocation_interval_s, "allocation_interval_s")
        self._id_factory = id_factory or (lambda: str(uuid_module.uuid4()))
        self._lock = threading.RLock()
        self._rates = {"start": _RateWindow(self.requests_per_second), "stop": _RateWindow(self.requests_per_second)}
        self._vms: dict[str, _VM] = {}
        # the queue: positions [head, next_pos) of the tree, None where removed
        self._tree = _ChainTree(_MIN_CAPACITY, self._interval)
        self._slots: list[_VM | None] = [None] * _MIN_CAPACITY
        self._head = 0
        self._next_pos = 0
        self._queued = 0
        # when the allocator is free for the head of the queue
        self._free_at = _NEG
        # history of readiness, in time order, for ready_count at past instants
        self._ready_times: list[int] = []
        self._ready_stop_times: list[int] = []  # stops of VMs that were ready
        self._ready_now = 0
        self._stopped = 0
        self._now = _NEG  # last instant seen: the model's time never goes back
        self.calls: list[dict[str, Any]] | None = [] if record_calls else None

    # --- the provider API --------------------------------------------------

    def start(self) -> str:
        with self._lock:
            t = self._sync()
            return self._start(t, None, enforce_rate=True)

    def start_with_id(self, vm_id: str) -> str:
        """``start()`` with a caller-chosen id (replays and deterministic simulations)."""
        with self._lock:
            t = self._sync()
            return self._start(t, str(vm_id), enforce_rate=True)

    def stop(self, vm_id: str) -> None:
        with self._lock:
            t = self._sync()
            self._stop(t, str(vm_id), enforce_rate=True)

    # --- inspection ----------------------------------------------------------

    def vm_state(self, vm_id: str, at: datetime | None = None) -> str:
        """waiting | allocating | ready | stopped at ``at`` (default now), given the calls so far."""
        with self._lock:
            now = self._sync()
            t = now if at is None else _to_us(at)
            vm = self._get(vm_id)
            if t < vm.requested:
                raise ValueError(f"VM {vm_id} was only requested at {_from_us(vm.requested).isoformat()}")
            alloc_start, ready = self._times(vm)
            if vm.stopped is not None and t >= vm.stopped:
                return VMState.STOPPED
            if ready is not None and t >= ready:
                return VMState.READY
            if alloc_start is not None and t >= alloc_start:
                return VMState.ALLOCATING
            return VMState.WAITING

    def ready_at(self, vm_id: str) -> datetime | None:
        """When the VM is/was/will be ready given the queue now; None if stopped before ready."""
        with self._lock:
            self._sync()
            _alloc_start, ready = self._times(self._get(vm_id))
            return None if ready is None else _from_us(ready)

    def allocation_started_at(self, vm_id: str) -> datetime | None:
        with self._lock:
            self._sync()
            alloc_start, _ready = self._times(self._get(vm_id))
            return None if alloc_start is None else _from_us(alloc_start)

    def ready_count(self, at: datetime | None = None) -> int:
        """VMs ready (allocated and not stopped) at ``at`` (default now), given the calls so far."""
        with self._lock:
            now = self._sync()
            t = now if at is None else _to_us(at)
            count = bisect_right(self._ready_times, t) - bisect_right(self._ready_stop_times, t)
            if t >= now and self._queued:
                count += self._tree.count_ready_by(self._free_at, t)
            return count

    def allocator_free_at(self) -> datetime:
        """When the allocator has worked through the whole queue (now if it is idle)."""
        with self._lock:
            now = self._sync()
            return _from_us(self._queue_end(now))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self._sync()
            allocating = 1 if self._queued else 0
            return {
                "now": _from_us(now).isoformat(),
                "allocation_interval_s": self.allocation_interval_s,
                "requests_per_second": self.requests_per_second,
                "total": len(self._vms),
                "waiting": self._queued - allocating,
                "allocating": allocating,
                "ready": self._ready_now,
                "stopped": self._stopped,
                "queue_length": self._queued,
                "allocator_free_at": _from_us(self._queue_end(now)).isoformat(),
            }

    def vms(self) -> list[dict[str, Any]]:
        """Every VM with its state now and its times (O(all VMs): debugging only)."""
        with self._lock:
            now = self._sync()
            projected = self._projected_queue()
            out = []
            for vm in self._vms.values():
                alloc_start, ready = projected.get(vm.id, (vm.alloc_start, vm.ready))
                if vm.stopped is not None:
                    state = VMState.STOPPED
                elif ready is not None and ready <= now:
                    state = VMState.READY
                elif alloc_start is not None and alloc_start <= now:
                    state = VMState.ALLOCATING
                else:
                    state = VMState.WAITING
                out.append(
                    {
                        "id": vm.id,
                        "state": state,
                        "requested_at": _from_us(vm.requested).isoformat(),
                        "allocation_started_at": None if alloc_start is None else _from_us(alloc_start).isoformat(),
                        "ready_at": None if ready is None else _from_us(ready).isoformat(),
                        "stopped_at": None if vm.stopped is None else _from_us(vm.stopped).isoformat(),
                    }
                )
            return out

    # --- the model -------------------------------------------------------------

    def _sync(self) -> int:
        """Bring the model to the clock's now (never backwards) and return it."""
        t = _to_us(self.clock.now())
        if t < self._now:
            t = self._now
        self._now = t
        self._advance(t)
        return t

    def _advance(self, t: int) -> None:
        """Every queued VM whose allocation finished by ``t`` becomes ready."""
        slots, interval = self._slots, self._interval
        while self._queued:
            head = self._first_live()
            vm = slots[head]
            ready = max(vm.requested, self._free_at) + interval
            if ready > t:
                return
            vm.alloc_start, vm.ready, vm.pos = ready - interval, ready, -1
            self._remove_slot(head)
            self._free_at = ready
            self._ready_times.append(ready)
            self._ready_now += 1

    def _first_live(self) -> int:
        slots, head = self._slots, self._head
        while slots[head] is None:
            head += 1
        self._head = head
        return head

    def _remove_slot(self, pos: int) -> None:
        self._slots[pos] = None
        self._tree.set(pos, _NEG, 0)
        self._queued -= 1

    def _check_rate(self, endpoint: str, t: int) -> None:
        wait = self._rates[endpoint].refusal(t)
        if wait is not None:
            self._log(t, endpoint, None, "rate_limited")
            raise RateLimitExceeded(
                f"{endpoint}: more than {self.requests_per_second} calls in one second",
                endpoint=endpoint,
                retry_after=wait / _SECOND,
            )
        self._rates[endpoint].record(t)

    def _start(self, t: int, vm_id: str | None, *, enforce_rate: bool) -> str:
        if vm_id is not None and vm_id in self._vms:
            raise ValueError(f"VM id {vm_id!r} is already taken")
        if enforce_rate:
            self._check_rate("start", t)
        if vm_id is None:
            vm_id = self._id_factory()
            if vm_id in self._vms:
                raise ValueError(f"id factory returned {vm_id!r}, which is already taken")
        vm = _VM(vm_id, t)
        self._vms[vm_id] = vm
        if self._next_pos == self._tree.cap:
            self._compact()
        pos = self._next_pos
        self._next_pos += 1
        vm.pos = pos
        self._slots[pos] = vm
        self._tree.set(pos, t + self._interval, 1)
        self._queued += 1
        self._log(t, "start", vm_id, "ok")
        return vm_id

    def _stop(self, t: int, vm_id: str, *, enforce_rate: bool) -> None:
        if enforce_rate:
            self._check_rate("stop", t)
        vm = self._vms.get(vm_id)
        if vm is None:
            self._log(t, "stop", vm_id, "error")
            raise UnknownVM(vm_id)
        self._log(t, "stop", vm_id, "ok")
        if vm.stopped is not None:
            return  # idempotent: stopping a stopped VM changes nothing
        if vm.pos >= 0:
            if vm.pos == self._first_live():
                # The head of the queue is the VM being allocated (its
                # allocation began at or before now): the allocator is free
                # from this moment for the next one.
                vm.alloc_start = max(vm.requested, self._free_at)
                self._free_at = t
            self._remove_slot(vm.pos)
            vm.pos = -1
        else:
            self._ready_now -= 1
            self._ready_stop_times.append(t)
        vm.stopped = t
        self._stopped += 1

    def _compact(self) -> None:
        """Move the live queue to the front of a tree sized for it (amortised O(1))."""
        live = [vm for vm in self._slots[self._head : self._next_pos] if vm is not None]
        capacity = _MIN_CAPACITY
        while capacity < 2 * len(live) + 1:
            capacity *= 2
        tree = _ChainTree(capacity, self._interval)
        slots: list[_VM | None] = [None] * capacity
        for pos, vm in enumerate(live):
            vm.pos = pos
            slots[pos] = vm
            tree.a[capacity + pos] = vm.requested + self._interval
            tree.c[capacity + pos] = 1
        tree.rebuild()
        self._tree, self._slots = tree, slots
        self._head, self._next_pos = 0, len(live)

    def _times(self, vm: _VM) -> tuple[int | None, int | None]:
        """(allocation start, ready) of a VM: recorded, or projected while queued."""
        if vm.pos < 0:
            return vm.alloc_start, vm.ready
        a, c = self._tree.prefix(vm.pos)
        ready = max(a, self._free_at + self._interval * c)
        return ready - self._interval, ready

    def _queue_end(self, now: int) -> int:
        if not self._queued:
            return now
        a, c = self._tree.total()
        return max(now, a, self._free_at + self._interval * c)

    def _projected_queue(self) -> dict[str, tuple[int, int]]:
        out, x = {}, self._free_at
        for vm in self._slots[self._head : self._next_pos]:
            if vm is not None:
                x = max(vm.requested, x) + self._interval
                out[vm.id] = (x - self._interval, x)
        return out

    def _get(self, vm_id: str) -> _VM:
        vm = self._vms.get(str(vm_id))
        if vm is None:
            raise UnknownVM(str(vm_id))
        return vm

    def _log(self, t: int, endpoint: str, vm_id: str | None, outcome: str) -> None:
        if self.calls is not None:
            self.calls.append({"t": _from_us(t), "endpoint": endpoint, "vm": vm_id, "outcome": outcome})


# --- replaying a call log ------------------------------------------------------


def _parse_time(value: Any, index: int) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"call {index}: bad time {value!r}") from exc
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"call {index}: time must be a timezone-aware datetime or ISO string, got {value!r}")
    return value


def replay_calls(
    calls: Iterable[tuple[datetime, str, str, str] | Mapping[str, Any]],
    *,
    allocation_interval_s: float = 6.0,
    requests_per_second: int = 3,
    strict: bool = True,
) -> dict[str, dict[str, datetime | None]]:
    """Re-run a call log through the provider model; per VM, when it was requested, ready and stopped.

    ``calls`` are ``(t, endpoint, vm, outcome)`` tuples or mappings with those
    keys (a simulation report's ``calls`` work as they are), in time order;
    ``t`` is an aware datetime or an ISO string. Endpoints other than
    ``start``/``stop`` (e.g. ``assign``) and outcomes other than ``ok`` have no
    effect on the provider, so they are skipped.

    Returns ``{vm: {"requested_at", "allocation_started_at", "ready_at",
    "stopped_at"}}``. ``ready_at`` is None for a VM stopped before it was
    ready; for a VM still queued when the log ends it is when the VM will be
    ready if no further call comes.

    With ``strict`` (the default) a log the provider could not have produced
    is an error: an ``ok`` call the rate limit would have refused, a start
    reusing an id, a stop of an id never started, or calls out of time order.
    """
    provider: FakeProvider | None = None
    clock: VirtualClock | None = None
    last: datetime | None = None
    for index, call in enumerate(calls):
        if isinstance(call, Mapping):
            t, endpoint, vm_id, outcome = call.get("t"), call.get("endpoint"), call.get("vm"), call.get("outcome", "ok")
        else:
            t, endpoint, vm_id, outcome = call
        t = _parse_time(t, index)
        if last is not None and t < last:
            raise ValueError(f"call {index} at {t.isoformat()} is earlier than the call before it ({last.isoformat()})")
        last = t
        if endpoint not in ("start", "stop") or outcome != "ok":
            continue
        if provider is None:
            clock = VirtualClock(t)
            provider = FakeProvider(
                clock=clock, allocation_interval_s=allocation_interval_s, requests_per_second=requests_per_second
            )
        clock.advance_to(t)
        with provider._lock:
            now = provider._sync()
            try:
                if endpoint == "start":
                    if not vm_id:
                        raise ValueError("a start recorded as ok needs the VM id")
                    provider._start(now, str(vm_id), enforce_rate=strict)
                else:
                    provider._stop(now, str(vm_id), enforce_rate=strict)
            except RateLimitExceeded as exc:
                raise ValueError(
                    f"call {index} ({endpoint} {vm_id} at {t.isoformat()}) is recorded ok but the provider would "
                    f"refuse it: more than {requests_per_second} {endpoint} calls in one second"
                ) from exc
            except UnknownVM as exc:
                if strict:
                    raise ValueError(f"call {index}: stop of {vm_id}, which was never started") from exc
            except ValueError as exc:
                if strict:
                    raise ValueError(f"call {index}: {exc}") from exc
    if provider is None:
        return {}
    with provider._lock:
        projected = provider._projected_queue()
        result = {}
        for vm in provider._vms.values():
            alloc_start, ready = projected.get(vm.id, (vm.alloc_start, vm.ready))
            result[vm.id] = {
                "requested_at": _from_us(vm.requested),
                "allocation_started_at": None if alloc_start is None else _from_us(alloc_start),
                "ready_at": None if ready is None else _from_us(ready),
                "stopped_at": None if vm.stopped is None else _from_us(vm.stopped),
            }
        return result


# --- HTTP client ---------------------------------------------------------------


def _connection_never_made(exc: requests.ConnectionError) -> bool:
    """True when the request certainly never reached the provider (refused, DNS, connect timeout)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, NameResolutionError))


class HttpProvider:
    """Client of an HTTP provider (``manage.py run_mock_cloud`` or a real one).

    ``POST {base}/start`` -> 200 ``{"id": uuid}``; ``POST {base}/stop/{uuid}``
    -> 204; 429 -> ``RateLimitExceeded``; 404 on stop -> ``UnknownVM``;
    network errors, timeouts, 5xx and anything unexpected -> ``ProviderError``.
    Never retries on its own: a retried start could allocate a VM twice, so
    retrying is the caller's decision.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"provider URL must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HttpProvider({self.base_url!r})"

    def start(self) -> str:
        response = self._post("/start", "start")
        if response.status_code == HTTPStatus.OK:
            try:
                vm_id = response.json()["id"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ProviderError(f"start: response without a VM id: {response.text[:200]!r}") from exc
            if not isinstance(vm_id, str) or not vm_id:
                raise ProviderError(f"start: bad VM id {vm_id!r}")
            return vm_id
        raise self._error(response, "start")

    def stop(self, vm_id: str) -> None:
        response = self._post(f"/stop/{quote(str(vm_id), safe='')}", "stop")
        if response.status_code in (HTTPStatus.OK, HTTPStatus.NO_CONTENT):
            return
        if response.status_code == HTTPStatus.NOT_FOUND:
            raise UnknownVM(str(vm_id))
        raise self._error(response, "stop")

    def _post(self, path: str, endpoint: str) -> requests.Response:
        try:
            # a fresh connection per call: a stale pooled connection would turn
            # a call that never arrived into an ambiguous "may have happened"
            return requests.post(self.base_url + path, timeout=self.timeout, headers={"Connection": "close"})
        except requests.exceptions.ConnectionError as exc:
            never_made = _connection_never_made(exc)
            raise ProviderError(
                f"{endpoint}: cannot reach the provider at {self.base_url}: {exc}",
                may_have_taken_effect=not never_made,
                unreachable=never_made,
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise ProviderError(f"{endpoint}: no answer within {self.timeout} s", may_have_taken_effect=True) from exc
        except requests.exceptions.RequestException as exc:
            raise ProviderError(f"{endpoint}: {exc}", may_have_taken_effect=True) from exc

    @staticmethod
    def _error(response: requests.Response, endpoint: str) -> Exception:
        if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
            retry_after = None
            try:
                retry_after = float(response.json().get("retry_after"))
            except (ValueError, TypeError, AttributeError):
                try:
                    retry_after = float(response.headers.get("Retry-After", ""))
                except ValueError:
                    retry_after = None
            return RateLimitExceeded(f"{endpoint}: rate limit exceeded", endpoint=endpoint, retry_after=retry_after)
        # 5xx: the provider may have acted before failing; other 4xx: it refused.
        return ProviderError(
            f"{endpoint}: provider answered HTTP {response.status_code}: {response.text[:200]!r}",
            may_have_taken_effect=response.status_code >= 500,
        )


# --- serving a FakeProvider over HTTP (manage.py run_mock_cloud) -----------------


class _MockCloudHandler(BaseHTTPRequestHandler):
    server: MockCloudServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._drain_body()
        path = urlsplit(self.path).path
        provider = self.server.provider
        try:
            if path.rstrip("/") == "/start":
                self._json(HTTPStatus.OK, {"id": provider.start()})
            elif path.startswith("/stop/") and len(path) > len("/stop/"):
                provider.stop(unquote(path[len("/stop/") :]))
                self._reply(HTTPStatus.NO_CONTENT, b"", None)
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such route: POST {path}"})
        except RateLimitExceeded as exc:
            self._json(
                HTTPStatus.TOO_MANY_REQUESTS,
                {"error": str(exc), "retry_after": exc.retry_after},
                extra={"Retry-After": str(max(1, round(exc.retry_after or 1)))},
            )
        except UnknownVM as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except Exception as exc:  # a bug in the fake must not hang the client
            logger.exception("mock cloud: %s failed", path)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {exc}"})

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path.rstrip("/")
        provider = self.server.provider
        if path == "/vms":
            self._json(HTTPStatus.OK, {**provider.snapshot(), "vms": provider.vms()})
        elif path in ("", "/health"):
            self._json(HTTPStatus.OK, provider.snapshot())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such route: GET {path}"})

    def _drain_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > 0:
            self.rfile.read(min(length, 1 << 20))

    def _json(self, status: HTTPStatus, payload: dict, extra: dict | None = None) -> None:
        self._reply(status, json.dumps(payload).encode(), "application/json", extra)

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str | None, extra: dict | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("mock cloud %s - %s", self.address_string(), format % args)


class MockCloudServer(ThreadingHTTPServer):
    """A FakeProvider behind the HTTP routes ``HttpProvider`` speaks.

    ``MockCloudServer(("127.0.0.1", 0), provider)`` picks a free port
    (``server.port``); run ``serve_forever()`` in a thread, ``shutdown()`` to stop.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], provider: FakeProvider):
        self.provider = provider
        super().__init__(address, _MockCloudHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.server_address[0]
        return f"http://{host}:{self.port}"


# --- choosing the provider -------------------------------------------------------

_default_fake: FakeProvider | None = None
_default_lock = threading.Lock()


def provider_from_settings(*, clock: Clock | None = None) -> CloudProvider:
    """``HttpProvider(VM_PROVIDER_URL)`` when set, else the in-process fake.

    Without ``clock`` the fake is one process-wide ``FakeProvider`` on the
    system clock (its VMs live as long as the process); with ``clock`` a new
    fake on that clock is returned each time.
    """
    url = settings.VM_PROVIDER_URL
    if url:
        return HttpProvider(url, timeout=float(getattr(settings, "VM_PROVIDER_TIMEOUT_SECONDS", 5.0)))
    if clock is not None:
        return FakeProvider(clock=clock)
    global _default_fake
    with _default_lock:
        if _default_fake is None:
            _default_fake = FakeProvider(clock=SystemClock())
        return _default_fake


def reset_default_provider() -> None:
    """Forget the process-wide fake (tests)."""
    global _default_fake
    with _default_lock:
        _default_fake = None
