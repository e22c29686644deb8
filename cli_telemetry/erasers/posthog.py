"""PostHog: its persons API deletes the person of each distinct id, with their events.

Documentation: https://posthog.com/docs/privacy/data-deletion (delete persons, and their
events with ``delete_events``), https://posthog.com/docs/api/persons (``POST
/api/projects/:project_id/persons/bulk_delete/``: "bulk delete persons, either by the
PostHog person IDs or by distinct IDs. You can pass in a maximum of 1000 IDs per call. Only
events captured before the request will be deleted"; scope ``person:write``) and
https://posthog.com/docs/api (private endpoints take a personal API key as ``Authorization:
Bearer``, on ``https://us.posthog.com`` or ``https://eu.posthog.com``, or a self-hosted
instance's own host: not the ``*.i.posthog.com`` hosts events go to).

The request, one per 1000 ids::

    POST {host}/api/projects/{project_id}/persons/bulk_delete/
    Authorization: Bearer <personal API key>
    {"distinct_ids": [...], "delete_events": true}

The ids are our sink's ``distinct_id``, the install id, so the person found is the install's
(our events make one person per install: PostHog's capture makes a person profile for the
events of a distinct id unless told not to, and the sink never tells it not to). PostHog
answers 202 with ``{"persons_found": n, "persons_deleted": n, "events_queued_for_deletion":
..., "deletion_errors": [...]}``: the person goes at once, its events are "queued" and
deleted later (the docs: event data "is cleared asynchronously during non-peak usage times",
a batch that "runs at 5AM UTC every Sunday" on PostHog Cloud).

Outcomes: a 202 is delivered; one that found fewer persons than ids is delivered with the
kind `NOT_FOUND` (no person: nothing of it had been ingested, or it was deleted already);
one naming ``deletion_errors`` ("persons that could not be deleted ... contact support if
this persists") is retried. Other answers as `classify` says: 400 (a bad request), 401 and
403 (a bad key, a key without ``person:write``) and 404 (no such project) are refusals; 429
(PostHog's API is rate limited) and 5xx are retried, after the Retry-After PostHog gives.

PostHog notes that "reusing distinct_ids after deletion is not supported": ours are never
reused (``telemetry disable`` deletes the install id, and a later ``enable`` makes a new,
unrelated one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import quote

from ..sinks.base import Delivery
from ..sinks.http import Transport, json_body
from .common import batches, delivered, json_object

BATCH: Final = 1000
"""Distinct ids per request: "a maximum of 1000 IDs per call"."""
ANSWER_LIMIT: Final = 64 * 1024
"""The summary is a few dozen bytes; ``deletion_errors`` names at most 1000 persons."""
HOSTS: Final = {
    "https://us.i.posthog.com": "https://us.posthog.com",
    "https://eu.i.posthog.com": "https://eu.posthog.com",
}
"""PostHog Cloud's event hosts and the host of their private API."""


def api_host(event_host: str) -> str:
    """The private API's host for the sink's ``host``: PostHog Cloud's for its regions, the
    same host for a self-hosted instance (which serves both)."""
    host = event_host.rstrip("/")
    return HOSTS.get(host, host)


class PostHogEraser:
    """Deletes the persons of install ids, with their events, in one PostHog project."""

    def __init__(
        self,
        *,
        name: str = "posthog",
        personal_api_key: str,
        project_id: str,
        host: str = "https://us.posthog.com",
    ) -> None:
        self.name = name
        self.url = f"{host.rstrip('/')}/api/projects/{quote(project_id, safe='')}"
        self.url += "/persons/bulk_delete/"
        self._auth = {"Authorization": f"Bearer {personal_api_key}"}
        self._transport = Transport()

    def __repr__(self) -> str:
        return f"PostHogEraser(name={self.name!r}, url={self.url!r})"

    def erase(self, install_ids: Sequence[str], deadline: float) -> Delivery:
        not_found = False
        for ids in batches(install_ids, BATCH):
            body = json_body({"distinct_ids": ids, "delete_events": True})
            headers = {"Content-Type": "application/json", **self._auth}
            delivery, answer = self._transport.post(
                self.url, body, headers, deadline, read_limit=ANSWER_LIMIT
            )
            if delivery.outcome != "delivered":
                return delivery
            summary = json_object(answer) or {}
            if summary.get("deletion_errors"):
                return Delivery("retry", "deletion_errors")
            found = summary.get("persons_found")
            if type(found) is int and found < len(ids):
                not_found = True
        return delivered(not_found)

    def close(self) -> None:
        self._transport.close()
