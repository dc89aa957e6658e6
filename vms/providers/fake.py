"""``FakeProvider``: the provider model, exact, in process, on an injected clock.

Everything the scheduler knows about timing comes from this model, which
``docs/provider.md`` spells out:

* start requests join one FIFO allocation queue; one VM is allocated at a
  time, each taking ``allocation_interval_s`` (6 s): the i-th VM is ready at
  ``max(requested_i, ready_{i-1}) + 6 s``;
* ``stop`` of a waiting VM removes it from the queue (later VMs move up),
  ``stop`` of the VM being allocated frees the allocator at once, ``stop`` of
  a ready VM releases it;
* each endpoint accepts at most ``requests_per_second`` (3) calls in any
  rolling one-second window ``(t - 1 s, t]``; a further call raises
  ``RateLimitExceeded`` and has no effect (and does not count).

One implementation serves the tests, the simulation, the mock-cloud server
and (through its public methods only) ``replay_calls``, so the judge of a
call log and the provider that produced it cannot disagree. The queue
arithmetic is in ``allocation``, the rate rule in ``rate_limit``.
"""

from __future__ import annotations

import threading
import uuid as uuid_module
from bisect import bisect_right
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from django.conf import settings

from vms.clock import Clock
from vms.exceptions import RateLimitExceeded, UnknownVM
from vms.providers.allocation import ChainTree
from vms.providers.instants import NEG, SECOND, from_us, seconds_to_us, to_us
from vms.providers.protocol import VMState
from vms.providers.rate_limit import RateWindow

__all__ = ["FakeProvider"]


class _VM:
    __slots__ = ("id", "requested", "alloc_start", "ready", "stopped", "pos")

    def __init__(self, vm_id: str, requested: int):
        self.id = vm_id
        self.requested = requested
        self.alloc_start: int | None = None  # set once known for good (ready or stopped)
        self.ready: int | None = None
        self.stopped: int | None = None
        self.pos = -1  # position in the queue tree while waiting/allocating


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

    ``enforce_rate_limit=False`` builds a fake that accepts every call: the
    model of the queue without the model of the rate limit, for replaying a
    log whose rate is not being judged (``replay_calls(strict=False)``).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        allocation_interval_s: float | None = None,
        requests_per_second: int | None = None,
        id_factory: Callable[[], str] | None = None,
        record_calls: bool = False,
        enforce_rate_limit: bool = True,
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
        self._interval = seconds_to_us(allocation_interval_s, "allocation_interval_s")
        self._id_factory = id_factory or (lambda: str(uuid_module.uuid4()))
        # False: every call is accepted whatever the rate (replaying a log
        # without judging its rate); the windows are then never consulted
        self._enforce_rate = bool(enforce_rate_limit)
        self._lock = threading.RLock()
        self._rates = {"start": RateWindow(self.requests_per_second), "stop": RateWindow(self.requests_per_second)}
        self._vms: dict[str, _VM] = {}
        # the queue: positions [head, next_pos) of the tree, None where removed
        self._tree = ChainTree(_MIN_CAPACITY, self._interval)
        self._slots: list[_VM | None] = [None] * _MIN_CAPACITY
        self._head = 0
        self._next_pos = 0
        self._queued = 0
        # when the allocator is free for the head of the queue
        self._free_at = NEG
        # history of readiness, in time order, for ready_count at past instants
        self._ready_times: list[int] = []
        self._ready_stop_times: list[int] = []  # stops of VMs that were ready
        self._ready_now = 0
        self._stopped = 0
        self._now = NEG  # last instant seen: the model's time never goes back
        self.calls: list[dict[str, Any]] | None = [] if record_calls else None

    # --- the provider API --------------------------------------------------

    def start(self) -> str:
        with self._lock:
            t = self._sync()
            return self._start(t, None)

    def start_with_id(self, vm_id: str) -> str:
        """``start()`` with a caller-chosen id (replays and deterministic simulations)."""
        with self._lock:
            t = self._sync()
            return self._start(t, str(vm_id))

    def stop(self, vm_id: str) -> None:
        with self._lock:
            t = self._sync()
            self._stop(t, str(vm_id))

    # --- inspection ----------------------------------------------------------

    def vm_state(self, vm_id: str, at: datetime | None = None) -> str:
        """waiting | allocating | ready | stopped at ``at`` (default now), given the calls so far."""
        with self._lock:
            now = self._sync()
            t = now if at is None else to_us(at)
            vm = self._get(vm_id)
            if t < vm.requested:
                raise ValueError(f"VM {vm_id} was only requested at {from_us(vm.requested).isoformat()}")
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
            return None if ready is None else from_us(ready)

    def allocation_started_at(self, vm_id: str) -> datetime | None:
        with self._lock:
            self._sync()
            alloc_start, _ready = self._times(self._get(vm_id))
            return None if alloc_start is None else from_us(alloc_start)

    def ready_count(self, at: datetime | None = None) -> int:
        """VMs ready (allocated and not stopped) at ``at`` (default now), given the calls so far."""
        with self._lock:
            now = self._sync()
            t = now if at is None else to_us(at)
            count = bisect_right(self._ready_times, t) - bisect_right(self._ready_stop_times, t)
            if t >= now and self._queued:
                count += self._tree.count_ready_by(self._free_at, t)
            return count

    def allocator_free_at(self) -> datetime:
        """When the allocator has worked through the whole queue (now if it is idle)."""
        with self._lock:
            now = self._sync()
            return from_us(self._queue_end(now))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self._sync()
            allocating = 1 if self._queued else 0
            return {
                "now": from_us(now).isoformat(),
                "allocation_interval_s": self.allocation_interval_s,
                "requests_per_second": self.requests_per_second,
                "total": len(self._vms),
                "waiting": self._queued - allocating,
                "allocating": allocating,
                "ready": self._ready_now,
                "stopped": self._stopped,
                "queue_length": self._queued,
                "allocator_free_at": from_us(self._queue_end(now)).isoformat(),
            }

    def vms(self) -> list[dict[str, Any]]:
        """Every VM with its state now and its times (O(all VMs): debugging only)."""
        with self._lock:
            now = self._sync()
            out = []
            for vm, alloc_start, ready in self._all_times():
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
                        "requested_at": from_us(vm.requested).isoformat(),
                        "allocation_started_at": None if alloc_start is None else from_us(alloc_start).isoformat(),
                        "ready_at": None if ready is None else from_us(ready).isoformat(),
                        "stopped_at": None if vm.stopped is None else from_us(vm.stopped).isoformat(),
                    }
                )
            return out

    def timeline(self) -> dict[str, dict[str, datetime | None]]:
        """Per VM (in start order), when it was requested, started allocating, was ready, was stopped.

        ``{vm: {"requested_at", "allocation_started_at", "ready_at",
        "stopped_at"}}`` as aware datetimes: recorded times, or for a VM still
        queued the times it will have if no further call comes; ``ready_at``
        is None for a VM stopped before it was ready. This is what a judge of
        the calls needs (``replay_calls`` returns it), without reaching into
        the model. O(all VMs).
        """
        with self._lock:
            self._sync()
            return {
                vm.id: {
                    "requested_at": from_us(vm.requested),
                    "allocation_started_at": None if alloc_start is None else from_us(alloc_start),
                    "ready_at": None if ready is None else from_us(ready),
                    "stopped_at": None if vm.stopped is None else from_us(vm.stopped),
                }
                for vm, alloc_start, ready in self._all_times()
            }

    # --- the model -------------------------------------------------------------

    def _sync(self) -> int:
        """Bring the model to the clock's now (never backwards) and return it."""
        t = to_us(self.clock.now())
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
            assert vm is not None  # _first_live skips the removed slots
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
        self._tree.set(pos, NEG, 0)
        self._queued -= 1

    def _check_rate(self, endpoint: str, t: int) -> None:
        wait = self._rates[endpoint].refusal(t)
        if wait is not None:
            self._log(t, endpoint, None, "rate_limited")
            raise RateLimitExceeded(
                f"{endpoint}: more than {self.requests_per_second} calls in one second",
                endpoint=endpoint,
                retry_after=wait / SECOND,
            )
        self._rates[endpoint].record(t)

    def _start(self, t: int, vm_id: str | None) -> str:
        if vm_id is not None and vm_id in self._vms:
            raise ValueError(f"VM id {vm_id!r} is already taken")
        if self._enforce_rate:
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

    def _stop(self, t: int, vm_id: str) -> None:
        if self._enforce_rate:
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
        tree = ChainTree(capacity, self._interval)
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

    def _all_times(self) -> Iterator[tuple[_VM, int | None, int | None]]:
        """Every VM with its (allocation start, ready): recorded, or projected while queued."""
        projected = self._projected_queue()
        for vm in self._vms.values():
            alloc_start, ready = projected.get(vm.id, (vm.alloc_start, vm.ready))
            yield vm, alloc_start, ready

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
            self.calls.append({"t": from_us(t), "endpoint": endpoint, "vm": vm_id, "outcome": outcome})
