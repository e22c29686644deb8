from __future__ import annotations

from conftest import Tool


def test_enabled_tool_records_one_event(tool: Tool) -> None:
    tool.enable()
    result = tool.run("hello")
    assert result.returncode == 0
    assert result.stdout == "Hello, world!\n"
    assert result.stderr == ""
    [event] = tool.events()
    assert event["command"] == "cli-app hello"
