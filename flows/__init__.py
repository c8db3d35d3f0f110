"""Prefect flows that compose the tasks: baselines, monitoring executions, merges, the summary."""
