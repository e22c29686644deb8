"""A custom provider with a deletion API, for the collector's tests: events go in the wire
format to ``LOOPBACK_PROVIDER_URL`` (a `loopback.Endpoint`), and ``erase`` posts the install
ids to the same server's ``/v1/erase`` as ``{"batch": [{"install_id": ...}, ...]}``, through
the real `Transport` (its timeouts, its deadline, its classification of the answer). So a
collector process started with ``TELEMETRY_PROVIDERS=fake_eraser:LoopbackProvider`` (and
this directory on its ``PYTHONPATH``) forwards and erases over real HTTP.

It imports only what a collector process has: no pytest, no conftest."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from cli_telemetry.sinks import Delivery
from cli_telemetry.sinks.http import HttpSink, Transport, json_body

ERASE_PATH = "/v1/erase"


class LoopbackProvider:
    def __init__(self, *, name: str) -> None:
        self.name = name
        self.url = os.environ["LOOPBACK_PROVIDER_URL"]
        self._sink = HttpSink(self.url, name=name, gzip_body=False)
        self._transport = Transport()

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        return self._sink.send(events, deadline)

    def erase(self, install_ids: Sequence[str], deadline: float) -> Delivery:
        body = json_body({"batch": [{"install_id": i} for i in install_ids]})
        url = self.url.replace("/v1/events", ERASE_PATH)
        delivery, _ = self._transport.post(
            url, body, {"Content-Type": "application/json"}, deadline
        )
        return delivery

    def close(self) -> None:
        self._sink.close()
        self._transport.close()
