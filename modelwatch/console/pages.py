"""The console's pages (GET) and form actions (POST, reached through the app's CSRF-checked
dispatcher). Each page is a static dashboard template extended with the console's forms."""

from __future__ import annotations

import math
import re
import secrets
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from modelwatch.console.app import (
    _MODEL,
    _TYPE,
    AUDIT_ON_PAGE,
    RISKS,
    Console,
    Refused,
    _client,
    _html,
    _local_path,
    _set_session_cookie,
    sign_in_cookie,
)
from modelwatch.console.security import SESSION_COOKIE, SIGN_IN_COOKIE, STORE_FILE_POLICY, Session, same_token
from modelwatch.flows.actions import Actor
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.html_templates import render
from modelwatch.tasks.store import check_slug

MOVE_LABELS = {"PendingReview": "Submit for review", "Approved": "Approve",
               "Draft": "Send back to Draft", "Archived": "Archive"}
# Files of the store the console serves: executions' HTML reports (never access/, never JSON).
_STORE_FILE = re.compile(r"monitoring/[a-z0-9][a-z0-9_.-]{0,62}/[a-z][a-z0-9-]{1,62}/[^/]+/[^/]+\.html")


def _session(request: Request) -> Session:
    return request.state.session


# ---- sign-in ----

def sign_in(console: Console, request: Request, next_: str, message: str | None = None,
            username: str = "", status: int = 200) -> Response:
    token = request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(32)
    page = render("console/sign_in.html", **console.context(None), title="modelwatch — sign in",
                  csrf=token, next=next_, message=message, username=username)
    response = _html(page, status)
    sign_in_cookie(response, token, console.secure(request))
    return response


def sign_in_post(console: Console, request: Request, form: dict[str, str]) -> Response:
    from modelwatch.tasks.accounts import authenticate

    if console.config.auth != "local":
        raise Refused(404, "sign-in is done by the proxy in front of this console")
    if not same_token(form.get("csrf"), request.cookies.get(SIGN_IN_COOKIE) or ""):
        raise Refused(403, "the sign-in form's token is missing or does not match: reload the "
                      "sign-in page and try again")
    name, password = form.get("username", "").strip()[:128], form.get("password", "")
    next_ = _local_path(form.get("next"))
    wait = console.limiter.retry_after(name, _client(request))
    if wait > 0:
        response = sign_in(console, request, next_, f"too many failed sign-ins: try again in "
                           f"{math.ceil(wait / 60)} minutes", name, 429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    account = authenticate(console.store, name, password) if name else None
    if account is None:
        console.limiter.failed(name, _client(request))
        return sign_in(console, request, next_, "wrong user name or password", name, 401)
    console.limiter.succeeded(name)
    session = console.sessions.create(account.name, account.role)
    response = RedirectResponse(next_, status_code=303)
    _set_session_cookie(response, session, console.secure(request))
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


def sign_out(console: Console, request: Request, session: Session, actor: Actor,
             form: dict[str, str]) -> Response:
    console.sessions.end(session.token)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---- the fleet ----

def fleet(console: Console, request: Request, query: str) -> Response:
    from modelwatch.tasks.dashboard_html import render_index
    from modelwatch.tasks.fleet_search import search

    view, fragments = console.fleet_view()
    rows = view["rows"]
    matches: dict[str, list[str]] = {}
    if query.strip():
        matches = search(console.search_index(), query)
        rows = [r for r in rows if r.model in matches]
    alarm_by_risk = {risk: sum(1 for r in view["rows"] if r.risk_rating == risk and r.in_alarm)
                     for risk in RISKS}
    page = render_index(
        rows, view["generated_at"] or datetime.now().astimezone(), lambda m: f"/models/{m}",
        view["columns"], endpoint_href=lambda e: f"/endpoints/{e}", template="console/fleet.html",
        fragments=fragments,
        **console.context(_session(request)), query=query, matches=matches,
        alarm_by_risk=alarm_by_risk, generated_at_known=view["generated_at"] is not None)
    return _html(page)


# ---- a model ----

def _row(console: Console, model: str) -> Any:
    """The model's dashboard row; for a model registered since the last summary, built now."""
    from modelwatch.flows.summary import refresh_model_row
    from modelwatch.tasks.registry import model_key

    check_slug(model, "model name")
    for attempt in range(2):
        row = next((r for r in console.dashboard()["rows"] if r.model == model), None)
        if row is not None:
            return row
        if attempt == 0 and console.store.exists(model_key(model)) \
                and refresh_model_row(console.store.root, model):
            console.changed()
            continue
        break
    if not console.store.exists(model_key(model)):
        raise Refused(404, f"no model {model!r} is registered in this store")
    raise Refused(404, f"model {model!r} is not on the dashboard yet: run `modelwatch dashboard`")


def _violations(console: Console, model: str) -> Any:
    from modelwatch.tasks.executions import execution_prefix

    def listed(execution: Any) -> list[dict[str, Any]]:
        prefix = execution_prefix(model, execution.monitor_type, execution.window_start,
                                  execution.window_end)
        key = f"{prefix}/constraint_violations.json"
        try:
            return list((console.store.read_json(key) or {}).get("violations", []))
        except (FileNotFoundError, ValueError):
            return []

    return listed


def card_state(console: Console, model: str, session: Session) -> dict[str, Any] | None:
    from modelwatch.flows.actions import CARD_MOVES
    from modelwatch.tasks.cards import ALLOWED_MOVES, latest_card, review_authors

    card = latest_card(console.store, model)
    if card is None:
        return None
    actor = Actor(session.user, session.role)
    moves = [{"status": s, "label": MOVE_LABELS[s]} for s in ALLOWED_MOVES[card.status]
             if actor.may(CARD_MOVES.get(s, "cards.edit"))]
    return {"card_version": card.card_version, "status": card.status, "moves": moves,
            "authors": review_authors(console.store, card)}


def model_page(console: Console, request: Request, model: str) -> Response:
    from modelwatch.flows.summary import read_model_page
    from modelwatch.tasks.alerts import read_alert
    from modelwatch.tasks.audit import read_audit
    from modelwatch.tasks.dashboard_html import render_model_page
    from modelwatch.tasks.executions import MAX_ENTRIES

    row = _row(console, model)
    document, views = read_model_page(console.store, row)
    session = _session(request)
    columns = document.columns
    monitor_forms = []
    for column in columns:
        cell = row.monitors.get(column.name)
        schedule = None
        if cell is not None and cell.status != "None":
            schedule = {"cron": cell.schedule, "active": cell.status != "Inactive"}
        monitor_forms.append({"type": column.name, "label": column.label, "schedule": schedule,
                              "criteria": read_alert(console.store, model, column.name).criteria})
    audit = list(reversed(read_audit(console.store, model=model, limit=AUDIT_ON_PAGE)))
    page = render_model_page(
        document, "/", store_root=console.store.uri(""), store_href="/store/", endpoints=views,
        endpoint_href=lambda e: f"/endpoints/{e}", violations=_violations(console, model),
        template="console/model.html", **console.context(session), monitor_forms=monitor_forms,
        max_period=MAX_ENTRIES, card_state=card_state(console, model, session), audit=audit)
    return _html(page)


def endpoint_page(console: Console, request: Request, endpoint: str) -> Response:
    from modelwatch.flows.summary import read_model_page
    from modelwatch.tasks.endpoint_page import render_endpoint_page
    from modelwatch.tasks.registry import get_endpoint

    check_slug(endpoint, "endpoint name")
    record = get_endpoint(console.store, endpoint)
    _, views = read_model_page(console.store, _row(console, record.model))
    view = next((v for v in views if v.endpoint == endpoint), None)
    if view is None:
        raise Refused(404, f"endpoint {endpoint!r} does not serve model {record.model!r}")
    return _html(render_endpoint_page(view, f"/models/{record.model}", "/",
                                      template="console/endpoint.html",
                                      **console.context(_session(request))))


def audit_page(console: Console, request: Request) -> Response:
    from modelwatch.tasks.audit import read_audit

    entries = read_audit(console.store)
    shown = list(reversed(entries))[:500]
    return _html(render("console/audit.html", **console.context(_session(request)),
                        title="modelwatch — audit log", entries=shown,
                        limited=len(entries) > len(shown)))


def audit_export(console: Console, model: str | None, kind: str) -> Response:
    from modelwatch.tasks.audit import audit_csv, audit_jsonl, read_audit

    if kind not in ("jsonl", "csv"):
        raise Refused(404, "audit exports are .jsonl or .csv")
    entries = read_audit(console.store, model=model)
    name = f"audit-{model}" if model else "audit"
    if kind == "csv":
        return PlainTextResponse(audit_csv(entries), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return PlainTextResponse(audit_jsonl(entries), media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'})


def store_file(console: Console, key: str) -> Response:
    """An execution's HTML report, under its own policy and sandboxed (see STORE_FILE_POLICY)."""
    if not _STORE_FILE.fullmatch(key) or ".." in key.split("/"):
        raise Refused(404, "only executions' HTML reports are served from the store")
    try:
        data = console.store.read_bytes(key)
    except FileNotFoundError:
        raise Refused(404, f"no report at {key}") from None
    return Response(data, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": STORE_FILE_POLICY})


# ---- actions (POST) ----

def done(console: Console, session: Session, model: str, message: str,
         to: str | None = None) -> Response:
    """After a change: the model's dashboard row rebuilt (so the fleet shows it), a note for the next
    page, and back to the model's page (or `to`)."""
    from modelwatch.flows.summary import refresh_model_row

    try:
        refresh_model_row(console.store.root, model)
    except Exception as problem:  # noqa: BLE001 - the change is made; the next summary shows it
        session.flash.append(("error", f"the change is saved, but the dashboard row was not "
                                       f"rebuilt ({type(problem).__name__}: {problem})"))
    console.changed()
    session.flash.append(("done", message))
    return RedirectResponse(to or f"/models/{model}", status_code=303)


def _int(form: dict[str, str], name: str) -> int:
    try:
        return int(form.get(name, ""))
    except ValueError:
        raise UserError(f"{name.replace('_', ' ')}: expected a whole number, got "
                        f"{form.get(name, '')!r}") from None


def set_alert(console: Console, request: Request, session: Session, actor: Actor,
              form: dict[str, str], model: str, monitor_type: str) -> Response:
    from modelwatch.flows.actions import set_alert_criteria

    alert = set_alert_criteria(console.store, actor, model, monitor_type,
                               _int(form, "datapoints_to_alert"), _int(form, "evaluation_period"))
    return done(console, session, model, f"{monitor_type} alert: {alert.criteria.datapoints_to_alert} "
                 f"of the last {alert.criteria.evaluation_period} executions")


def set_schedule(console: Console, request: Request, session: Session, actor: Actor,
                 form: dict[str, str], model: str, monitor_type: str) -> Response:
    from modelwatch.flows.actions import set_schedule_active, set_schedule_cron

    action = form.get("action")
    if action in ("pause", "resume"):
        state = set_schedule_active(console.store, actor, model, monitor_type, action == "resume")
    elif action == "cron":
        state = set_schedule_cron(console.store, actor, model, monitor_type,
                                  form.get("cron", "").strip())
    else:
        raise UserError(f"schedule action {action!r}: expected pause, resume or cron")
    return done(console, session, model, f"{monitor_type} schedule: "
                 f"{'active' if state['active'] else 'paused'}, cron {state['cron']}")


def move_card(console: Console, request: Request, session: Session, actor: Actor,
              form: dict[str, str], model: str) -> Response:
    from modelwatch.flows.actions import move_card as move

    card = move(console.store, actor, model, form.get("to", ""), form.get("note") or None)
    return done(console, session, model, f"card v{card.card_version}: {card.status}")


def actions() -> list[tuple[re.Pattern[str], Any]]:
    from modelwatch.console import card_pages

    return [*card_pages.actions(),
        (re.compile("/sign-out"), sign_out),
        (re.compile(f"/models/{_MODEL}/alerts/{_TYPE}"), set_alert),
        (re.compile(f"/models/{_MODEL}/schedules/{_TYPE}"), set_schedule),
        (re.compile(f"/models/{_MODEL}/card/status"), move_card),
        (re.compile("/users"), add_user),
        (re.compile(r"/users/(?P<name>[A-Za-z0-9][A-Za-z0-9._@+-]{0,127})"), change_user),
    ]


# ---- routes ----

def register_pages(app: FastAPI, console: Console) -> None:
    from modelwatch.console import card_pages
    from modelwatch.console.metrics import metrics_text

    card_pages.register(app, console)

    @app.get("/")
    def index(request: Request, q: str = "") -> Response:
        return fleet(console, request, q)

    @app.get("/api/models")
    def models_json() -> Response:
        view = console.dashboard()
        return JSONResponse({"generated_at": view["generated_at"].isoformat()
                             if view["generated_at"] else None,
                             "models": [r.dump() for r in view["rows"]]})

    @app.get("/models/{model}")
    def model(request: Request, model: str) -> Response:
        return model_page(console, request, model)

    @app.get("/models/{model}/audit.{kind}")
    def model_audit(model: str, kind: str) -> Response:
        return audit_export(console, check_slug(model, "model name"), kind)

    @app.get("/users")
    def users(request: Request) -> Response:
        return users_page(console, request)

    @app.get("/audit")
    def audit(request: Request) -> Response:
        return audit_page(console, request)

    @app.get("/audit.{kind}")
    def audit_all(kind: str) -> Response:
        return audit_export(console, None, kind)

    @app.get("/endpoints/{endpoint}")
    def endpoint(request: Request, endpoint: str) -> Response:
        return endpoint_page(console, request, endpoint)

    @app.get("/store/{key:path}")
    def store(key: str) -> Response:
        return store_file(console, key)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        token = console.config.metrics_token
        if token is None:
            raise Refused(404, "metrics are off: start the console with a metrics token "
                          "(MODELWATCH_METRICS_TOKEN or --metrics-token-file)")
        given = request.headers.get("authorization", "")
        if not given.startswith("Bearer ") or not same_token(given[len("Bearer "):], token):
            return PlainTextResponse("a bearer token is needed\n", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        view = console.dashboard()
        return PlainTextResponse(metrics_text(view["rows"], view["columns"], view["generated_at"]),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")


# ---- users (admins) ----

def users_page(console: Console, request: Request) -> Response:
    from modelwatch.tasks.accounts import ROLES, list_accounts

    session = _session(request)
    if not Actor(session.user, session.role).may("users.manage"):
        raise Refused(403, f"{session.user} ({session.role}) may not manage users")
    return _html(render("console/users.html", **console.context(session), title="modelwatch — users",
                        accounts=list_accounts(console.store), roles=ROLES))


def _users_done(console: Console, session: Session, name: str, message: str) -> Response:
    console.sessions.end_user(name)  # a changed account signs in again with what it is now
    console.forget_account(name)
    session.flash.append(("done", message))
    return RedirectResponse("/users", status_code=303)


def add_user(console: Console, request: Request, session: Session, actor: Actor,
             form: dict[str, str]) -> Response:
    from modelwatch.flows.actions import add_user as add

    account = add(console.store, actor, form.get("name", "").strip(), form.get("role", ""),
                  form.get("password") or None)
    session.flash.append(("done", f"{account.name} added as {account.role}"))
    return RedirectResponse("/users", status_code=303)


def change_user(console: Console, request: Request, session: Session, actor: Actor,
                form: dict[str, str], name: str) -> Response:
    from modelwatch.flows.actions import change_user as change
    from modelwatch.flows.actions import remove_user

    action = form.get("action")
    if action == "set-role":
        account = change(console.store, actor, name, role=form.get("role", ""))
        return _users_done(console, session, name, f"{name} is now {account.role}")
    if action in ("disable", "enable"):
        change(console.store, actor, name, disabled=action == "disable")
        return _users_done(console, session, name, f"{name} {action}d")
    if action == "remove":
        remove_user(console.store, actor, name)
        return _users_done(console, session, name, f"{name} removed")
    raise UserError(f"user action {action!r}: expected set-role, disable, enable or remove")
