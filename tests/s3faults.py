"""A fault-injecting HTTP proxy in front of the S3 test server, for tests of what survives a flaky or
broken store: it answers a share of requests with 500 or 503, drops a share of connections without an
answer, delays some, and can fail every request of one kind (say, every PUT of an execution.json).

Requests are read whole (Content-Length or chunked bodies), forwarded over a fresh connection and the
answer relayed, so any S3 client works through it. Bound to 127.0.0.1; stopped with the context.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Rule = Callable[[str, str], int | None]  # (method, path) -> a status to answer, or None to pass


@dataclass
class Faults:
    """What the proxy does to each request; change it while the proxy runs."""

    error_share: float = 0.0  # answered 500 or 503 without reaching S3
    drop_share: float = 0.0  # connection closed without an answer
    delay_share: float = 0.0
    delay_seconds: float = 0.0
    rules: list[Rule] = field(default_factory=list)  # every matching request fails
    seed: int = 0
    seen: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status) or 0=dropped

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self) -> float:
        with self._lock:
            return self._random.random()

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.seen.append((method, path, status))

    def clear(self) -> None:
        self.error_share = self.drop_share = self.delay_share = 0.0
        self.rules.clear()


def fail_when(method: str, path_contains: str, status: int = 500) -> Rule:
    """A rule failing every request of one method whose path contains the text."""
    return lambda m, p: status if m == method and path_contains in p else None


def _handler(upstream: str, faults: Faults) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            return

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline().strip():
                            pass
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            length = str(len(body))
            for name, value in headers:
                if name.lower() == "content-length" and self.command == "HEAD":
                    length = value  # a HEAD answer says the size of what a GET would return
                elif name.lower() not in ("transfer-encoding", "content-length", "connection",
                                          "date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            body = self._body()
            method, path = self.command, self.path
            for rule in faults.rules:
                status = rule(method, path)
                if status is not None:
                    faults.record(method, path, status)
                    return self._error(status)
            draw = faults.draw()
            if draw < faults.drop_share:
                faults.record(method, path, 0)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if draw < faults.drop_share + faults.error_share:
                status = 503 if faults.draw() < 0.5 else 500
                faults.record(method, path, status)
                return self._error(status)
            if faults.draw() < faults.delay_share:
                threading.Event().wait(faults.delay_seconds)
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("transfer-encoding", "content-length", "connection")}
                headers["Content-Length"] = str(len(body))
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                faults.record(method, path, response.status)
                self._answer(response.status, data, response.getheaders())
            finally:
                connection.close()
            return None

        def _error(self, status: int) -> None:
            code = {503: "SlowDown", 403: "AccessDenied"}.get(status, "InternalError")
            self._answer(status, (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                                  "<Message>injected fault</Message></Error>").encode(),
                         [("Content-Type", "application/xml")])

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler


@contextlib.contextmanager
def faulty_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """Yield the proxy's endpoint URL (http://127.0.0.1:PORT) in front of `upstream`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream, faults))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="s3-fault-proxy", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
