"""The embedded default Prefect API: `modelwatch server start|status|stop` on a state folder of its own
(a real `prefect server` on 127.0.0.1), reused by a second start, and PREFECT_API_URL winning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from modelwatch.flows.local_server import healthy, state_dir, status, stop


def modelwatch(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelwatch.cli", *args], capture_output=True,
                          text=True, timeout=240, env=env)


def test_server_start_is_reused_then_stopped(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "MODELWATCH_STATE_DIR": str(state), "MODELWATCH_SERVER_PORT": "0"}
    env.pop("PREFECT_API_URL", None)
    try:
        none = modelwatch("server", "status", env=env)
        assert none.returncode == 1 and json.loads(none.stdout)["source"] == "none"

        first = modelwatch("server", "start", env=env)
        assert first.returncode == 0, first.stderr
        started = json.loads(first.stdout)
        assert "starting a local Prefect server" in first.stderr
        assert started["url"].startswith("http://127.0.0.1:") and healthy(started["url"])
        assert (state / "prefect" / "prefect.db").is_file()

        began = time.monotonic()
        again = modelwatch("server", "start", env=env)
        assert json.loads(again.stdout)["pid"] == started["pid"]  # the same server, not a second
        assert "starting" not in again.stderr and time.monotonic() - began < 10

        running = modelwatch("server", "status", env=env)
        assert running.returncode == 0 and json.loads(running.stdout)["source"] == "local"

        stopped = modelwatch("server", "stop", env=env)
        assert json.loads(stopped.stdout)["stopped"] is True
        assert not healthy(started["url"], timeout=1)
        assert json.loads(modelwatch("server", "status", env=env).stdout)["source"] == "none"
    finally:
        stop(state)


def test_a_configured_api_wins(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MODELWATCH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    found = status()
    assert (found.source, found.url, found.healthy) == ("configured", "http://127.0.0.1:9/api", False)
    assert state_dir() == tmp_path / "state" and not (tmp_path / "state" / "server.json").exists()
