"""Mixpanel: its GDPR API's deletion task deletes everything of a distinct id.

Documentation: https://docs.mixpanel.com/docs/privacy/end-user-data-management (a GDPR
OAuth token, made in the account's Data & Privacy settings by a project owner or admin,
valid a year; "requests to export or delete end user data can take multiple weeks to
process") and https://docs.mixpanel.com/reference/gdpr-api ("Create a Deletion Task":
"This will schedule a deletion job that will delete all data, including events and user
profile data, for the users specified by distinct_ids ... It may take up to 30 days to
complete"; up to 1999 distinct ids a request; "a rate limit of 1 request per second for
GDPR APIs", a 429 past it). Its OpenAPI description (``gdpr.openapi.yaml``) serves it from
``https://{mixpanel|eu.mixpanel|in.mixpanel}.com/api/app``, by data residency, and takes
only the OAuth token: no service account.

The request, one per 1999 ids::

    POST {host}/api/app/data-deletions/v3.0/?token=<project token>
    Authorization: Bearer <GDPR OAuth token>
    {"distinct_ids": [...], "compliance_type": "GDPR"}

The ids are our sink's ``distinct_id``, the install id. Mixpanel answers
``{"status": "ok", "results": {"task_id": ...}}`` (201 in the OpenAPI description);
delivered means the task is scheduled, and Mixpanel runs it on its own time. Other answers
as `classify` says: 400 and 401/403 (a bad or expired token, a user who may not delete) are
refusals, 429 and 5xx retried.

The project token alone (what a tool ships) deletes nothing but profiles: ``/engage`` with
``$delete`` "permanently delete[s] the profile from Mixpanel, along with all of its
properties" (https://docs.mixpanel.com/reference/delete-profile); the events stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import urlencode

from ..sinks.base import Delivery
from ..sinks.http import Transport
from .common import post_batches

BATCH: Final = 1999
"""Distinct ids per request: "You can add up to 1999 distinct IDs" (the reference; the
privacy page says 2000: the lower holds for both)."""
PATH: Final = "/api/app/data-deletions/v3.0/"
HOSTS: Final = {
    "https://api.mixpanel.com": "https://mixpanel.com",
    "https://api-eu.mixpanel.com": "https://eu.mixpanel.com",
    "https://api-in.mixpanel.com": "https://in.mixpanel.com",
}
"""Mixpanel's ingestion host of each data residency, and its application API's host."""


def api_host(event_host: str) -> str | None:
    """The GDPR API's host for the sink's ``host``, if it is one of Mixpanel's own."""
    return HOSTS.get(event_host.rstrip("/"))


class MixpanelEraser:
    """Schedules Mixpanel's deletion of install ids' data in one project (the project
    ``token`` names it)."""

    def __init__(
        self,
        *,
        name: str = "mixpanel",
        token: str,
        gdpr_token: str,
        host: str = "https://mixpanel.com",
    ) -> None:
        self.name = name
        self.url = host.rstrip("/") + PATH
        self._url = f"{self.url}?{urlencode({'token': token})}"
        self._auth = {"Authorization": f"Bearer {gdpr_token}"}
        self._transport = Transport()

    def __repr__(self) -> str:
        return f"MixpanelEraser(name={self.name!r}, url={self.url!r})"

    def erase(self, install_ids: Sequence[str], deadline: float) -> Delivery:
        headers = {"Content-Type": "application/json", **self._auth}
        return post_batches(
            self._transport, self._url, headers, install_ids, BATCH,
            lambda ids: {"distinct_ids": ids, "compliance_type": "GDPR"}, deadline,
        )  # fmt: skip

    def close(self) -> None:
        self._transport.close()
