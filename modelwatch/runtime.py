"""Process-wide defaults for Prefect, set before Prefect is imported (see shared PREFECT-NOTES)."""

from __future__ import annotations

import os

PREFECT_DEFAULTS = {
    # The ephemeral API takes ~25 s to start on a new database; Prefect's 20 s default timed out.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # Analytics on the ephemeral server raised "database is locked" tracebacks here.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def configure_prefect() -> None:
    """Apply our defaults without overriding anything the user set."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
