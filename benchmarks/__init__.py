"""Benchmarks for modelwatch (run as modules, e.g. `python -m benchmarks.data_quality`)."""
