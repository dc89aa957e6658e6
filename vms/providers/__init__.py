"""The cloud-provider seam: the API the scheduler calls, and its implementations.

One module per concern:

* ``protocol``: ``CloudProvider`` (``start() -> uuid``, ``stop(uuid)``), the
  model's ``VMState`` and the errors the seam may raise;
* ``instants``: the model's time as integer microseconds (exact arithmetic);
* ``allocation``: the FIFO allocation queue's arithmetic (a segment tree);
* ``rate_limit``: at most R calls per endpoint in any rolling second;
* ``fake``: ``FakeProvider``, the model exactly, in process, on an injected clock;
* ``replay``: ``replay_calls``, judging a call log through the fake's public API;
* ``http``: ``HttpProvider``, the client of an HTTP provider;
* ``mock_server``: ``MockCloudServer``, a fake behind HTTP (``run_mock_cloud``);
* ``selection``: ``provider_from_settings``, the fake or the HTTP client.

The names below are re-exported so that ``from vms.providers import X`` keeps
working; new code imports from the module that owns the name.
"""

from vms.providers.fake import FakeProvider
from vms.providers.http import HttpProvider
from vms.providers.mock_server import MockCloudServer
from vms.providers.protocol import CloudProvider, ProviderError, RateLimitExceeded, UnknownVM, VMState
from vms.providers.replay import replay_calls
from vms.providers.selection import provider_from_settings

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
