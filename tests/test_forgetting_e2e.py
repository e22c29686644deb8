"""``telemetry disable`` forgets everywhere, end to end: the example tool, its detached
uploader, and a real loopback endpoint (here) or a real collector and the providers' fakes
(tests/test_collector_forgetting_e2e.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Tool, poll
from loopback import Endpoint


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def sending(tool: Tool, endpoint: Endpoint) -> Tool:
    """The example tool, enabled, sending to the loopback endpoint."""
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = endpoint.url
    return tool


def status(tool: Tool) -> dict[str, object]:
    result = tool.run("telemetry", "status", "--json")
    state: dict[str, object] = json.loads(result.stdout)
    return state


def deletions(endpoint: Endpoint) -> list[dict[str, object]]:
    return [e for e in endpoint.events if e["event"] == "deletion_request"]


def test_disable_sends_one_deletion_request_for_the_id_and_nothing_after(
    sending: Tool, endpoint: Endpoint
) -> None:
    sending.run("hello")
    assert poll(lambda: len(endpoint.events) == 1, timeout=20)
    install_id = endpoint.events[0]["install_id"]
    assert poll(sending.uploader_stopped, timeout=20)

    result = sending.run("telemetry", "disable")
    assert result.returncode == 0, result.stderr
    assert "A request to delete what was sent with that id is on its way" in result.stdout
    assert poll(lambda: len(deletions(endpoint)) == 1, timeout=20), endpoint.requests
    (request,) = deletions(endpoint)
    assert request["install_id"] == install_id
    assert set(request) == {
        "schema_version", "event_id", "event", "timestamp", "tool", "install_id"
    }  # fmt: skip
    assert poll(lambda: not sending.state_dir.exists(), timeout=20)  # nothing of ours left
    assert status(sending)["deletions_waiting"] == 0

    before = len(endpoint.requests)
    for _ in range(3):
        sending.run("hello")
    sending.run("telemetry", "status")
    assert poll(sending.uploader_stopped, timeout=20)
    assert len(endpoint.requests) == before  # telemetry is off: nothing more, ever


@pytest.mark.parametrize("retried_by", ["status", "a command"])
def test_an_unreachable_endpoint_gets_it_later_and_do_not_track_lets_it_go(
    sending: Tool, endpoint: Endpoint, retried_by: str
) -> None:
    sending.run("hello")
    assert poll(lambda: len(endpoint.events) == 1, timeout=20)
    assert poll(sending.uploader_stopped, timeout=20)
    endpoint.mode, endpoint.status = "status", 503
    seen = endpoint.seen

    sending.env["DO_NOT_TRACK"] = "1"  # it carries no usage data: DO_NOT_TRACK lets it go
    result = sending.run("telemetry", "disable")
    assert result.returncode == 0, result.stderr
    assert poll(lambda: endpoint.seen > seen, timeout=20)  # answered 503
    assert poll(sending.uploader_stopped, timeout=20)
    state = status(sending)
    assert (state["deletions_waiting"], state["deletions_waiting_for"]) == (1, ["collector"])
    assert state["install_id"] is None  # the ids file is gone; the request keeps the id
    mode = (sending.state_dir / "deletion.json").stat().st_mode & 0o777
    assert mode == 0o600

    endpoint.mode = "ok"
    sending.run("hello")  # under DO_NOT_TRACK, a command looks at nothing: no retry
    assert poll(sending.uploader_stopped, timeout=20) and deletions(endpoint) == []
    sending.allow_next_attempt()  # as if its backoff had passed
    if retried_by == "status":
        status(sending)  # it starts the uploader while a request waits
    else:
        del sending.env["DO_NOT_TRACK"]
        sending.run("hello")  # reads its config (off), and starts the uploader
    assert poll(lambda: len(deletions(endpoint)) == 1, timeout=20), endpoint.requests
    assert poll(sending.uploader_stopped, timeout=20)
    assert not (sending.state_dir / "deletion.json").exists()


def test_a_tool_that_sends_nowhere_leaves_no_request(tool: Tool) -> None:
    tool.enable()
    tool.run("hello")
    assert tool.events()
    result = tool.run("telemetry", "disable")
    assert result.returncode == 0 and "on its way" not in result.stdout
    assert not os.path.exists(Path(tool.state_dir) / "deletion.json")
