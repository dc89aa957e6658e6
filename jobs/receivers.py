"""Keeping one slow callback receiver from holding up everybody's deliveries.

Deliveries share a few django-q2 workers. A receiver that never answers
costs a worker CALLBACK_TIMEOUT_SECONDS per delivery; with many pending
deliveries to it, every other user's results would wait behind them. So a
receiver (scheme://host:port) whose delivery timed out or could not connect is
recorded in ``SlowReceiver`` until now + CALLBACK_SLOW_RECEIVER_SECONDS:

* before then, its deliveries are rescheduled to that time without a network
  call and without using an attempt (``Gate.defer_until``);
* then exactly one delivery *probes* it (a conditional UPDATE picks the
  winner among concurrent workers and moves ``until`` past the probe's
  timeout); success or any HTTP answer clears the record, another timeout or
  refused connect renews it;
* a receiver slow for longer than its deliveries' own retries would have
  lasted (``give_up_after``) gets its waiting deliveries failed without a call,
  so every delivery ends in bounded time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When

from jobs.models import SlowReceiver


@dataclass(frozen=True)
class Gate:
    """What a delivery to the receiver may do now."""

    go: bool = False
    defer_until: datetime | None = None
    give_up: bool = False


def give_up_after() -> timedelta:
    """How long the retries of one delivery span (15 s * (2^7 - 1) = 32 min
    by default): a receiver slow that long fails its waiting deliveries."""
    spans = settings.CALLBACK_BACKOFF_SECONDS * (2 ** max(settings.CALLBACK_MAX_ATTEMPTS - 1, 0) - 1)
    return timedelta(seconds=max(spans, settings.CALLBACK_SLOW_RECEIVER_SECONDS))


def receiver_gate(*, receiver: str, now: datetime) -> Gate:
    row = SlowReceiver.objects.filter(receiver=receiver).values("since", "until").first()
    if row is None:
        return Gate(go=True)
    span = give_up_after()
    if row["until"] > now:
        return Gate(give_up=True) if now - row["since"] > span else Gate(defer_until=row["until"])
    # The quiet period is over: one delivery probes, the others wait for it.
    # A record idle for longer than the span starts a new spell.
    probe_until = now + timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS + 1)
    won = SlowReceiver.objects.filter(receiver=receiver, until__lte=now).update(
        until=probe_until, since=Case(When(until__lt=now - span, then=Value(now)), default=F("since"))
    )
    if won:
        return Gate(go=True)
    return Gate(give_up=True) if now - row["since"] > span else Gate(defer_until=probe_until)


def receiver_record(*, receiver: str, slow: bool, now: datetime) -> None:
    """After a call: a timeout or refused connect (re)starts the quiet
    period, any answer ends the slow spell."""
    if not slow:
        SlowReceiver.objects.filter(receiver=receiver).delete()
        return
    until = now + timedelta(seconds=settings.CALLBACK_SLOW_RECEIVER_SECONDS)
    if SlowReceiver.objects.filter(receiver=receiver).update(until=until):
        return
    try:
        with transaction.atomic():  # savepoint: another worker may insert it first
            SlowReceiver.objects.create(receiver=receiver, since=now, until=until)
    except IntegrityError:
        SlowReceiver.objects.filter(receiver=receiver).update(until=until)
