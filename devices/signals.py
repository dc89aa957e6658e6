"""What the device pool tells the rest of the service.

``devices`` knows nothing of the work that runs on devices: the app that runs
it (``jobs``) connects to these signals in its ``AppConfig.ready()``, so the
dependency points one way (jobs -> devices). Both are sent synchronously by
``devices.services``, inside the transaction that changed the device, so a
receiver's writes commit or roll back with the device change.
"""

from __future__ import annotations

from django.dispatch import Signal

# Whatever ``device`` was running is lost on its side: it registered again
# after a restart, was removed, or went silent. Sent while the device's row is
# locked. Receivers put that work back in the queue and return how many jobs
# they moved (the count ``device_remove`` reports). Keyword: ``device``.
device_work_lost = Signal()

# The pool changed in a way that may let a device take work (a registration,
# an edit, a resume, a device back online). Keyword: ``topic`` (a device type,
# or "devices" for any). Receivers wake whatever waits for free devices.
pool_changed = Signal()
