"""`modelwatch ui` (the governance console), `modelwatch users ...` (its accounts) and `modelwatch
audit export` (the audit log)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from modelwatch.cli_common import StoreOption, cli_identity, emit_json, open_store, say

users_app = typer.Typer(no_args_is_help=True, help="Console accounts and their roles (viewer, "
                        "engineer, approver, admin: each holds the permissions of the ones before).")
audit_app = typer.Typer(no_args_is_help=True, help="The audit log of people's actions.")

NameArgument = Annotated[str, typer.Argument(help="The user's sign-in name.")]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


def _actor():
    from modelwatch.flows.actions import Actor

    return Actor(cli_identity(), None, "cli")


def _public(account: object) -> dict:
    record = account.dump()
    record["password"] = "set" if record.pop("password_hash", None) else "none (single sign-on)"
    return record


@users_app.command("add")
def users_add(
    name: NameArgument,
    role: Annotated[str, typer.Option(help="viewer, engineer, approver or admin.")] = "viewer",
    sso_only: Annotated[bool, typer.Option(
        "--sso-only", help="No password: the user signs in through the single-sign-on proxy.")] = False,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
    store: StoreOption = None,
) -> None:
    """Add a console account (the password is asked for, twice, unless --sso-only)."""
    from modelwatch.flows.actions import add_user
    from modelwatch.tasks.accounts import check_name, check_role

    check_name(name)
    check_role(role)
    the_store = open_store(store, writable=True)
    password = None if sso_only else _password(password_stdin)
    emit_json(_public(add_user(the_store, _actor(), name, role, password)))


@users_app.command("list")
def users_list(store: StoreOption = None) -> None:
    """Every console account (never its password hash)."""
    from modelwatch.tasks.accounts import list_accounts

    emit_json([_public(a) for a in list_accounts(open_store(store))])


def _change(name: str, store: str | None, **changes: object) -> None:
    from modelwatch.flows.actions import change_user

    emit_json(_public(change_user(open_store(store, writable=True), _actor(), name, **changes)))


@users_app.command("set-role")
def users_set_role(name: NameArgument, role: Annotated[str, typer.Argument(
        help="viewer, engineer, approver or admin.")], store: StoreOption = None) -> None:
    """Change a user's role (their console sessions take it within 10 seconds)."""
    from modelwatch.tasks.accounts import check_role

    _change(name, store, role=check_role(role))


@users_app.command("set-password")
def users_set_password(name: NameArgument, password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
        store: StoreOption = None) -> None:
    """Set a user's password."""
    _change(name, store, password=_password(password_stdin))


@users_app.command("disable")
def users_disable(name: NameArgument, store: StoreOption = None) -> None:
    """Disable an account: it can no longer sign in, and its sessions end within 10 seconds."""
    _change(name, store, disabled=True)


@users_app.command("enable")
def users_enable(name: NameArgument, store: StoreOption = None) -> None:
    """Enable a disabled account again."""
    _change(name, store, disabled=False)


@users_app.command("remove")
def users_remove(name: NameArgument, store: StoreOption = None) -> None:
    """Remove an account (the audit log keeps what it did)."""
    from modelwatch.flows.actions import remove_user

    remove_user(open_store(store, writable=True), _actor(), name)
    emit_json({"removed": name})


@audit_app.command("export")
def audit_export(
    format_: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    model: Annotated[str | None, typer.Option(help="Only the actions on this model.")] = None,
    store: StoreOption = None,
) -> None:
    """Print the audit log, oldest first, as JSON lines or CSV."""
    from modelwatch.tasks.audit import audit_csv, audit_jsonl, read_audit
    from modelwatch.tasks.errors import UserError

    kind = format_.strip().lower()
    if kind not in ("jsonl", "csv"):
        raise UserError(f"--format {format_!r}: expected jsonl or csv")
    entries = read_audit(open_store(store), model=model)
    sys.stdout.write(audit_csv(entries) if kind == "csv" else audit_jsonl(entries))


def ui_command(
    host: Annotated[str, typer.Option(help="Address to listen on; loopback unless you expose it.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8765,
    auth: Annotated[str, typer.Option(help="local (accounts and passwords) or proxy (a trusted "
                                      "single-sign-on proxy names the user in a header).")] = "local",
    proxy_header: Annotated[str, typer.Option(help="The proxy's user header.")] = "X-Forwarded-User",
    proxy_default_role: Annotated[str | None, typer.Option(
        help="Role of a proxy user without an account \\[default: refused].")] = None,
    metrics_token_file: Annotated[str | None, typer.Option(
        help="File holding the bearer token of /metrics \\[default: $MODELWATCH_METRICS_TOKEN; "
             "without one /metrics is off].")] = None,
    tls_cert: Annotated[str | None, typer.Option(help="TLS certificate (PEM) to serve https.")] = None,
    tls_key: Annotated[str | None, typer.Option(help="TLS private key (PEM).")] = None,
    store: StoreOption = None,
) -> None:
    """Serve the governance console: the dashboard, search, alerts, schedules, card reviews and the
    audit log, for signed-in users (`modelwatch users add` creates them)."""
    import uvicorn

    from modelwatch.console.app import create_app
    from modelwatch.console.config import ConsoleConfig, read_token_file
    from modelwatch.tasks.accounts import list_accounts
    from modelwatch.tasks.errors import UserError

    if auth not in ("local", "proxy"):
        raise UserError(f"--auth {auth!r}: expected local or proxy")
    if (tls_cert is None) != (tls_key is None):
        raise UserError("--tls-cert and --tls-key go together")
    the_store = open_store(store)
    config = ConsoleConfig(store=the_store.root, auth=auth, proxy_header=proxy_header,
                           proxy_default_role=proxy_default_role,
                           **({"metrics_token": read_token_file(metrics_token_file)}
                              if metrics_token_file else {})).checked()
    if auth == "local" and not any(a.password_hash for a in list_accounts(the_store)):
        raise UserError(f"no console account with a password in {the_store.root}: add one with "
                        "`modelwatch users add NAME --role admin`")
    if host not in LOOPBACK and tls_cert is None:
        say(f"warning: serving on {host} without TLS: put a TLS proxy in front, or pass --tls-cert "
            "and --tls-key")
    app = create_app(config)
    app.state.console.warm()  # the first page is then as quick as the next ones
    say(f"modelwatch console on {'https' if tls_cert else 'http'}://{host}:{port}/ "
        f"(store {the_store.root}, sign-in: {auth})")
    uvicorn.run(app, host=host, port=port, log_level="warning",
                ssl_certfile=tls_cert, ssl_keyfile=tls_key, proxy_headers=False)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
    app.command("ui")(ui_command)
