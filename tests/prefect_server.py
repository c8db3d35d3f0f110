"""A real `prefect server start` on 127.0.0.1 for end-to-end tests, with its own PREFECT_HOME; the
server process group is always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT = 180.0  # ~28 s on a new database here; CI machines can be slower


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        # Create scheduled runs and fire automations within seconds, not a minute.
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@contextlib.contextmanager
def running_prefect_server() -> Iterator[str]:
    """Yield the API URL of a fresh Prefect server bound to loopback."""
    home = Path(tempfile.mkdtemp(prefix="modelwatch-prefect-server-"))
    port = free_port()
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=server_env(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prefect server exited ({process.returncode}): "
                                   f"{(home / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                    if response.read().strip() == b"true":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not answer within {STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.5)
        yield api
    finally:
        stop_group(process)
        log.close()


def stop_group(process: subprocess.Popen, grace: float = 15.0) -> None:
    """Terminate a process and everything it started (its session), then kill what lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
