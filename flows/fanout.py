"""How a flow fans a window's files out to task runs: a bounded number of chunks, not a task per file
(Prefect records every task run, so tens per flow, not thousands)."""

from __future__ import annotations

MAX_CHUNKS = 8  # task runs a flow maps a list of files to, at most


def chunked(items: list[str], chunks: int) -> list[list[str]]:
    """`items` cut into at most `chunks` consecutive runs of near-equal length (none empty)."""
    if not items:
        return []
    size = -(-len(items) // max(1, min(chunks, len(items))))
    return [items[i : i + size] for i in range(0, len(items), size)]
