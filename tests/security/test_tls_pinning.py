"""A pinned HTTPS call still speaks TLS to the original name: SNI and the
certificate check use the host of the URL, not the address dialed."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from devices.clients import DeviceError, DeviceRef, HttpQPU, JobPayload
from tests.security.conftest import read_request

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command to make a certificate"
)


@pytest.fixture
def tls_device(tmp_path, monkeypatch):
    """An HTTPS QPU on 127.0.0.1 with a self-signed certificate for
    qpu.lab.example, trusted through SSL_CERT_FILE; records the SNI it gets."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=qpu.lab.example",
            "-addext",
            "subjectAltName=DNS:qpu.lab.example",
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    read_request(tls)
                    body = b'{"result": ["01"]}'
                    tls.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                    )
            except (ssl.SSLError, OSError):
                continue

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], names
    server.close()


def test_sni_and_certificate_use_the_original_name(tls_device, fake_dns, dialed):
    port, names = tls_device
    fake_dns({"qpu.lab.example": [["127.0.0.1"]]})
    device = DeviceRef(id="qpu-tls", type="analog", size=2, address=f"https://qpu.lab.example:{port}")
    # a generous deadline: the 2-core CI machine may be busy; this is no speed test
    assert HttpQPU(timeout=30).run(device=device, job=JobPayload(key="j", instructions=[], shots=1)) == ["01"]
    assert dialed == ["127.0.0.1"] and names == ["qpu.lab.example"]


def test_a_certificate_for_another_name_fails(tls_device, fake_dns):
    port, _ = tls_device
    fake_dns({"other.lab.example": [["127.0.0.1"]]})
    device = DeviceRef(id="qpu-tls", type="analog", size=2, address=f"https://other.lab.example:{port}")
    with pytest.raises(DeviceError, match="TLS handshake or certificate check failed"):
        HttpQPU(timeout=5).run(device=device, job=JobPayload(key="j", instructions=[], shots=1))
