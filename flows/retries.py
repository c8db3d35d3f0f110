"""When a Prefect task may run again: never for a user's error (a missing file stays missing), and
not once the task has spent RETRY_BUDGET_SECONDS (the store's own retries already waited inside each
attempt), so a permanent store failure fails within a bounded time and says so."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelwatch.tasks.errors import UserError

RETRY_BUDGET_SECONDS = 60.0


def retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry other failures while the task is within its time budget."""
    problem = getattr(state, "data", None)
    # A user's error, a refusal or a missing file is the same on the next attempt.
    if isinstance(problem, UserError | PermissionError | FileNotFoundError):
        return False
    started = getattr(task_run, "start_time", None)
    if started is not None and (datetime.now(UTC) - started).total_seconds() > RETRY_BUDGET_SECONDS:
        return False
    return True


# The retry settings of tasks that read or write the store.
STORE_RETRY: dict[str, Any] = {"retries": 2, "retry_delay_seconds": [1, 5],
                               "retry_condition_fn": retry_unless_user_error}
