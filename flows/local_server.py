"""The embedded default Prefect API: one local `prefect server` in the background, bound to 127.0.0.1,
its database under modelwatch's state folder, started by the first command that needs an API and
reused by every later one. A configured API (``PREFECT_API_URL``, in the environment or the active
Prefect profile) always wins and nothing is started.

The state folder is ``$MODELWATCH_STATE_DIR``, else ``$XDG_STATE_HOME/modelwatch``, else
``~/.local/state/modelwatch``; it holds ``server.json`` (pid, port, URL), ``server.log`` and
``prefect/`` (the server's PREFECT_HOME, with its SQLite database ``prefect.db``). The server listens
on 127.0.0.1 port 4200 (``$MODELWATCH_SERVER_PORT``; a free port when that one is taken), so its UI is
at http://127.0.0.1:4200.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_PORT = 4200  # Prefect's own: its UI and `prefect` commands pointed at 127.0.0.1:4200 find it
STARTUP_TIMEOUT_S = 180.0  # a new database migrates in ~25-30 s here; slower machines need more
STOP_GRACE_S = 15.0
HEALTH_TIMEOUT_S = 2.0

# The server's own defaults; anything the user set in the environment wins.
SERVER_DEFAULTS = {
    # Analytics on a local SQLite server raised "database is locked" tracebacks here.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def _say(message: str) -> None:
    if not os.environ.get("MODELWATCH_QUIET"):  # the CLI's --quiet
        print(message, file=sys.stderr, flush=True)


def state_dir() -> Path:
    """modelwatch's state folder (see the module's documentation)."""
    if os.environ.get("MODELWATCH_STATE_DIR"):
        return Path(os.environ["MODELWATCH_STATE_DIR"]).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "modelwatch"


class LocalServerFailed(RuntimeError):
    """The local Prefect server could not be started (its log says why)."""


@dataclass
class ServerRecord:
    """What server.json says of the server this state folder started."""

    pid: int
    port: int
    url: str
    started_at: float


@dataclass
class ServerStatus:
    """Where the Prefect API of this process comes from, and whether it answers."""

    source: str  # "configured" (PREFECT_API_URL), "local" (our background server) or "none"
    url: str | None
    healthy: bool
    pid: int | None = None
    state: Path | None = None

    def line(self) -> str:
        if self.source == "configured":
            health = "answering" if self.healthy else "NOT answering"
            return f"configured Prefect API (PREFECT_API_URL) {self.url}: {health}"
        if self.source == "local":
            health = "running" if self.healthy else "NOT answering"
            return (f"local Prefect server {health} at {self.url} (pid {self.pid}; "
                    f"database {self.state / 'prefect' / 'prefect.db'})")
        return f"no local Prefect server running (state folder {self.state})"


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile, as Prefect would read it
    (without importing Prefect: that costs a second)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if "prefect.context" in sys.modules:  # a process that already configured Prefect its own way
        from prefect.settings import get_current_settings

        url = get_current_settings().api.url
        return str(url) if url else None
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        document = tomllib.loads(profiles.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or document.get("active") or "ephemeral"
    url = document.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def healthy(url: str, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether the Prefect API at `url` answers its health check."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            return response.read().strip() == b"true"
    except (OSError, ValueError):
        return False


def _record_path(state: Path) -> Path:
    return state / "server.json"


def _read_record(state: Path) -> ServerRecord | None:
    try:
        return ServerRecord(**json.loads(_record_path(state).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(pid: int) -> bool:
    """Whether `pid` is still the server server.json names (after a reboot the pid may be another
    program's: that one is never waited for, signalled or reported)."""
    if not _alive(pid):
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not Path("/proc").is_dir()  # a system without /proc: trust the pid
    return b"prefect" in command and b"server" in command


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _choose_port(previous: ServerRecord | None) -> int:
    """The port this folder's server had before, else $MODELWATCH_SERVER_PORT, else 4200; a free one
    when that is taken (0 asks for a free one straight away)."""
    wanted = previous.port if previous else int(os.environ.get("MODELWATCH_SERVER_PORT")
                                                or DEFAULT_PORT)
    return wanted if wanted and _port_free(wanted) else _free_port()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    """One process at a time starts or stops this folder's server (two commands started together
    must not start two servers on one database)."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def status(state: Path | None = None) -> ServerStatus:
    """The API this process would use: a configured one, else this state folder's local server."""
    state = state or state_dir()
    url = configured_api_url()
    if url:
        return ServerStatus("configured", url, healthy(url), state=state)
    record = _read_record(state)
    if record and _ours(record.pid):
        return ServerStatus("local", record.url, healthy(record.url), record.pid, state)
    return ServerStatus("none", None, False, state=state)


def start(state: Path | None = None, *, say: Callable[[str], None] = _say,
          timeout: float = STARTUP_TIMEOUT_S,
          environment: Mapping[str, str] | None = None) -> ServerRecord:
    """Start this state folder's server unless it already runs; wait until it answers.

    Parameters
    ----------
    state : Path, optional
        The state folder (default: :func:`state_dir`).
    say : callable, default prints to stderr
        Receives the lines saying what is being started and waited for.
    timeout : float, default 180
        Seconds to wait for the server's health check.
    environment : mapping, optional
        The server's environment (default: this process's); PREFECT_HOME is always the state
        folder's ``prefect/``, and no PREFECT_API_URL is passed on.

    Returns
    -------
    ServerRecord
        The running server's pid, port and API URL.

    Examples
    --------
    >>> from modelwatch.flows.local_server import start, stop
    >>> record = start()  # doctest: +SKIP
    >>> record.url  # doctest: +SKIP
    'http://127.0.0.1:4207/api'
    """
    state = state or state_dir()
    with _locked(state):
        record = _read_record(state)
        if record and _ours(record.pid):
            if healthy(record.url):
                return record
            # Started by another command and still migrating: wait for it rather than start another.
            say(f"waiting for the local Prefect server at {record.url} (pid {record.pid}) to answer")
            return _wait(record, state, None, timeout)
        port = _choose_port(record)
        home = state / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        first = not (home / "prefect.db").exists()
        env = {**SERVER_DEFAULTS, **(os.environ if environment is None else environment),
               "PREFECT_HOME": str(home)}
        env.pop("PREFECT_API_URL", None)
        env.pop("PREFECT_PROFILE", None)
        log = open(state / "server.log", "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                 "--port", str(port)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # it outlives this command; stopped by `modelwatch server stop`
            )
        finally:
            log.close()
        record = ServerRecord(pid=process.pid, port=port, url=f"http://127.0.0.1:{port}/api",
                              started_at=time.time())
        _record_path(state).write_text(json.dumps(asdict(record)))
        expect = "a new database: about 30 s" if first else "about 10 s"
        say(f"starting a local Prefect server at {record.url.removesuffix('/api')} "
            f"(database {home / 'prefect.db'}); waiting for its API to answer ({expect}) ...")
        return _wait(record, state, process, timeout)


def _wait(record: ServerRecord, state: Path, process: subprocess.Popen | None,
          timeout: float) -> ServerRecord:
    began = time.monotonic()
    while not healthy(record.url):
        exited = process.poll() is not None if process else not _ours(record.pid)
        if exited:
            _record_path(state).unlink(missing_ok=True)
            raise LocalServerFailed(f"the local Prefect server exited during start-up; its log "
                               f"({state / 'server.log'}) ends:\n{_log_tail(state)}")
        if time.monotonic() - began > timeout:
            raise LocalServerFailed(f"the local Prefect server (pid {record.pid}) did not answer at "
                               f"{record.url} within {timeout:.0f} s; see {state / 'server.log'}")
        time.sleep(0.25)
    return record


def _log_tail(state: Path, size: int = 3000) -> str:
    try:
        return (state / "server.log").read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def stop(state: Path | None = None, grace: float = STOP_GRACE_S) -> bool:
    """Stop this state folder's server and everything it started; False if none was running."""
    state = state or state_dir()
    with _locked(state):
        record = _read_record(state)
        _record_path(state).unlink(missing_ok=True)
        if not record or not _ours(record.pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(record.pid) and time.monotonic() < deadline:
            _reap(record.pid)
            time.sleep(0.1)
        if _alive(record.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)
            _reap(record.pid)
        return True


def _reap(pid: int) -> None:
    """Collect the exit status when the server is our own child (else it lingers as a zombie)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


_ENSURED: str | None = None


def ensure_api(state: Path | None = None) -> str:
    """The Prefect API URL this process uses, starting the local server if nothing is configured.

    Call before running a flow. A configured ``PREFECT_API_URL`` is returned untouched; else the
    state folder's server is started (or reused) and ``PREFECT_API_URL`` is set for this process and
    the processes it starts, so Prefect never falls back to a temporary server of its own.

    Returns
    -------
    str
        The API URL, for example ``"http://127.0.0.1:4207/api"``.
    """
    global _ENSURED
    if _ENSURED and os.environ.get("PREFECT_API_URL") == _ENSURED:
        return _ENSURED
    url = configured_api_url()
    if url:
        return url
    record = start(state)
    os.environ["PREFECT_API_URL"] = record.url
    if "prefect.context" in sys.modules:  # Prefect froze its settings at import: refresh them
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
    _ENSURED = record.url
    return record.url
