"""Local peers that misbehave on purpose: they answer with redirects, error
bodies and huge bodies, trickle bytes, or never answer. Each is a plain TCP
server in a thread, so the tests see exactly what reached it."""

from __future__ import annotations

import socket
import threading

import pytest
from django.utils import timezone

from jobs.models import CallbackStatus, Job, JobStatus
from tests.factories import make_job, make_program


class Peer:
    """Accepts connections on 127.0.0.1 and runs ``behaviour(peer, conn,
    request)`` for each one, in its own thread."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests: list[bytes] = []  # head + body of every request read
        self.accepted = 0
        self.got_request = threading.Event()
        self.cut_off = threading.Event()  # the client went away mid-answer
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            try:
                request = read_request(conn)
                self.requests.append(request)
                self.got_request.set()
                self.behaviour(self, conn, request)
            except OSError:
                self.cut_off.set()

    def close(self):
        self.stop.set()
        self.sock.close()


def read_request(conn) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None):
    def behaviour(peer, conn, request):
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        conn.sendall(
            f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n".encode() + body
        )

    return behaviour


def trickle(head: bytes = b"", every: float = 0.2):
    """Send ``head`` at once, then one byte every ``every`` seconds forever
    (a status line that never ends, or a body that never completes)."""

    def behaviour(peer, conn, request):
        conn.sendall(head)
        while not peer.stop.wait(every):
            try:
                conn.sendall(b"x" if head else b"H")
            except OSError:
                peer.cut_off.set()
                return

    return behaviour


def hold(peer, conn, request):
    """Read the request, never answer; notice when the client gives up."""
    conn.settimeout(0.1)
    while not peer.stop.is_set():
        try:
            if conn.recv(1) == b"":
                peer.cut_off.set()
                return
        except TimeoutError:
            continue


@pytest.fixture
def peer():
    made: list[Peer] = []

    def make(behaviour):
        p = Peer(behaviour)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def finished_job(db, user):
    """A done job of a program with ``callback_url``, its delivery pending."""

    def make(callback_url: str, *, owner=None) -> Job:
        program = make_program(owner or user, callback_url=callback_url)
        return make_job(
            program,
            status=JobStatus.DONE,
            result=["01"],
            attempts=1,
            started_at=timezone.now(),
            callback_status=CallbackStatus.PENDING,
        )

    return make


@pytest.fixture
def fake_dns(monkeypatch):
    """Plays the DNS server: ``fake_dns({"name": [answers...]})``; each
    lookup of a name pops its next answer (the last one repeats). Returns
    the list of lookups made."""
    from core import outbound

    lookups: list[str] = []

    def install(answers: dict[str, list[list[str]]]):
        def resolve(host, port):
            lookups.append(host)
            queue = answers.get(host)
            if not queue:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return queue.pop(0) if len(queue) > 1 else queue[0]

        monkeypatch.setattr(outbound, "resolve_host", resolve)
        return lookups

    return install


@pytest.fixture
def dialed(monkeypatch):
    """Records every address a call connects to (and still connects)."""
    from core import outbound

    seen: list[str] = []
    real = outbound.open_socket

    def open_socket(ip, port, timeout):
        seen.append(str(ip))
        return real(ip, port, timeout)

    monkeypatch.setattr(outbound, "open_socket", open_socket)
    return seen
