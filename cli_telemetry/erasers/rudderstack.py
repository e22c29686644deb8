"""RudderStack: a ``suppress_with_delete`` regulation for the install ids as userIds.

Only for a RudderStack sink with the author's opt-in ``user_id="install"``
(``RUDDERSTACK_USER_ID=install``): RudderStack's User Suppression API names users by
``userId``, and without the opt-in our events carry only an ``anonymousId``.

Documentation: https://www.rudderstack.com/docs/api/user-suppression-api/ (Enterprise
plan; "Bearer Authentication in the format ``Authorization: Bearer
<SERVICE_ACCESS_TOKEN>``", a workspace-level service access token, recommended for
production over a personal access token, which it also takes; the base URL
``https://api.rudderstack.com``, or ``https://api.eu.rudderstack.com`` for the EU region;
``POST /v2/regulations`` with ``regulationType`` "suppress" or "suppress_with_delete",
which "suppresses and deletes" the user's data; a suppression "drops the user events at
the source", and a suppression with delete deletes "any user data sent to a destination",
in the destinations named by ``destinationIds``, among those whose deletion RudderStack
supports (Amplitude, Braze, Redis, S3 and others), each user an object with its
``userId``).

The request, one per 1000 users::

    POST {host}/v2/regulations
    Authorization: Bearer <access token>
    {"regulationType": "suppress_with_delete", "destinationIds": [...],
     "users": [{"userId": ...}, ...]}

RudderStack stores no events of its own to delete: what is deleted is in the destinations
named, so the collector's operator names them (``RUDDERSTACK_DELETION_DESTINATIONS``, the
ids the dashboard or ``GET /v2/destinations`` gives).

Outcomes: a 2xx is delivered (the regulation is created; RudderStack runs it, and each
destination deletes on its own time). Other answers as `classify` says: 400 (a body or a
destination RudderStack refuses), 401/403 (a bad token, a plan without the API) are
refusals, 429 and 5xx retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..sinks.base import Delivery
from ..sinks.http import Transport
from .common import post_batches

BATCH: Final = 1000
"""Users per request. The documentation states no limit; 1000 keeps a request small (about
50 KB) and is PostHog's limit, the lowest documented of the others'."""
PATH: Final = "/v2/regulations"


class RudderStackEraser:
    """Asks RudderStack to suppress install ids, as userIds, and delete them from the
    ``destination_ids``."""

    def __init__(
        self,
        *,
        name: str = "rudderstack",
        access_token: str,
        destination_ids: Sequence[str],
        host: str = "https://api.rudderstack.com",
    ) -> None:
        self.name = name
        self.url = host.rstrip("/") + PATH
        self.destination_ids = list(destination_ids)
        self._auth = {"Authorization": f"Bearer {access_token}"}
        self._transport = Transport()

    def __repr__(self) -> str:
        return (
            f"RudderStackEraser(name={self.name!r}, url={self.url!r},"
            f" destination_ids={self.destination_ids!r})"
        )

    def erase(self, install_ids: Sequence[str], deadline: float) -> Delivery:
        def regulation(ids: list[str]) -> object:
            return {
                "regulationType": "suppress_with_delete",
                "destinationIds": self.destination_ids,
                "users": [{"userId": install_id} for install_id in ids],
            }

        headers = {"Content-Type": "application/json", **self._auth}
        return post_batches(
            self._transport, self.url, headers, install_ids, BATCH, regulation, deadline
        )

    def close(self) -> None:
        self._transport.close()
