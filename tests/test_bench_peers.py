"""bench/peers.py's table, from its committed results. The bench itself never runs here: it
installs the official SDKs from PyPI into a venv of its own and takes minutes (the docs'
harness, tests/test_docs_commands.py, checks that the page shows what these results render).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import docs_outputs  # noqa: E402

PEERS = docs_outputs.load_bench("peers")


def cell(median_ms: float, ratio: float, killed: int = 0, failed: int = 0) -> dict[str, Any]:
    return {"median_ms": median_ms, "ratio": ratio, "killed": killed, "failed": failed, "runs": 5}


def test_the_committed_results_render_one_row_per_tool_and_a_column_per_endpoint() -> None:
    data = json.loads((docs_outputs.RESULTS / "peers.json").read_text(encoding="utf-8"))
    results = data["results"]
    lines = PEERS.render(results)
    tools = list(results["cells"])
    assert tools == ["cli-telemetry", "posthog", "segment", "rudderstack", "mixpanel", "amplitude"]
    assert results["states"] == ["healthy", "refusing", "blackholed"]
    assert results["cap_s"] == 60
    assert all(p.count("==") == 1 for p in results["pins"])  # exact versions, never ranges
    for tool in ["click alone", *tools]:
        assert sum(line.startswith(f"{tool} ") for line in lines) == 1, tool
    for row in results["cells"].values():
        assert set(row) == set(results["states"])
        assert all(len(c["pairs"]) == results["runs"] for c in row.values())


def test_a_cell_whose_median_run_was_killed_shows_the_cap_not_a_time() -> None:
    assert PEERS.figure(cell(60_000.0, 800.0, killed=3), 60.0) == "≥60 s killed 3/5"
    assert PEERS.figure(cell(250.0, 3.24, killed=1), 60.0) == "250 ms (3.2x) 1/5 killed"
    assert PEERS.figure(cell(10_141.0, 154.6), 60.0) == "10.1 s (154.6x)"
    assert PEERS.figure(cell(71.0, 1.04), 60.0) == "71 ms (1.04x)"
    assert PEERS.figure(cell(1036.0, 3.91, failed=5), 60.0) == "1.0 s (3.9x) 5/5 failed"


@pytest.mark.slow
@pytest.mark.skipif(
    not (PEERS.venv_home() / "ready").exists(),
    reason="the peers' venv is not set up here (bench/peers.py makes it, from PyPI)",
)
def test_the_bench_runs_the_apps_against_each_endpoint(tmp_path: Path) -> None:
    """A short run on the venv already made: Mixpanel sends in the command's thread (it fails
    when refused, hangs when blackholed); this library's command does neither."""
    out = tmp_path / "peers.json"
    command = [sys.executable, str(ROOT / "bench" / "peers.py"), "--runs", "1", "--warmup", "0"]
    command += ["--cap", "5", "--tools", "cli-telemetry,mixpanel", "--jobs", "4"]
    subprocess.run([*command, "--json", str(out)], check=True, capture_output=True, timeout=300)
    cells = json.loads(out.read_text(encoding="utf-8"))["results"]["cells"]
    assert [cells["mixpanel"][s]["killed"] for s in ("healthy", "refusing", "blackholed")] == [
        0,
        0,
        1,
    ]
    assert cells["mixpanel"]["refusing"]["failed"] == 1
    assert all(c["killed"] == c["failed"] == 0 for c in cells["cli-telemetry"].values())
    assert cells["mixpanel"]["healthy"]["requests"] == 1
    assert cells["cli-telemetry"]["healthy"]["requests"] == 1
