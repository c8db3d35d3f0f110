"""CLI for the embedded default Prefect API (`modelwatch server start|stop|status`): the local
background server that commands start on first need and reuse (see modelwatch.flows.local_server)."""

from __future__ import annotations

import typer

from modelwatch.cli_common import emit_json

server_app = typer.Typer(no_args_is_help=True, help=(
    "The local Prefect server that commands start on first need (loopback only, database under "
    "$MODELWATCH_STATE_DIR, default ~/.local/state/modelwatch); PREFECT_API_URL, when set, wins."))


@server_app.command("start")
def server_start() -> None:
    """Start the local Prefect server (or find it running) and print its pid, port and API URL."""
    from dataclasses import asdict

    from modelwatch.flows.local_server import configured_api_url, start, state_dir

    configured = configured_api_url()
    if configured:
        print(f"note: PREFECT_API_URL is set ({configured}); commands use that API, not the local "
              "server started here", file=typer.get_text_stream("stderr"))
    record = start()
    emit_json({**asdict(record), "state": str(state_dir())})


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server and everything it started."""
    from modelwatch.flows.local_server import state_dir, stop

    stopped = stop()
    emit_json({"stopped": stopped, "state": str(state_dir())})


@server_app.command("status")
def server_status() -> None:
    """Say which Prefect API commands use and whether it answers; exit code 1 when none does."""
    from modelwatch.flows.local_server import status

    found = status()
    emit_json({"source": found.source, "url": found.url, "healthy": found.healthy,
               "pid": found.pid, "state": str(found.state)})
    print(found.line(), file=typer.get_text_stream("stderr"))
    if not found.healthy:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")
