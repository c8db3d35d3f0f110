"""Pieces every CLI command module shares: the --store option, JSON output on stdout alone, lines for
people on stderr (none with --quiet), and running flows with stdout routed to stderr and progress
shown on a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

import typer

StoreOption = Annotated[str | None, typer.Option(
    "--store", help="Store root URI: a folder or s3://bucket/prefix "
                    "\\[default: $MODELWATCH_STORE, else ./modelwatch-store]")]


def _type_help() -> str:
    from modelwatch.flows.monitor_types import monitor_types

    return f"Monitor type: one of {', '.join(monitor_types())}."


TYPE_HELP = _type_help()
TypeOption = Annotated[str, typer.Option("--type", help=TYPE_HELP)]
DaskOption = Annotated[str | None, typer.Option(
    "--dask", help="Run the partitions on this Dask cluster (scheduler address, tcp://HOST:8786) "
                   "through prefect-dask \\[default: $MODELWATCH_DASK, else in this process]")]
# The monitor types whose executions fan their partitions out to a Dask cluster.
DASK_TYPES = ("data-quality",)


def use_dask(address: str | None, monitor_type: str | None = None) -> str | None:
    """--dask: the address checked and its scheduler asked for workers before any work starts; the
    command runs its flows within `flows.scale_out.cluster(<the address>)`."""
    from modelwatch.flows.scale_out import check_cluster, dask_address
    from modelwatch.tasks.errors import UserError

    chosen = dask_address(address)
    if chosen is None:
        return None
    if monitor_type is not None and monitor_type not in DASK_TYPES:
        raise UserError(f"--dask: --type {monitor_type} runs in this process for now; on a cluster: "
                        f"{', '.join(DASK_TYPES)} and `groundtruth merge`")
    check_cluster(chosen)
    return chosen


QUIET = {"on": False}  # set by the global --quiet option


def set_quiet(quiet: bool) -> None:
    """--quiet: no progress, no lines for people, Prefect logs only from warnings up.
    MODELWATCH_QUIET tells the layers below the CLI (the local server's notices)."""
    QUIET["on"] = quiet
    if quiet:
        os.environ["MODELWATCH_QUIET"] = "1"
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # read when Prefect is imported, later
    else:
        os.environ.pop("MODELWATCH_QUIET", None)


def say(text: str) -> None:
    """A line for people on stderr, unless --quiet."""
    if not QUIET["on"]:
        print(text, file=sys.stderr, flush=True)


@contextlib.contextmanager
def working() -> Iterator[None]:
    """Around a command's flows: their stdout goes to stderr, and progress shows on a terminal."""
    from modelwatch.progress_display import showing_progress

    with stdout_to_stderr(), showing_progress(QUIET["on"]):
        yield


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to fd 1 (ours, Prefect's, child processes') to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def needs_api() -> str:
    """Call first in a command that runs a flow or talks to Prefect: the configured API, else the
    local server (started in the background on first need, reused after)."""
    from modelwatch.flows.local_server import ensure_api

    return ensure_api()


IDENTITY_ENV = "MODELWATCH_IDENTITY"


def cli_identity() -> str:
    """Who the CLI acts as, for card reviews and the audit log: $MODELWATCH_IDENTITY (a configured
    identity, e.g. a CI job's service name), else the operating-system user."""
    import getpass

    configured = os.environ.get(IDENTITY_ENV, "").strip()
    if configured:
        return configured
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid-{os.getuid()}"


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout (the only thing a JSON-printing command writes there)."""
    from modelwatch.tasks.store import json_dumps

    sys.stdout.write(json_dumps(document) + "\n")
    sys.stdout.flush()


def check_type(monitor_type: str) -> str:
    """A registered monitor type's name (an unknown one is a user error listing the known)."""
    from modelwatch.flows.monitor_types import get_monitor

    return get_monitor(monitor_type).name


def parse_window(start: str, end: str) -> tuple[datetime, datetime]:
    from modelwatch.api import window

    return window(start, end)


def open_store(store: str | None, writable: bool = False):
    """The Store for a --store value (default $MODELWATCH_STORE, else ./modelwatch-store), checked
    before any work: a file, a missing bucket or (writable) a read-only folder is a user error."""
    from modelwatch.tasks.store import Store, default_store_uri

    return Store(store or default_store_uri()).check(writable=writable)
