"""A real S3-compatible HTTP endpoint for tests: moto's server mode run as a subprocess.

`running_s3_server()` starts `python -m moto.server -H 127.0.0.1 -p PORT` on a free port, waits
(bounded) until it answers HTTP, yields its endpoint URL and always stops it afterwards: terminate,
then kill if it does not exit in time. On Linux the child also gets PR_SET_PDEATHSIG, so it dies
with the test process even if that is killed hard; an atexit hook covers other interpreter exits.

No in-process mocking is involved: clients talk to the endpoint over TCP exactly as to real S3.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import BinaryIO

from modelwatch.flows.child_processes import die_with_parent, free_port, stop_child

HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds to wait for the server to answer
STOP_TIMEOUT = 10.0  # seconds to wait after terminate (then kill)
PORT_ATTEMPTS = 3  # a free port can be taken by someone else before moto binds it


class S3ServerError(RuntimeError):
    """The moto server could not be started."""


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except OSError:  # URLError, connection refused, timeout
        return False


def _output(log: BinaryIO, limit: int = 2000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-limit:] or "(none)"


def _wait_until_up(proc: subprocess.Popen[bytes], endpoint: str) -> bool:
    """True once the server answers; False if it exited; S3ServerError after START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _answers(endpoint):
            return True
        time.sleep(0.1)
    raise S3ServerError(f"moto server on {endpoint} did not answer within {START_TIMEOUT:.0f} s")


@contextlib.contextmanager
def running_s3_server() -> Iterator[str]:
    """Run a moto S3 server on 127.0.0.1 for the duration of the block; yield its endpoint URL."""
    with tempfile.TemporaryFile() as log:
        failures: list[str] = []
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            endpoint = f"http://{HOST}:{port}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
            stop = functools.partial(stop_child, proc, signal.SIGTERM, STOP_TIMEOUT)
            atexit.register(stop)
            try:
                try:
                    up = _wait_until_up(proc, endpoint)
                except S3ServerError as error:
                    raise S3ServerError(f"{error}; output:\n{_output(log)}") from None
                if not up:
                    failures.append(f"port {port}: exited with code {proc.returncode}")
                    continue
                yield endpoint
                return
            finally:
                stop()
                atexit.unregister(stop)
        raise S3ServerError(
            f"moto server did not start ({'; '.join(failures)}); output:\n{_output(log)}"
        )


if __name__ == "__main__":  # manual check: .venv/bin/python tests/s3server.py
    with running_s3_server() as url:
        print(f"moto S3 server at {url}; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
