"""Access to programs and jobs.

Every authenticated user may submit work. Reads and cancels go through
``jobs.selectors.*_visible_to``: another user's program or job is answered
with 404, exactly like an id that does not exist, so ids of others' work are
not revealed. Staff see and may cancel everything.
"""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated


class CanSubmitJobs(IsAuthenticated):
    """Any authenticated user; anonymous requests get 401 (TokenAuthentication
    is the first authenticator, so DRF answers 401 with a challenge)."""
