"""``HttpProvider``: the provider seam spoken over HTTP (``run_mock_cloud`` or a real cloud).

Its job is to turn every way an HTTP call can go wrong into the one thing the
scheduler's bookkeeping needs to know: did the call certainly have no effect
(``RateLimitExceeded``, ``UnknownVM``, a refused connection) or may it have
been carried out (a timeout or 5xx after the request was sent). It never
retries on its own: a retried start could allocate a VM twice, so retrying is
the caller's decision.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import quote

import requests

from vms.exceptions import ProviderError, RateLimitExceeded, UnknownVM

__all__ = ["HttpProvider"]


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
