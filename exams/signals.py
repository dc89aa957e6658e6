"""What the exams app tells the rest of the service.

``exam_changed`` goes out after every committed write through
``exams.services`` (create, update, delete), with keyword ``exam_id``. The VM
scheduler connects to it in ``VmsConfig.ready()``; exams knows nothing of VMs.
Receivers run after the commit, so they always see the new rows, and a
receiver's failure is logged, never turned into an error of the write.
"""

from __future__ import annotations

from django.dispatch import Signal

exam_changed = Signal()
