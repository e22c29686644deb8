"""The dashboard in a real headless browser (Debian's Chromium): it loads, its charts are
drawn with the stored data (the custom events' too), the console stays clean, and a
screenshot is kept for CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_collector_e2e import Collector, custom, event

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1280,1700",
]  # fmt: skip


def chromium() -> str:
    path = os.environ.get("CLI_TELEMETRY_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.skip(
            "no Chromium: python3 dev.py test installs it with scripts/chromium.sh where it can"
        )
    return path


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    server = Collector(f"sqlite:///{tmp_path / 'dashboard.sqlite3'}")
    yield server
    server.close()


def browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         *extra, url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_dashboard_draws_the_stored_data(collector: Collector, tmp_path: Path) -> None:
    batch = [event(command="acme deploy start") for _ in range(5)]
    batch += [event(command="acme hello", flags=["--shout"], values={"--shout": True},
                    outcome="error", exit_code=1, error_type="RuntimeError"), custom()]  # fmt: skip
    assert collector.send(batch)[0] == 200

    result = browse(collector.url + "/?since=3650d", tmp_path / "profile", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert "Usage since" in dom
    assert dom.count("<svg") == 9  # every chart is drawn, custom events' two with them
    for label in ("acme deploy start", "acme hello", "--env", "--shout", "linux", "3.11.7",
                  "acme deploy.finished", "targets = 3", "custom events"):  # fmt: skip
        assert label in dom, label
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == []

    artifacts = Path(tempfile.gettempdir()) / "cli-telemetry-artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / "dashboard.png"
    shot = browse(
        collector.url + "/?since=3650d", tmp_path / "profile2", f"--screenshot={screenshot}"
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 10_000  # a picture, not an empty page
    print(f"dashboard screenshot: {screenshot}")


def test_a_bad_since_is_a_clear_400(collector: Collector) -> None:
    response = collector.http.request("GET", collector.url + "/?since=forever")
    assert response.status == 400
    assert b"not an age" in response.data


def test_a_browser_logs_in_with_the_read_token(tmp_path: Path) -> None:
    """Once the collector has a token, the dashboard answers 401 with a basic-auth
    challenge: a browser without the read token sees nothing, one given it (as the password
    of any user) sees the charts."""
    server = Collector(
        f"sqlite:///{tmp_path / 'guarded.sqlite3'}",
        env={"CLI_TELEMETRY_COLLECTOR_READ_TOKEN": "r3ad"},
    )
    try:
        assert server.send([event()])[0] == 200
        anonymous = browse(f"{server.url}/?since=3650d", tmp_path / "p1", "--dump-dom")
        assert anonymous.returncode == 0, anonymous.stderr[-2000:]
        assert "Usage since" not in anonymous.stdout
        url = f"http://reader:r3ad@127.0.0.1:{server.port}/?since=3650d"
        reader = browse(url, tmp_path / "p2", "--dump-dom")
        assert reader.returncode == 0, reader.stderr[-2000:]
        assert "Usage since" in reader.stdout and reader.stdout.count("<svg") == 7
    finally:
        server.close()
