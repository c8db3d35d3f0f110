"""Process-wide defaults: Prefect's, set before Prefect is imported (see shared PREFECT-NOTES), and
Arrow's memory allocator."""

from __future__ import annotations

import logging
import os

from modelwatch.tasks.errors import UserError

PREFECT_DEFAULTS = {
    # The ephemeral API takes ~25 s to start on a new database; Prefect's 20 s default timed out.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # Analytics on the ephemeral server raised "database is locked" tracebacks here.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}


def configure_prefect() -> None:
    """Apply our defaults without overriding anything the user set, and keep Prefect's run loggers
    from printing a traceback for a user's error (its one-line message is what the user needs)."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, UserErrorsInOneLine) for f in logger.filters):
            logger.addFilter(UserErrorsInOneLine())


class UserErrorsInOneLine(logging.Filter):
    """Drops the traceback from a log record about a UserError; the message stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        problem = record.exc_info[1] if record.exc_info else None
        if isinstance(problem, UserError):
            record.exc_info, record.exc_text = None, None
        return True


def configure_arrow() -> None:
    """Arrow allocates from jemalloc (else the C allocator) for the whole process.

    The merge and the capture readers allocate and free many file-sized Arrow buffers. Arrow's default
    allocator, mimalloc, hands freed pages back to the system at once and faults in fresh zeroed ones
    for the next buffer: at 1M captures x 1M labels that was 2 s of kernel time and 1.5-2x the merge's
    wall time of jemalloc doing the same work (benchmarks/merge.py), which also peaked lower.
    """
    import pyarrow as pa

    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return  # the user chose
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # an Arrow build without jemalloc
        pa.set_memory_pool(pa.system_memory_pool())
