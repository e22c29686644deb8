"""Amplitude: its User Privacy API deletes users by Amplitude ID, found by device id.

Our sink sends the install id as Amplitude's ``device_id`` and no ``user_id``; the User
Privacy API deletes "all data for a set of known Amplitude IDs or User IDs", not device ids.
So the eraser asks first, for each install id, which Amplitude ID that device has, with the
User Search of the Dashboard REST API, then deletes those Amplitude IDs.

Documentation: https://amplitude.com/docs/apis/analytics/dashboard-rest ("User search":
``GET /api/2/usersearch?user=`` takes "Amplitude ID, Device ID, User ID, or User ID
prefix", answers ``{"matches": [{"amplitude_id": ..., ...}], "type": ...}`` where ``type``
says which kind of id matched, ``match_user_or_device_id`` for a device id; at most 360
user searches an hour, 429 past it) and https://amplitude.com/docs/apis/analytics/user-privacy
(``POST /api/2/deletions/users`` with ``{"amplitude_ids": [...], "requester": ...}``, up to
100 ids a request, 1 request a second; "Amplitude deletes all events and user properties
added up until the time that job runs for each Amplitude ID"; requests are processed
"within 30 days"; a job can be revoked until three days before it runs). Both take the
project's API key and secret key as HTTP basic auth, on ``https://amplitude.com``, or
``https://analytics.eu.amplitude.com`` for the EU data center. The User Privacy API v2
(``privacy.amplitude.com``) is "in active development" per its page; this uses v1, which
Amplitude marks generally available.

Requests::

    GET {host}/api/2/usersearch?user=<install id>            (one per install id)
    POST {host}/api/2/deletions/users                        (one per 100 Amplitude IDs)
    {"amplitude_ids": [...], "requester": "click-telemetry collector"}

Only a ``match_user_or_device_id`` answer names the install's device (the sink sets no user
id; an install id is never an Amplitude ID nor another user's id); any other answer, or
none found, means Amplitude holds nothing of it: the erasure is delivered with the kind
`NOT_FOUND`, nothing is deleted for it. Other answers as `classify` says: 400 (a bad
request) and 401/403 (bad keys) are refusals, 429 and 5xx retried. A search whose answer
cannot be read is retried: without it nothing can be deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlencode

import urllib3

from ..sinks.base import DELIVERED, Delivery
from ..sinks.http import Transport, json_body
from .common import batches, delivered, json_object

BATCH: Final = 100
"""Amplitude IDs per deletion request: "up to 100 amplitude_ids or user_ids"."""
SEARCH_PATH: Final = "/api/2/usersearch"
DELETION_PATH: Final = "/api/2/deletions/users"
DEVICE_MATCH: Final = "match_user_or_device_id"
REQUESTER: Final = "click-telemetry collector"
"""The ``requester`` Amplitude records for its audit ("the internal user who requested the
deletion")."""
ANSWER_LIMIT: Final = 64 * 1024
HOSTS: Final = {
    "https://api2.amplitude.com": "https://amplitude.com",
    "https://api.amplitude.com": "https://amplitude.com",
    "https://api.eu.amplitude.com": "https://analytics.eu.amplitude.com",
}
"""Amplitude's event hosts and the host of its REST APIs, by data center."""


def api_host(event_host: str) -> str | None:
    """The REST APIs' host for the sink's ``host``, if it is one of Amplitude's own."""
    return HOSTS.get(event_host.rstrip("/"))


def device_amplitude_ids(answer: bytes) -> list[int] | None:
    """The Amplitude IDs a user search answer gives for a device id (empty when it matched
    none, or matched some other kind of id); None when the answer cannot be read."""
    value = json_object(answer)
    if value is None or not isinstance(value.get("matches", []), list):
        return None
    if value.get("type") != DEVICE_MATCH:
        return []
    matches: list[Any] = value.get("matches", [])
    return [
        match["amplitude_id"]
        for match in matches
        if isinstance(match, dict) and type(match.get("amplitude_id")) is int
    ]


class AmplitudeEraser:
    """Deletes the users of install ids (Amplitude's devices) in the API key's project."""

    def __init__(
        self,
        *,
        name: str = "amplitude",
        api_key: str,
        secret_key: str,
        host: str = "https://amplitude.com",
    ) -> None:
        self.name = name
        self.host = host.rstrip("/")
        self._auth = urllib3.util.make_headers(basic_auth=f"{api_key}:{secret_key}")
        self._transport = Transport()
        self._deleted: set[str] = set()  # install ids whose deletion Amplitude accepted

    def __repr__(self) -> str:
        return f"AmplitudeEraser(name={self.name!r}, host={self.host!r})"

    def erase(self, install_ids: Sequence[str], deadline: float) -> Delivery:
        """Search, and delete what was found each time it makes a full request: an erasure
        cut short (a throttled search, the deadline) keeps what it did, and the installs
        deleted already are not searched again when it is retried (Amplitude allows 360
        searches an hour: a long list must not start over each time)."""
        installs: list[str] = []  # those whose Amplitude IDs are in `found`
        found: list[int] = []
        not_found = False
        for install_id in dict.fromkeys(install_ids):
            if install_id in self._deleted:
                continue
            searched = self._search(install_id, deadline)
            if isinstance(searched, Delivery):
                self._delete(installs, found, deadline)
                return searched
            not_found = not_found or not searched
            if searched:
                installs.append(install_id)
                found += searched
            if len(found) >= BATCH:
                delivery = self._delete(installs, found, deadline)
                if delivery.outcome != "delivered":
                    return delivery
                installs, found = [], []
        delivery = self._delete(installs, found, deadline)
        return delivery if delivery.outcome != "delivered" else delivered(not_found)

    def _search(self, install_id: str, deadline: float) -> list[int] | Delivery:
        """The Amplitude IDs of the install's device, or why there are none yet."""
        url = f"{self.host}{SEARCH_PATH}?{urlencode({'user': install_id})}"
        delivery, answer = self._transport.request(
            "GET", url, None, dict(self._auth), deadline, read_limit=ANSWER_LIMIT
        )
        if delivery.outcome != "delivered":
            return delivery
        found = device_amplitude_ids(answer)
        return Delivery("retry", "bad_answer") if found is None else found

    def _delete(self, installs: list[str], amplitude_ids: list[int], deadline: float) -> Delivery:
        """Delete ``amplitude_ids``, the devices of ``installs``, 100 a request; once all are
        accepted, the installs are done."""
        for ids in batches(amplitude_ids, BATCH):
            delivery = self._delete_request(ids, deadline)
            if delivery.outcome != "delivered":
                return delivery
        self._deleted.update(installs)
        return DELIVERED

    def _delete_request(self, amplitude_ids: list[int], deadline: float) -> Delivery:
        body = json_body({"amplitude_ids": amplitude_ids, "requester": REQUESTER})
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        url = self.host + DELETION_PATH
        return self._transport.post(url, body, {**headers, **self._auth}, deadline)[0]

    def close(self) -> None:
        self._transport.close()
