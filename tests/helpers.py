"""Small helpers shared by the tests."""

from __future__ import annotations

import time
from pathlib import Path

# The checkout the tests belong to: where they find manage.py, dev.py and
# config/ to run as subprocesses. Their data lives under tests/data.
ROOT = Path(__file__).resolve().parents[1]


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; a
    bound for failing tests, never a speed check. Checks once more at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
