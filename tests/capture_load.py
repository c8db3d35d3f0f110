"""A bounded load from its own process: N POSTs of one CSV row each to URL/invocations over a few
threads, each with a unique inference id; prints what was sent and answered as one JSON document.

    python -m tests.capture_load URL N [THREADS] [PREFIX]
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

import numpy as np

TIMEOUT = 10.0  # seconds per request: the load is bounded in time as well as count


def body(i: int) -> str:
    """Request i's CSV row: three features drawn from a seeded normal."""
    row = np.random.default_rng(i).normal(size=3)
    return ",".join(f"{v:.6f}" for v in row) + "\n"


def main(url: str, n: int, threads: int = 4, prefix: str = "req") -> None:
    target = urlsplit(url)
    results: dict[str, dict] = {}
    lock = threading.Lock()
    todo = iter(range(n))

    def worker() -> None:
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=TIMEOUT)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            ident = f"{prefix}-{i}"
            began = time.perf_counter()
            connection.request("POST", "/invocations", body=body(i),
                               headers={"Content-Type": "text/csv",
                                        "X-Amzn-SageMaker-Inference-Id": ident})
            response = connection.getresponse()
            answer = response.read().decode()
            with lock:
                results[ident] = {"status": response.status, "body": body(i), "answer": answer,
                                  "seconds": time.perf_counter() - began}
        connection.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(arguments[0], int(arguments[1]), *(int(a) for a in arguments[2:3]), *arguments[3:4])
