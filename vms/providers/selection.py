"""Which provider the live service talks to: ``provider_from_settings``.

One decision, made from settings: an ``HttpProvider`` when
``VM_PROVIDER_URL`` is set, else the in-process fake. Without a clock the
fake is process-wide, so every caller in one process (the scheduler loop,
tasks, the admin) sees the same VMs; that shared instance is this module's
only state (tests start from a new one by resetting ``_default_fake``).
"""

from __future__ import annotations

import threading

from django.conf import settings

from vms.clock import Clock, SystemClock
from vms.providers.fake import FakeProvider
from vms.providers.http import HttpProvider
from vms.providers.protocol import CloudProvider

__all__ = ["provider_from_settings"]

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
