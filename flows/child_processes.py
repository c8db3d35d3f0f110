"""Child servers started by modelwatch, its tests and benchmarks: a free loopback port, a child that
dies with its parent, and a stop that asks first (SIGINT or SIGTERM, so the child can flush) and kills
what has not exited in time."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (another process may still take it)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def die_with_parent() -> None:
    """``preexec_fn`` (Linux): the kernel SIGTERMs the child when its parent dies, even by SIGKILL."""
    with contextlib.suppress(Exception):  # best effort; the normal path stops the child itself
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def stop_child(proc: subprocess.Popen, signum: int = signal.SIGINT, grace: float = 60.0,
               group: bool = False) -> bool:
    """Send ``signum`` and wait ``grace`` seconds; kill the child if it is still running then.

    Parameters
    ----------
    proc : subprocess.Popen
        The child; nothing happens when it has already exited.
    signum : int, default signal.SIGINT
        The polite signal: servers flush their capture on SIGINT (ASGI lifespan shutdown).
    grace : float, default 60.0
        Seconds to wait before SIGKILL.
    group : bool, default False
        Signal the child's whole process group (a child started with ``start_new_session=True``
        and everything it started).

    Returns
    -------
    bool
        True when the child exited on the polite signal, False when it had to be killed.

    Examples
    --------
    >>> proc = subprocess.Popen(["sleep", "30"])
    >>> stop_child(proc, signal.SIGTERM, grace=5)
    True
    """
    if proc.poll() is not None:
        return True

    def send(number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, number)
            else:
                proc.send_signal(number)

    send(signum)
    try:
        proc.wait(grace)
        return True
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(10)
        return False


def wait_until_answers(proc: subprocess.Popen, url: str, timeout: float = 60.0,
                       what: str = "the server") -> None:
    """Poll ``url`` (GET) until it answers 200; RuntimeError when the child exits first or
    ``timeout`` seconds pass.

    Examples
    --------
    >>> wait_until_answers(proc, "http://127.0.0.1:8080/ping", 30, "uvicorn")  # doctest: +SKIP
    """
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, urllib.error.HTTPError):
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited (code {proc.returncode}) before answering {url}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")
        time.sleep(0.1)
