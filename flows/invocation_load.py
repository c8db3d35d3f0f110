"""A bounded load on a model server: each request POSTed once to ``/invocations`` over a few
keep-alive connections, its status, answer and time handed to the caller. Used by the demo's live
endpoint and by the capture tests' load process."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterable

Answered = Callable[[str, int | None, str, float], None]


def post_each(host: str, port: int, requests: Iterable[tuple[str, str]], answered: Answered,
              threads: int = 4, timeout: float = 10.0, content_type: str = "text/csv") -> None:
    """POST every ``(inference id, body)`` to ``http://host:port/invocations``, ``threads`` at a time.

    Parameters
    ----------
    host, port : str, int
        The server.
    requests : iterable of (str, str)
        The inference id (sent as ``X-Amzn-SageMaker-Inference-Id``) and the body of each request.
    answered : callable
        Called once per request, from the sending thread, as ``answered(id, status, answer,
        seconds)``; ``status`` is None when the connection failed (the answer is then the error).
    threads : int, default 4
        Concurrent keep-alive connections.
    timeout : float, default 10.0
        Seconds per request, so the load is bounded in time as well as in count.
    content_type : str, default "text/csv"
        The requests' Content-Type.

    Examples
    --------
    >>> post_each("127.0.0.1", 8080, [("r-1", "1,2,3\\n")], print)  # doctest: +SKIP
    r-1 200 0.73 0.0021
    """
    lock = threading.Lock()
    todo = iter(requests)

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        while True:
            with lock:
                item = next(todo, None)
            if item is None:
                break
            ident, body = item
            began = time.perf_counter()
            try:
                connection.request("POST", "/invocations", body=body, headers={
                    "Content-Type": content_type, "X-Amzn-SageMaker-Inference-Id": ident})
                response = connection.getresponse()
                status: int | None = response.status
                answer = response.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException) as error:
                status, answer = None, str(error)
                connection.close()  # the next request opens a fresh connection
            answered(ident, status, answer, time.perf_counter() - began)
        connection.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
