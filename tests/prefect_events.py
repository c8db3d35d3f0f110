"""Reading back the Prefect events a test caused (the server persists them in batches of ~5 s)."""

from __future__ import annotations

import time
from typing import Any


def wait_for_events(name: str, resource_id: str, count: int = 1, timeout: float = 60) -> list[Any]:
    """The events of one name and resource, once at least `count` have arrived (or at the timeout)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    deadline, events = time.monotonic() + timeout, []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            events = client.read_events(filter=EventFilter(
                event=EventNameFilter(name=[name]), resource=EventResourceFilter(id=[resource_id])),
                # 3.8.8's read_events defaults to limit=100, which its own server refuses (<= 50).
                limit=50).events
            if len(events) >= count:
                break
            time.sleep(0.5)
    return list(events)
