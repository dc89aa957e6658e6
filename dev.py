#!/usr/bin/env python3
"""One-command entry points for a fresh machine with only Python 3.11+.

    python3 dev.py run     # venv + install + migrate + admin user + start everything
    python3 dev.py test    # venv + install + pytest (SQLite, or PostgreSQL if DATABASE_URL is set)
    python3 dev.py check   # venv + install + ruff (lint, format) + mypy, as CI runs them

Anything after the command is passed on (to `manage.py serve` or to pytest).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("VENV_DIR", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
# The service's SECRET_KEY, generated on the first run (git-ignored, like
# .admin-credentials): the repository holds no key, the service needs one.
SECRET_KEY_FILE = ROOT / ".secret-key"


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


def secret_key(path: Path = SECRET_KEY_FILE, environ: dict[str, str] = os.environ) -> str:
    """SECRET_KEY from the environment if set, else the one kept in ``path``
    (created on first use, readable by the owner only)."""
    if environ.get("SECRET_KEY", "").strip():
        return environ["SECRET_KEY"].strip()
    if not path.exists() or not path.read_text().strip():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50) + "\n")
        print(f"Generated a SECRET_KEY in {path.name} (keep it; it is git-ignored).", flush=True)
    path.chmod(0o600)
    return path.read_text().strip()


def manage(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.check_call([str(PY), str(ROOT / "manage.py"), *args], cwd=ROOT, env=env)


def run(extra: list[str]) -> int:
    ensure_venv()
    # METRICS_DIR: /metrics sums the events of every process of the program
    # (web, workers, the task cluster's children); serve empties it at start.
    env = {"METRICS_DIR": str(ROOT / ".metrics"), **os.environ, "SECRET_KEY": secret_key()}
    manage("migrate", "--noinput", "-v", "0", env=env)
    manage("bootstrap_admin", env=env)
    return supervise([str(PY), str(ROOT / "manage.py"), "serve", *extra], env=env)


def supervise(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``command`` until it exits; returns its exit code.

    It runs in its own process group and this process passes on SIGINT and
    SIGTERM: Ctrl-C in the terminal and `kill -INT <pid of dev.py>` both reach
    it exactly once, and it stops cleanly by itself."""
    child = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)

    def pass_on(signum, frame):
        child.send_signal(signum)

    signal.signal(signal.SIGINT, pass_on)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, pass_on)
    return child.wait()


def test(extra: list[str]) -> int:
    ensure_venv()
    return subprocess.call([str(PY), "-m", "pytest", *extra], cwd=ROOT)


def check(extra: list[str]) -> int:
    """ruff's lint and format check, then mypy (settings in pyproject.toml);
    non-zero when any of them finds something."""
    ensure_venv()
    # mypy's Django plugin loads the settings, which need a SECRET_KEY; no key is used.
    env = {**os.environ, "SECRET_KEY": os.environ.get("SECRET_KEY") or "mypy-only-not-a-secret"}
    steps = [
        [str(PY), "-m", "ruff", "check", "."],
        [str(PY), "-m", "ruff", "format", "--check", "."],
        [str(PY), "-m", "mypy", *extra],
    ]
    failed = 0
    for step in steps:
        print("$", " ".join(step[2:]), flush=True)
        failed |= subprocess.call(step, cwd=ROOT, env=env) != 0
    return 1 if failed else 0


COMMANDS = {"run": run, "test": test, "check": check}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
