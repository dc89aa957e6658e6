"""Calls the service makes to addresses its users chose: result callbacks and
HTTP devices.

Both are server-side requests to a URL someone else typed, so every call here:

* checks the target against a policy *after* resolving it, every address the
  name has (a callback may not reach loopback, private, link-local, CGNAT,
  multicast, reserved or unspecified space, in any spelling: IPv6, IPv4-mapped
  or 6to4/NAT64/Teredo-embedded IPv4, decimal/octal/hex/short IPv4);
* connects to exactly the address it checked (DNS is asked once; the Host
  header, TLS SNI and certificate check use the original name), so a name
  that changes its answer between check and connect gains nothing;
* never follows a redirect (http.client does not; a 3xx is the caller's
  failure);
* has one *total* deadline over resolve + connect + TLS + send + every read,
  so a peer trickling a byte every few seconds is cut off on time, and reads
  at most ``max_body`` bytes of the answer.

Failures are ``OutboundError`` whose ``reason`` is a fixed phrase safe to show
the user; what the peer sent never goes into it.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Fixed, user-visible reasons (callers prefix who answered).
NOT_ALLOWED = "address not allowed"
CONNECT_FAILED = "connection failed"
RESOLVE_FAILED = "could not resolve host"
TLS_FAILED = "TLS handshake or certificate check failed"
BAD_ANSWER = "invalid HTTP answer"
TOO_LARGE = "answer too large"
BAD_URL = "invalid URL"

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\.?$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$"
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "0.x.y.z" reaches the local host on Linux
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_LOCALHOST = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


class OutboundError(Exception):
    """A call that did not get an answer. ``reason`` is fixed text for
    users; ``slow`` marks a timeout or a failed connect (the peer may be
    holding workers up); ``detail`` is for operators' logs only."""

    def __init__(self, reason: str, *, slow: bool = False, detail: str = ""):
        super().__init__(reason)
        self.reason, self.slow, self.detail = reason, slow, detail


class InvalidTarget(ValueError):
    """The URL cannot name a target at all (400 at submission)."""


def timeout_reason(seconds: float) -> str:
    return f"timed out after {seconds:g} s"


# --- addresses ------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scheme: str  # "http" or "https"
    host: str  # as given (lowercase, IDNA/ASCII; IPv6 without brackets)
    port: int
    path: str  # path + query, at least "/"
    literal: IPAddress | None  # the host as an IP address, whatever its spelling

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _ipv4_number(part: str) -> int | None:
    """One dotted part the way URL parsers and inet_aton read it: 0x.. hex,
    0.. octal, else decimal. None when it is not a number."""
    if part[:2].lower() == "0x":
        digits, base = part[2:] or "0", 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    try:
        return int(digits, base) if digits.isalnum() and digits.isascii() else None
    except ValueError:
        return None


def parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """``127.0.0.1``, ``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``
    all name 127.0.0.1. Returns None for a name; raises InvalidTarget for a
    host that ends in a number yet is no valid address (``1.2.3.4.5``,
    ``256.1.1.1``), as the WHATWG URL standard does."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if _ipv4_number(parts[-1]) is None and not parts[-1].isdigit():
        return None
    parsed = [_ipv4_number(p) if p else None for p in parts]
    numbers = [n for n in parsed if n is not None]
    if len(parts) > 4 or len(numbers) < len(parsed):
        raise InvalidTarget("the host looks like an IPv4 address but is not a valid one")
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise InvalidTarget("the host looks like an IPv4 address but is not a valid one")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_target(url: str) -> Target:
    """Split an http(s) URL into what a call needs. Raises InvalidTarget
    with a message for users."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidTarget("only http:// and https:// URLs are allowed")
    if not url[len(parts.scheme) + 1 :].startswith("//") or not parts.hostname:
        raise InvalidTarget("the URL needs a host, as in https://host/path")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidTarget("user:password@ is not allowed in the URL")
    host = parts.hostname  # lowercased, brackets removed
    literal: IPAddress | None
    if ":" in host:
        try:
            literal = ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidTarget("the host is not a valid IPv6 address") from None
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidTarget("the host is not a valid name") from None
        literal = parse_ipv4_literal(host)
        if literal is None and not _HOSTNAME_RE.match(host):
            raise InvalidTarget("the host is not a valid name")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path, literal)


def with_embedded(ip: IPAddress) -> Iterator[IPAddress]:
    """The address and every IPv4 address an IPv6 one carries inside
    (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64): each is where the
    packet may really end up, so each must pass the policy."""
    yield ip
    if ip.version != 6:
        return
    embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    yield from (e for e in embedded if e is not None)


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast: what an untrusted callback may reach."""
    return (
        not (
            ip.is_private
            or ip.is_loopback
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
            or (ip.version == 6 and ip.is_site_local)
            or (ip.version == 4 and (ip in _SHARED or ip in _THIS_NETWORK))
        )
        and ip.is_global
    )


def never_reachable(ip: IPAddress) -> bool:
    """Targets no device may have: cloud metadata and other link-local
    services, multicast/broadcast, reserved and unspecified space."""
    if ip.is_loopback:  # ::1 counts as "reserved" in ipaddress; loopback is allowed
        return False
    return (
        ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (ip.version == 4 and ip in _THIS_NETWORK)
    )


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def in_networks(ip: IPAddress, networks: Iterable[Network]) -> bool:
    return any(a.version == n.version and a in n for a in with_embedded(ip) for n in networks)


def unmapped(ip: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` is the IPv4 address a.b.c.d on the wire."""
    return (ip.ipv4_mapped if ip.version == 6 else None) or ip


def callback_address_allowed(ip: IPAddress) -> bool:
    """Public addresses, plus CALLBACK_ALLOWED_NETWORKS chosen on purpose."""
    ip = unmapped(ip)
    if in_networks(ip, parse_networks(settings.CALLBACK_ALLOWED_NETWORKS)):
        return True
    return all(is_public(a) for a in with_embedded(ip))


def device_address_allowed(ip: IPAddress) -> bool:
    """Lab QPUs live on private networks, so loopback/private/global are
    fine by default; DEVICE_ALLOWED_NETWORKS narrows that down."""
    ip = unmapped(ip)
    if any(never_reachable(a) for a in with_embedded(ip)):
        return False
    networks = parse_networks(settings.DEVICE_ALLOWED_NETWORKS)
    return not networks or in_networks(ip, networks)


# --- resolution -------------------------------------------------------------


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to. Tests replace this to play a DNS
    server that changes its answer."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # An inet sockaddr starts with the address text (the stubs also allow the
    # (int, bytes) form of families getaddrinfo does not return here).
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise OutboundError(timeout_reason(self.seconds), slow=True)
        return left


def resolve_checked(target: Target, allowed: Callable[[IPAddress], bool], deadline: Deadline) -> list[IPAddress]:
    """The addresses to connect to, all of them allowed, or OutboundError.
    getaddrinfo cannot be interrupted, so it runs in a thread the deadline
    stops waiting for."""
    if target.literal is not None:
        addresses = [target.literal]
    elif target.host.rstrip(".") == "localhost" or target.host.rstrip(".").endswith(".localhost"):
        addresses = list(_LOCALHOST)  # RFC 6761: loopback, whatever the resolver says
    else:
        answer: dict = {}

        def work():
            try:
                answer["ips"] = resolve_host(target.host, target.port)
            except (OSError, UnicodeError) as exc:
                answer["error"] = exc

        worker = threading.Thread(target=work, daemon=True, name=f"resolve {target.host}")
        worker.start()
        worker.join(deadline.remaining())
        deadline.remaining()
        if "ips" not in answer:
            raise OutboundError(RESOLVE_FAILED, slow=True, detail=str(answer.get("error", "")))
        try:
            addresses = [ipaddress.ip_address(ip) for ip in answer["ips"]]
        except ValueError as exc:
            raise OutboundError(RESOLVE_FAILED, detail=str(exc)) from None
    if not addresses:
        raise OutboundError(RESOLVE_FAILED)
    refused = [str(ip) for ip in addresses if not allowed(ip)]
    if refused:
        raise OutboundError(NOT_ALLOWED, detail=f"{target.host} -> {', '.join(refused)}")
    return addresses


# --- the pinned, deadline-bound call ----------------------------------------


def open_socket(ip: IPAddress, port: int, timeout: float) -> socket.socket:
    """TCP connect to an already checked address (tests wrap this to see
    where a call really goes)."""
    return socket.create_connection((str(ip), port), timeout=timeout)


class _DeadlineReader(io.RawIOBase):
    """Every recv waits at most for what is left of the total deadline, so
    a trickle of single bytes cannot stretch a call."""

    def __init__(self, sock: socket.socket, deadline: Deadline):
        self.sock, self.deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.sock.settimeout(self.deadline.remaining())
        return self.sock.recv_into(buffer)


class _DeadlineSocket:
    """What http.client needs of a socket (sendall, makefile, close), with
    the total deadline applied to sending and to every read."""

    def __init__(self, sock: socket.socket, deadline: Deadline):
        self.sock, self.deadline = sock, deadline

    def sendall(self, data) -> None:
        self.sock.settimeout(self.deadline.remaining())  # bounds the whole sendall (3.5+)
        self.sock.sendall(data)

    def makefile(self, mode: str = "rb", *args, **kwargs):
        return io.BufferedReader(_DeadlineReader(self.sock, self.deadline))

    def close(self) -> None:
        # http.client closes its connection as soon as it has read the
        # headers of a "Connection: close" answer, while the body is still
        # to be read; ``post`` closes the real socket when it is done.
        pass


def _connect(target: Target, addresses: list[IPAddress], deadline: Deadline) -> socket.socket:
    error: OSError | None = None
    for ip in addresses:
        try:
            sock = open_socket(ip, target.port, deadline.remaining())
            break
        except TimeoutError as exc:
            error = exc
            deadline.remaining()
        except OSError as exc:
            error = exc
    else:
        raise OutboundError(CONNECT_FAILED, slow=True, detail=str(error))
    if target.scheme == "https":
        try:
            sock.settimeout(deadline.remaining())  # CPython bounds the whole handshake by it
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
        except OutboundError:
            sock.close()
            raise
        except TimeoutError:
            sock.close()
            raise OutboundError(timeout_reason(deadline.seconds), slow=True) from None
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            sock.close()
            raise OutboundError(TLS_FAILED, detail=str(exc)) from None
    return sock


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    allowed: Callable[[IPAddress], bool],
    max_body: int = 0,
) -> Answer:
    """POST ``body`` to ``url`` under the policy ``allowed``; at most
    ``timeout`` seconds in all. Reads at most ``max_body`` bytes of the answer
    (0: none). Any status is an Answer: redirects are never followed."""
    deadline = Deadline(timeout)
    try:
        target = parse_target(url)
    except InvalidTarget as exc:
        raise OutboundError(BAD_URL, detail=str(exc)) from None
    sock = _connect(target, resolve_checked(target, allowed, deadline), deadline)
    connection_class = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(target.host, target.port)
    connection.sock = _DeadlineSocket(sock, deadline)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(max_body + 1) if max_body else b""
        if len(data) > max_body:
            raise OutboundError(TOO_LARGE, detail=f"over {max_body} bytes")
        return Answer(response.status, data)
    except TimeoutError:
        raise OutboundError(timeout_reason(timeout), slow=True) from None
    except (http.client.HTTPException, ValueError) as exc:
        raise OutboundError(BAD_ANSWER, detail=f"{type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise OutboundError(CONNECT_FAILED, detail=str(exc)) from None
    finally:
        connection.close()
        sock.close()


# --- checks at submission ----------------------------------------------------

# A name is resolved at submission only to refuse an obvious internal target
# early; a resolver slower than this is left to the check at delivery.
SUBMIT_RESOLVE_SECONDS = 2.0


def callback_url_problem(url: str) -> str | None:
    """Why ``url`` may not be a callback URL, or None. Literal addresses in
    any spelling and names resolving (now) to refused addresses are refused;
    a name that does not resolve now is checked again at every delivery."""
    try:
        target = parse_target(url)
    except InvalidTarget as exc:
        return f"Not a usable callback URL: {exc}."
    try:
        resolve_checked(target, callback_address_allowed, Deadline(SUBMIT_RESOLVE_SECONDS))
    except OutboundError as exc:
        if exc.reason == NOT_ALLOWED:
            return (
                "This host is or resolves to an address callbacks may not reach (loopback, private, link-local, "
                "shared, multicast, reserved or unspecified); use a public address."
            )
    return None
