"""``replay_calls``: judge a call log by re-running it through the provider model.

A simulation (or a test) claims "these calls were made and these VMs were
ready then". The judge must not trust the code that made the claim, so it
rebuilds the provider from the log alone: a new ``FakeProvider`` on a
``VirtualClock`` the replay owns, driven only through the fake's public
methods (``start_with_id``, ``stop``, ``timeline``). The replay therefore
exercises exactly the code path a live caller does, and cannot depend on the
fake's internals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from vms.clock import VirtualClock
from vms.exceptions import RateLimitExceeded, UnknownVM
from vms.providers.fake import FakeProvider

__all__ = ["replay_calls"]

# (t, endpoint, vm, outcome): t may be an ISO string; vm is None for a start that got no id
Call = tuple[datetime | str, str, str | None, str] | Mapping[str, Any]


def _parse_time(value: Any, index: int) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"call {index}: bad time {value!r}") from exc
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"call {index}: time must be a timezone-aware datetime or ISO string, got {value!r}")
    return value


def _fields(call: Call) -> tuple[Any, Any, Any, Any]:
    """(t, endpoint, vm, outcome) of a tuple or a mapping (outcome defaults to ok)."""
    if isinstance(call, Mapping):
        return call.get("t"), call.get("endpoint"), call.get("vm"), call.get("outcome", "ok")
    return call


def _apply(
    provider: FakeProvider, index: int, t: datetime, endpoint: str, vm_id: Any, *, strict: bool, rps: int
) -> None:
    """One accepted call, through the fake's public API; a call it refuses is an error in strict mode."""
    try:
        if endpoint == "start":
            if not vm_id:
                raise ValueError("a start recorded as ok needs the VM id")
            provider.start_with_id(str(vm_id))
        else:
            provider.stop(str(vm_id))
    except RateLimitExceeded as exc:
        raise ValueError(
            f"call {index} ({endpoint} {vm_id} at {t.isoformat()}) is recorded ok but the provider would "
            f"refuse it: more than {rps} {endpoint} calls in one second"
        ) from exc
    except UnknownVM as exc:
        if strict:
            raise ValueError(f"call {index}: stop of {vm_id}, which was never started") from exc
    except ValueError as exc:
        if strict:
            raise ValueError(f"call {index}: {exc}") from exc


def replay_calls(
    calls: Iterable[Call],
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
    Without it the rate limit is not applied and unknown ids are ignored.
    """
    provider: FakeProvider | None = None
    clock: VirtualClock | None = None
    last: datetime | None = None
    for index, call in enumerate(calls):
        t, endpoint, vm_id, outcome = _fields(call)
        t = _parse_time(t, index)
        if last is not None and t < last:
            raise ValueError(f"call {index} at {t.isoformat()} is earlier than the call before it ({last.isoformat()})")
        last = t
        if endpoint not in ("start", "stop") or outcome != "ok":
            continue
        if provider is None or clock is None:
            clock = VirtualClock(t)
            provider = FakeProvider(
                clock=clock,
                allocation_interval_s=allocation_interval_s,
                requests_per_second=requests_per_second,
                enforce_rate_limit=strict,
            )
        clock.advance_to(t)
        _apply(provider, index, t, endpoint, vm_id, strict=strict, rps=requests_per_second)
    return {} if provider is None else provider.timeline()
