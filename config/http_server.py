"""The HTTP server of ``manage.py serve``: waitress, set up to keep answering
while many clients hold connections open and send nothing (slowloris).

Why waitress still fits: it reads and parses every request on one
asynchronous loop and hands a request to a worker thread only once it is
complete, so a connection that sends half a request line costs a file
descriptor and a few kilobytes, never a thread. What its defaults get wrong
for an exposed service, and what we set instead (settings ``HTTP_*``):

- ``connection_limit`` (waitress: 100). Past it waitress stops calling
  ``accept()``; new clients, the honest ones included, wait in the kernel's
  backlog until an idle connection times out (``channel_timeout``, 120 s by
  default). 100 stalled sockets were enough to take the API down. We allow
  ``HTTP_CONNECTION_LIMIT`` (10,000), clamped to the file descriptors the
  process may open.
- ``asyncore_use_poll`` (waitress: off, i.e. ``select()``). ``select()``
  cannot watch a descriptor numbered 1024 or higher: with the limit above
  it, the loop dies with "filedescriptor out of range in select()". We use
  ``poll()``, which has no such ceiling.
- ``channel_timeout`` / ``cleanup_interval`` (waitress: 120 s / 30 s). An
  idle or half-open connection is closed after ``HTTP_CHANNEL_TIMEOUT_SECONDS``
  (30) without a byte in either direction, checked every
  ``HTTP_CLEANUP_INTERVAL_SECONDS`` (5).
- no total deadline in waitress: a connection that trickles a byte now and
  then is never idle and would stay open for good. ``GuardedWSGIServer``
  closes one whose request (headers and body) is not complete
  ``HTTP_REQUEST_READ_TIMEOUT_SECONDS`` (60) after its first byte. Behind
  the reverse proxy this never fires (the proxy sends whole requests); the
  proxy's own ``client_header_timeout`` is the tighter bound there.
- accepting: waitress accepts one connection per turn of its loop, and a
  turn costs time in proportion to the open connections, so a burst of
  1,000 connections took seconds to drain from the backlog while an honest
  client queued behind them. ``GuardedWSGIServer`` accepts up to
  ``ACCEPT_BATCH`` per turn.
- the process's open-files soft limit (often 1,024) is raised towards its
  hard limit, as far as the connection limit needs (``raise_fd_limit``).
- proxy headers: waitress 3 drops ``X-Forwarded-*`` from every peer unless
  it is the trusted proxy, so ``HTTP_TRUSTED_PROXY`` names the reverse
  proxy's address; from it, waitress takes the scheme (``X-Forwarded-Proto``)
  and the client address (``X-Forwarded-For``, used by login lockouts).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass

from django.conf import settings
from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

logger = logging.getLogger(__name__)

# Descriptors kept for everything but client connections: database
# connections, the django-q2 pipes, log files, the workers' outbound HTTP
# calls, waitress's own trigger pipe and listening socket, and buffers that
# spill large bodies to temporary files.
FD_RESERVE = 256
# Connections accepted per turn of the loop (see the module docstring).
ACCEPT_BATCH = 64


@dataclass(frozen=True)
class FdLimit:
    soft: int
    hard: int  # -1: unlimited
    raised_from: int | None  # the soft limit before we raised it, if we did


def raise_fd_limit(*, wanted: int) -> FdLimit:
    """Raise the open-files soft limit to ``wanted``, or as close as the hard
    limit allows. A process may raise its own soft limit up to the hard one
    without privileges; where it cannot (no ``resource`` module, a sandbox
    refusing it), the current limit stays and the caller clamps to it."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits; waitress falls back to select() there
        return FdLimit(soft=wanted, hard=-1, raised_from=None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    target = wanted if hard == unlimited else min(wanted, hard)
    if soft != unlimited and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-files limit from %s to %s: %s", soft, target, exc)
            return FdLimit(soft=soft, hard=-1 if hard == unlimited else hard, raised_from=None)
        return FdLimit(soft=target, hard=-1 if hard == unlimited else hard, raised_from=soft)
    return FdLimit(soft=2**31 if soft == unlimited else soft, hard=-1 if hard == unlimited else hard, raised_from=None)


def effective_connection_limit(*, requested: int, fd_soft: int) -> int:
    """Each connection holds a descriptor: never promise more connections
    than the process can open, or ``accept()`` fails with EMFILE instead of
    the connection waiting its turn in the backlog."""
    return max(1, min(requested, fd_soft - FD_RESERVE))


def server_options(*, threads: int, connection_limit: int) -> dict:
    """The waitress adjustments ``serve`` uses (see the module docstring)."""
    options = {
        "threads": threads,
        "connection_limit": connection_limit,
        "channel_timeout": max(1, settings.HTTP_CHANNEL_TIMEOUT_SECONDS),
        "cleanup_interval": max(1, settings.HTTP_CLEANUP_INTERVAL_SECONDS),
        "asyncore_use_poll": True,
        "ident": "qpu-scheduler",
    }
    if settings.HTTP_TRUSTED_PROXY:
        options["trusted_proxy"] = settings.HTTP_TRUSTED_PROXY
        options["trusted_proxy_headers"] = {"x-forwarded-proto", "x-forwarded-for"}
    return options


class DeadlineChannel(HTTPChannel):
    """Remembers when the request it is reading began (its first byte)."""

    request_started = 0.0

    def received(self, data):
        before = self.request
        result = super().received(data)
        if self.request is not None and self.request is not before:
            self.request_started = time.time()
        return result


class GuardedWSGIServer(TcpWSGIServer):
    """Accepts up to ``ACCEPT_BATCH`` waiting connections per loop turn
    (waitress: one), never past the connection limit; and closes a
    connection whose request is still incomplete ``request_read_timeout``
    seconds after its first byte, however steadily it trickles."""

    channel_class = DeadlineChannel
    request_read_timeout: float | None = None

    def handle_accept(self):
        for _ in range(ACCEPT_BATCH):
            before = len(self._map)
            if before >= self.adj.connection_limit:
                return
            super().handle_accept()
            if len(self._map) == before:  # nothing waiting (or a failed accept, logged)
                return

    def maintenance(self, now):
        super().maintenance(now)  # idle connections
        if self.request_read_timeout is None:
            return
        cutoff = now - self.request_read_timeout
        for channel in self.active_channels.values():
            if channel.request is not None and not channel.requests and channel.request_started < cutoff:
                channel.will_close = True


def _create_server(application, *, host: str, port: int, options: dict, request_read_timeout: float):
    """What ``waitress.create_server`` does for TCP, with our server class:
    one listening socket per address ``host`` resolves to, one loop, one
    thread pool."""
    adj = Adjustments(host=host, port=port, **options)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    socket_map: dict = {}
    servers = [
        GuardedWSGIServer(application, map=socket_map, dispatcher=dispatcher, adj=adj, sockinfo=info)
        for info in adj.listen
    ]
    for server in servers:
        server.request_read_timeout = request_read_timeout
    if len(servers) == 1:
        return servers[0]
    multi = MultiSocketServer(
        socket_map, adj, [(s.effective_host, s.effective_port) for s in servers], dispatcher, servers[-1].log_info
    )
    multi.effective_port = servers[0].effective_port  # e.g. "localhost": 127.0.0.1 and ::1, same port
    return multi


def create_http_server(application, *, host: str, port: int, threads: int | None = None):
    """A waitress server for ``application`` on ``host:port``, not yet
    running (call ``.run()``); logs the limits it runs with."""
    threads = threads or settings.HTTP_THREADS
    fds = raise_fd_limit(wanted=settings.HTTP_CONNECTION_LIMIT + FD_RESERVE)
    limit = effective_connection_limit(requested=settings.HTTP_CONNECTION_LIMIT, fd_soft=fds.soft)
    if fds.raised_from is not None:
        logger.info("open-files limit raised from %s to %s (hard limit %s)", fds.raised_from, fds.soft, fds.hard)
    if limit < settings.HTTP_CONNECTION_LIMIT:
        logger.warning(
            "HTTP_CONNECTION_LIMIT %s lowered to %s: the open-files limit is %s (hard %s); raise it (ulimit -n)",
            settings.HTTP_CONNECTION_LIMIT,
            limit,
            fds.soft,
            fds.hard,
        )
    options = server_options(threads=threads, connection_limit=limit)
    read_timeout = max(1, settings.HTTP_REQUEST_READ_TIMEOUT_SECONDS)
    server = _create_server(application, host=host, port=port, options=options, request_read_timeout=read_timeout)
    logger.info(
        "HTTP server: %s threads, up to %s connections, idle ones closed after %ss and requests not received "
        "in full after %ss (checked every %ss), open-files limit %s, trusted proxy %s",
        threads,
        limit,
        options["channel_timeout"],
        read_timeout,
        options["cleanup_interval"],
        fds.soft,
        settings.HTTP_TRUSTED_PROXY or "none",
    )
    return server


def free_local_port() -> int:
    """A TCP port free on loopback now (for a child server we start: serve's
    mock-cloud role, the benchmarks' serve)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_gracefully(server, *, grace: float) -> bool:
    """After the serving loop ended (Ctrl-C, SIGTERM): accept no new
    connection, keep the loop turning until every request in progress is
    answered and its answer written (at most ``grace`` seconds), then close
    every socket. waitress's own ``close()`` closes the sockets under threads
    still running a request: that answer was lost and the thread died with
    "Bad file descriptor". Returns True when nothing was left in flight."""
    socket_map = server.map if isinstance(server, MultiSocketServer) else server._map
    for dispatcher in list(socket_map.values()):
        if isinstance(dispatcher, TcpWSGIServer):
            dispatcher.accepting = False
    deadline = time.monotonic() + grace
    drained = False
    while time.monotonic() < deadline:
        if not _in_flight(server.task_dispatcher, socket_map):
            drained = True
            break
        wasyncore.loop(timeout=0.05, map=socket_map, count=1)
    if not drained:
        logger.warning("HTTP server stopped with requests still in progress after %.0f s", grace)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
    wasyncore.close_all(socket_map)
    return drained


def _in_flight(dispatcher: ThreadedTaskDispatcher, socket_map: dict) -> bool:
    if dispatcher.active_count or dispatcher.queue:
        return True
    channels = [c for c in list(socket_map.values()) if isinstance(c, HTTPChannel)]
    return any(c.requests or c.total_outbufs_len for c in channels)


def freeze_startup_heap() -> None:
    """Keep what the process loaded at start (Django, the apps, the URL conf
    and every view module) out of the garbage collector's full passes. A
    burst of connections allocates enough objects to set off a full
    collection, which then walked the whole start-up heap while a request
    waited: the first call after a burst of 1,000 connections took ~400 ms
    with it, ~120 ms frozen. ``gc.freeze`` exists for this; call it last
    before serving, after any fork."""
    import gc

    from django.urls import get_resolver

    _ = get_resolver().url_patterns  # imports every view module now, not on the first request
    gc.collect()
    gc.freeze()
