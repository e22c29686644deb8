"""The project's wire format to any URL, optionally signed: a webhook.

``POST <url>`` with ``Content-Type: application/json`` and the body ``{"batch": [event,
...], "sent_at": "<UTC ISO 8601>"}``, exactly as `HttpSink` sends it, but never gzipped: a
webhook lands in whatever the author points it at (a serverless function, an automation
service, a small web app), and many of those neither inflate a request body nor say so
clearly when they cannot; a batch is at most a few hundred KiB, so plain JSON costs little.
It also keeps the signature simple to check: it covers the very bytes a framework hands
the receiver as the raw body.

With a ``secret``, each request carries ``X-CLI-Telemetry-Timestamp`` and
``X-CLI-Telemetry-Signature`` (see `cli_telemetry.webhook_signature`, which a receiver
imports to verify them without urllib3). An ``identify`` event is one more event here, and
so is a deletion request (`forget`).

Answers are read as `HttpSink` reads them (`cli_telemetry.sinks.http.post_batch`): a 2xx
means stored, but for the events its ``rejected`` list names, and other answers are
classified as for every HTTP sink. The request is the wire format, so the answer is too: a
receiver written to it (the collector itself can be a webhook's target) can refuse one bad
event without costing its neighbours, or answer a plain 200. The answer of a service that
knows nothing of the wire format (an automation service's ``{"status": "success"}``) names
no events in that exact shape, and means, as before, that all of them arrived. Reading it
costs at most `cli_telemetry.sinks.http.ANSWER_LIMIT` bytes, within the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..webhook_signature import signature_headers
from .base import Delivery
from .http import Transport, json_body, post_batch, split_auth, utc_now_iso


class WebhookSink:
    """POSTs batches in the wire format to ``url``, signed with ``secret`` if one is set."""

    def __init__(self, *, name: str = "webhook", url: str, secret: str | None = None) -> None:
        self.name = name
        self.url, self._auth = split_auth(url)
        self._secret = secret or None
        self._transport = Transport()

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        body = json_body({"batch": list(events), "sent_at": utc_now_iso()})
        headers = {"Content-Type": "application/json", **self._auth}
        if self._secret is not None:
            headers.update(signature_headers(self._secret, body))
        return post_batch(self._transport, self.url, body, headers, deadline, len(events))

    def forget(self, requests: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        """Pass deletion requests on (`cli_telemetry.sinks.base.Forgetting`): in a batch, as
        events go, signed as events are, so the receiver verifies them the same way and can
        tell them by their ``event``, ``deletion_request``, before it deletes anything."""
        return self.send(requests, deadline)

    def close(self) -> None:
        self._transport.close()
