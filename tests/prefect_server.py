"""A real `prefect server start` on 127.0.0.1 for end-to-end tests, with its own state folder and
PREFECT_HOME; the server process group is always stopped."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT = 180.0  # ~28 s on a new database here; CI machines can be slower


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
    """Yield the API URL of a fresh Prefect server bound to loopback, started the way the CLI starts
    its local server, in a state folder of its own."""
    from modelwatch.flows.local_server import start, stop

    state = Path(tempfile.mkdtemp(prefix="modelwatch-prefect-server-"))
    environment = {**server_env(state / "prefect"), "MODELWATCH_SERVER_PORT": "0"}
    environment.pop("PREFECT_API_URL", None)
    try:
        yield start(state, environment=environment, timeout=STARTUP_TIMEOUT).url
    finally:
        stop(state)
