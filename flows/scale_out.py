"""Scale-out on an existing Dask cluster: a flow whose partitions (chunks of capture files, hours to
merge) run as Prefect tasks on the cluster's workers through prefect-dask's task runner. Each worker
reads its own files from the store and returns only profiles or counts; the flow merges them.

The cluster is named by ``--dask ADDRESS`` on the CLI or ``$MODELWATCH_DASK``; without either nothing
changes (Prefect's thread pool in the flow's process)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from modelwatch.tasks.errors import UserError

DASK_ENV = "MODELWATCH_DASK"
CONNECT_SECONDS = 10.0
_ADDRESS = re.compile(r"(tcp|tls|ucx|inproc)://[^\s/]+")

F = TypeVar("F")
_CHOSEN: ContextVar[str | None] = ContextVar("modelwatch_dask", default=None)


@contextlib.contextmanager
def cluster(address: str | None) -> Iterator[None]:
    """Within the block, `on_cluster` uses `address` (a checked scheduler address; None: unchanged)."""
    token = _CHOSEN.set(address) if address is not None else None
    try:
        yield
    finally:
        if token is not None:
            _CHOSEN.reset(token)


def dask_address(address: str | None = None) -> str | None:
    """The Dask scheduler to use: `address`, else the one `cluster` set, else ``$MODELWATCH_DASK``,
    else None (run locally).

    Parameters
    ----------
    address : str, optional
        A scheduler address such as ``tcp://10.0.0.5:8786`` (the address ``dask scheduler`` prints).

    Examples
    --------
    >>> dask_address("tcp://127.0.0.1:8786")
    'tcp://127.0.0.1:8786'
    >>> dask_address("127.0.0.1:8786")
    Traceback (most recent call last):
    ...
    modelwatch.tasks.errors.UserError: --dask '127.0.0.1:8786': expected a Dask scheduler address ...
    """
    chosen = address if address is not None else _CHOSEN.get() or os.environ.get(DASK_ENV) or None
    if chosen is None:
        return None
    if not _ADDRESS.fullmatch(chosen.strip()):
        raise UserError(f"--dask {chosen!r}: expected a Dask scheduler address such as tcp://HOST:8786")
    return chosen.strip()


def check_cluster(address: str) -> int:
    """Connect to the scheduler before any work starts; returns its number of workers.

    Raises
    ------
    UserError
        When the scheduler does not answer within CONNECT_SECONDS or has no worker.
    """
    from distributed import Client

    try:
        with Client(address, timeout=CONNECT_SECONDS, set_as_default=False) as client:
            workers = len(client.scheduler_info().get("workers", {}))
    except (OSError, TimeoutError) as problem:
        raise UserError(f"--dask {address}: no Dask scheduler answers there ({problem})") from None
    if workers == 0:
        raise UserError(f"--dask {address}: the scheduler has no workers (start some with "
                        f"`dask worker {address}`)")
    return workers


def on_cluster(flow: F) -> F:
    """`flow` with its tasks sent to the Dask cluster `dask_address()` names (the command's `cluster`,
    else ``$MODELWATCH_DASK``); `flow` itself when none is."""
    chosen = dask_address()
    if chosen is None:
        return flow
    from prefect_dask import DaskTaskRunner

    check_cluster(chosen)
    runner: Any = DaskTaskRunner(address=chosen)
    return flow.with_options(task_runner=runner)  # type: ignore[attr-defined]
