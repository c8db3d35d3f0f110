"""Prefect flows that compose the tasks: baseline suggestion, monitoring executions, the demo."""
