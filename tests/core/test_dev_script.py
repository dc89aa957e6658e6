"""dev.py passes SIGINT/SIGTERM sent to its own pid on to the service."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.e2e_helpers import ROOT

CHILD = (
    "import signal, sys, threading\n"
    "got = threading.Event()\n"
    "signal.signal(signal.SIGINT, lambda s, f: got.set())\n"
    "signal.signal(signal.SIGTERM, lambda s, f: (print('TERM', flush=True), got.set()))\n"
    "print('READY', flush=True)\n"
    "got.wait(60)\n"
    "print('STOPPING', flush=True)\n"
    "sys.exit(3 if got.is_set() else 1)\n"
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_dev_py_reaches_the_service_once(sig):
    runner = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import dev; sys.exit(dev.supervise([sys.executable, '-c', {CHILD!r}]))"
    proc = subprocess.Popen([sys.executable, "-c", runner], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3
    assert out.splitlines()[-1] == "STOPPING"
