"""A bounded load from its own process: N POSTs of one CSV row each to URL/invocations over a few
threads, each with a unique inference id; prints what was sent and answered as one JSON document.

    python -m tests.capture_load URL N [THREADS] [PREFIX]
"""

from __future__ import annotations

import json
import sys
import threading
from urllib.parse import urlsplit

import numpy as np

from modelwatch.flows.invocation_load import post_each

TIMEOUT = 10.0  # seconds per request: the load is bounded in time as well as count


def body(i: int) -> str:
    """Request i's CSV row: three features drawn from a seeded normal."""
    row = np.random.default_rng(i).normal(size=3)
    return ",".join(f"{v:.6f}" for v in row) + "\n"


def main(url: str, n: int, threads: int = 4, prefix: str = "req") -> None:
    target = urlsplit(url)
    results: dict[str, dict] = {}
    lock = threading.Lock()
    bodies = {f"{prefix}-{i}": body(i) for i in range(n)}

    def keep(ident: str, status: int | None, answer: str, seconds: float) -> None:
        with lock:
            results[ident] = {"status": status, "body": bodies[ident],
                              "answer": answer, "seconds": seconds}

    post_each(target.hostname, target.port, bodies.items(), keep,
              threads=threads, timeout=TIMEOUT)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(arguments[0], int(arguments[1]), *(int(a) for a in arguments[2:3]), *arguments[3:4])
