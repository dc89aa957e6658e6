from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """The last sign of life of one background role ("qpu-workers",
    "vm-scheduler", "task-cluster"): one row per role, last writer wins, so
    readiness asks "has any process of this role been alive lately?"."""

    name = models.CharField(primary_key=True, max_length=50)
    beat_at = models.DateTimeField()
    # Who beat last (host:pid:...), for the operator reading /readyz.
    by = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at.isoformat()}"
