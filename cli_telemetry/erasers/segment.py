"""Segment: a workspace regulation, ``SUPPRESS_WITH_DELETE``, for the install ids as userIds.

Only for a Segment sink with the author's opt-in ``user_id="install"`` (``SEGMENT_USER_ID=
install``): Segment "offers the ability to delete and suppress data about end-users when
they are identifiable by a ``userId``"; without the opt-in our events carry only an
``anonymousId``, which a workspace regulation cannot name (its ``subjectType`` is
``USER_ID`` or ``OBJECT_ID``; ``ANONYMOUS_ID`` exists only for source-scoped regulations
of some types), so there is nothing to ask.

Documentation: https://segment.com/docs/privacy/user-deletion-and-suppression/ (now
https://www.twilio.com/docs/segment/privacy/user-deletion-and-suppression: regulations
are asynchronous; the Public API deletes "up to 5000 ``userId``s per call"; regulations
are "limited to 110,000 users every calendar month"; ``SUPPRESS_WITH_DELETE`` is a
"Segment & Destination" regulation: "Suppress new data and delete existing data", which
deletes from Segment's systems, "connected warehouses or S3 buckets", and forwards the
request to the destinations that support deletion, without a guarantee that they do it;
data sent to device-mode destinations is not suppressed) and
https://docs.segmentapis.com/tag/Deletion-and-Suppression ("Create Workspace
Regulation", ``POST /regulations``, a Public API token as ``Authorization: Bearer``;
the input ``{"regulationType", "subjectType", "subjectIds"}``; answers 200 with
``{"data": {"regulateId": ...}}``, and 404, 422 or 429 with an error envelope, as the
generated SDKs, segmentio/public-api-sdk-python and -typescript, declare). The Public API
is served on ``https://api.segmentapis.com``, and on ``https://eu1.api.segmentapis.com``
for a workspace in the EU region; it is available on Segment's Team and Business plans.

The request, one per 5000 ids::

    POST {host}/regulations
    Authorization: Bearer <Public API token>
    Accept: application/vnd.segment.v1+json
    {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID", "subjectIds": [...]}

Suppression as well as deletion: an install id is never used again after ``telemetry
disable`` (a later ``enable`` makes a new one), so suppressing it loses nothing, and it
drops whatever of the install was still on its way when the collector asked.

Outcomes: a 200 is delivered (Segment created the regulation and runs it on its own time;
its status is not followed here). Other answers as `classify` says: 401/403 (a bad token,
a token without the workspace's privacy permissions), 404 and 422 (input Segment refuses)
are refusals; 429 (the Public API's rate limit, or the month's quota) and 5xx are retried,
after the Retry-After Segment gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..sinks.base import Delivery
from ..sinks.http import Transport
from .common import post_batches

BATCH: Final = 5000
"""Ids per request: "You can delete up to 5000 ``userId``s per call"."""
PATH: Final = "/regulations"
ACCEPT: Final = "application/vnd.segment.v1+json"
"""The Public API's versioned media type, as its SDKs ask for it: version 1, the stable."""
HOSTS: Final = {
    "https://api.segment.io": "https://api.segmentapis.com",
    "https://events.eu1.segmentapis.com": "https://eu1.api.segmentapis.com",
}
"""Segment's event hosts of each region, and the Public API's host of the same region."""


def api_host(event_host: str) -> str | None:
    """The Public API's host for the sink's ``host``, if it is one of Segment's own."""
    return HOSTS.get(event_host.rstrip("/"))


class SegmentEraser:
    """Asks Segment to suppress and delete install ids, as userIds, in one workspace (the
    token's)."""

    def __init__(
        self,
        *,
        name: str = "segment",
        public_api_token: str,
        host: str = "https://api.segmentapis.com",
    ) -> None:
        self.name = name
        self.url = host.rstrip("/") + PATH
        self._auth = {"Authorization": f"Bearer {public_api_token}"}
        self._transport = Transport()

    def __repr__(self) -> str:
        return f"SegmentEraser(name={self.name!r}, url={self.url!r})"

    def erase(self, install_ids: Sequence[str], deadline: float) -> Delivery:
        def regulation(ids: list[str]) -> object:
            return {
                "regulationType": "SUPPRESS_WITH_DELETE",
                "subjectType": "USER_ID",
                "subjectIds": ids,
            }

        headers = {"Content-Type": "application/json", "Accept": ACCEPT, **self._auth}
        return post_batches(
            self._transport, self.url, headers, install_ids, BATCH, regulation, deadline
        )

    def close(self) -> None:
        self._transport.close()
