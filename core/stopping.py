"""How a long-running command learns that it should stop.

SIGINT and SIGTERM ask for a clean stop. Under ``config.supervisor`` a child
also stops when its supervisor is gone (``SUPERVISOR_PID`` no longer its
parent, e.g. the supervisor was killed with ``kill -9``): an orphaned worker
would otherwise keep running next to the one a restarted supervisor starts.

The signal handler only writes a byte to a pipe (the self-pipe trick); a
watcher thread reads it and sets the event. A handler that set a
``threading.Event`` itself could deadlock: it runs in the main thread, which
may hold that event's lock at that very moment (inside ``Event.wait``).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

SUPERVISOR_PID_ENV = "SUPERVISOR_PID"


def install_stop_signals(
    stop_event: threading.Event,
    *,
    on_stop: Callable[[], None] | None = None,
    poll_seconds: float = 1.0,
) -> threading.Thread:
    """SIGINT and SIGTERM (and the supervisor's death) set ``stop_event``,
    then call ``on_stop`` (e.g. to wake a loop sleeping on its own condition).
    Call it from the main thread; returns the watcher thread (a daemon)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    names: list[str] = []

    def handler(signum, frame):
        names.append(signal.Signals(signum).name)
        try:
            os.write(write_fd, b"!")
        except BlockingIOError:  # the pipe is full: a stop is already pending
            pass

    supervisor = _supervisor_pid()

    def watch() -> None:
        while not stop_event.is_set():
            ready, _, _ = select.select([read_fd], [], [], poll_seconds)
            if ready:
                logger.info("signal %s: stopping", names[-1] if names else "?")
                break
            if supervisor is not None and os.getppid() != supervisor:
                logger.warning("supervisor (pid %s) gone: stopping", supervisor)
                break
        stop_event.set()
        if on_stop is not None:
            on_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    thread = threading.Thread(target=watch, name="stop-signals", daemon=True)
    thread.start()
    return thread


def _supervisor_pid() -> int | None:
    """The supervisor this process was started by, if it still is our parent."""
    value = os.environ.get(SUPERVISOR_PID_ENV, "")
    if not value.isdigit() or int(value) != os.getppid():
        return None
    return int(value)
