"""What the scheduler may assume of any cloud provider: two calls and three errors.

The brief's provider has ``start() -> uuid`` and ``stop(uuid)``, both of which
can be refused by a rate limit. This module is the seam the scheduler is
written against; ``fake``, ``http`` and the mock server implement it. The
errors live in ``vms.exceptions`` (they are ``DomainError``s) and are
re-exported here so that the seam reads as one place.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vms.exceptions import ProviderError, RateLimitExceeded, UnknownVM

__all__ = ["CloudProvider", "ProviderError", "RateLimitExceeded", "UnknownVM", "VMState"]


@runtime_checkable
class CloudProvider(Protocol):
    def start(self) -> str:
        """Request a VM; returns its uuid. May raise RateLimitExceeded / ProviderError."""
        ...

    def stop(self, vm_id: str) -> None:
        """Release a VM (waiting, allocating or ready). May raise RateLimitExceeded / ProviderError."""
        ...


class VMState:
    """A VM's state in the provider model (not the scheduler's ``vms.models.VMState``)."""

    WAITING = "waiting"
    ALLOCATING = "allocating"
    READY = "ready"
    STOPPED = "stopped"
