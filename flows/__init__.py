"""Prefect flows that compose the tasks: baseline suggestion, monitoring executions, the demo."""

from modelwatch.runtime import configure_arrow

configure_arrow()
