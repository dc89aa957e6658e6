#!/usr/bin/env python3
"""One-command entry points for a fresh machine with only Python 3.11+.

    python3 dev.py run     # venv + install + migrate + admin user + start everything
    python3 dev.py test    # venv + install + pytest (SQLite, or PostgreSQL if DATABASE_URL is set)

Anything after the command is passed on (to `manage.py serve` or to pytest).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VENV_DIR", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"Creating virtualenv in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    req = ROOT / "requirements.txt"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()
    stamp = VENV / ".requirements.sha256"
    if not stamp.exists() or stamp.read_text() != digest:
        print("Installing requirements ...", flush=True)
        subprocess.check_call([str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(req)])
        stamp.write_text(digest)


def manage(*args: str) -> None:
    subprocess.check_call([str(PY), str(ROOT / "manage.py"), *args], cwd=ROOT)


def run(extra: list[str]) -> int:
    ensure_venv()
    manage("migrate", "--noinput", "-v", "0")
    manage("bootstrap_admin")
    return supervise([str(PY), str(ROOT / "manage.py"), "serve", *extra])


def supervise(command: list[str]) -> int:
    """Run ``command`` until it exits; returns its exit code.

    It runs in its own process group and this process passes on SIGINT and
    SIGTERM: Ctrl-C in the terminal and `kill -INT <pid of dev.py>` both reach
    it exactly once, and it stops cleanly by itself."""
    child = subprocess.Popen(command, cwd=ROOT, start_new_session=True)

    def pass_on(signum, frame):
        child.send_signal(signum)

    signal.signal(signal.SIGINT, pass_on)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, pass_on)
    return child.wait()


def test(extra: list[str]) -> int:
    ensure_venv()
    return subprocess.call([str(PY), "-m", "pytest", *extra], cwd=ROOT)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        print(__doc__)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    return run(extra) if command == "run" else test(extra)


if __name__ == "__main__":
    sys.exit(main())
