"""Builds Prefect deployments (schedules, triggers) from the registry."""
