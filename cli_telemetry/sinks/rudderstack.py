"""RudderStack, over HTTP with urllib3, shaped as rudder-sdk-python 2.x sends it.

RudderStack takes Segment's message model, so this is `segment` with the SDK's
differences: ``POST {data_plane_url}/v1/batch`` (gzip, basic auth with the write key as
user) and ``{"batch": [...], "sentAt": ...}`` without ``writeKey``; each message has
``"channel": "server"`` and ``"integrations": {"All": true}``; an identify carries its
traits in ``context.traits``; timestamps are as ``datetime.isoformat()`` writes them. The
SDK sends no retry-count header, so neither does this sink.

The mapping is Segment's (see `segment`): ``anonymousId`` is the ``install_id``,
``messageId`` the ``event_id`` (RudderStack de-duplicates on it), and ``context.ip`` is
``"0.0.0.0"`` so that RudderStack's geolocation, which takes ``context.ip`` before the
request's own address, locates no one. With ``user_id="install"`` (the author's opt-in,
see `segment`), the install id is the ``userId`` too: RudderStack's User Suppression API
deletes users by ``userId`` only (`cli_telemetry.erasers.rudderstack`).
"""

from __future__ import annotations

from typing import Any

from . import mapping
from .segment import SegmentSink
from .segment import message as segment_message


class RudderStackSink(SegmentSink):
    """Sends batches to ``/v1/batch`` on your RudderStack data plane."""

    retry_header = None
    max_batch_bytes = 4_000_000  # a data plane's request limit (4 MB)

    def __init__(
        self,
        *,
        name: str = "rudderstack",
        write_key: str,
        data_plane_url: str,
        user_id: str | None = None,
    ) -> None:
        super().__init__(name=name, write_key=write_key, host=data_plane_url, user_id=user_id)

    def envelope(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        body = super().envelope(messages)
        del body["writeKey"]
        return body

    def message(self, event: dict[str, Any]) -> dict[str, Any]:
        return message(event, identified=self.identified)


def message(event: dict[str, Any], *, identified: bool = False) -> dict[str, Any]:
    """One event as a RudderStack ``track`` or ``identify`` message."""
    msg = segment_message(event, identified=identified)
    msg["timestamp"] = mapping.isoformat(event["timestamp"])
    msg["integrations"] = {"All": True}
    msg["channel"] = "server"
    if msg["type"] == "identify":
        msg["context"] = {**msg["context"], "traits": msg.pop("traits")}
    return msg
