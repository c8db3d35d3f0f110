"""The governance console: the dashboard served to signed-in people who act on it (`modelwatch ui`).

Every route but ``/health``, ``/sign-in`` and ``/metrics`` (which asks for its own bearer token)
needs a session; every POST goes through one dispatcher that checks the form's CSRF token before any
handler runs; the actions themselves are modelwatch.flows.actions, which check the role and write the
audit log. Pages are the static dashboard's templates, extended with forms.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from modelwatch.console.config import ConsoleConfig
from modelwatch.console.security import (
    HEADERS,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    Session,
    Sessions,
    SignInLimiter,
    content_security_policy,
    same_token,
)
from modelwatch.flows.actions import Actor, NotPermitted
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store

PUBLIC = ("/health", "/sign-in", "/metrics")
MAX_FORM_BYTES = 256 * 1024
ACCOUNT_RECHECK_SECONDS = 10.0  # a role change or a disabled account takes effect this soon
AUDIT_ON_PAGE = 100
RISKS = ("High", "Medium", "Low", "Unknown")
_MODEL = r"(?P<model>[a-z0-9][a-z0-9_.-]{0,62})"
_TYPE = r"(?P<monitor_type>[a-z][a-z0-9-]{1,62})"


class Refused(Exception):
    """A request the console answers with an error page (status and a one-line reason)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Viewer:
    """The signed-in person as the templates see them."""

    name: str
    role: str
    csrf: str
    can_sign_out: bool

    def may(self, permission: str) -> bool:
        return Actor(self.name, self.role).may(permission)

    @property
    def may_edit_alerts(self) -> bool:
        return self.may("alerts.edit")

    @property
    def may_edit_schedules(self) -> bool:
        return self.may("schedules.edit")

    @property
    def may_manage_users(self) -> bool:
        return self.may("users.manage")


class Console:
    """State shared by the requests of one console: the store, sessions, and cached views of the
    dashboard document and the search index (re-read when models.json changes)."""

    def __init__(self, config: ConsoleConfig) -> None:
        from modelwatch.tasks.dashboard_html import SCRIPT, STYLE
        from modelwatch.tasks.html_templates import static_text, trusted

        self.config = config.checked()
        self.store = Store(config.store)
        self.sessions = Sessions()
        self.limiter = SignInLimiter()
        self.policy = content_security_policy((SCRIPT,))
        # A meta element cannot carry frame-ancestors; the header does.
        self.meta_policy = self.policy.replace("; frame-ancestors 'none'", "")
        self.style = trusted(STYLE + "\n" + static_text("console/console.css"))
        self.script = trusted(SCRIPT)
        self._lock = threading.Lock()
        self._dashboard: tuple[str | None, dict[str, Any]] | None = None
        self._index: tuple[str | None, list[Any]] | None = None
        self._rows_html: tuple[dict[str, Any], dict[str, Any]] | None = None
        # One render of the rows, one build of the index at a time: the other requests wait for it.
        self._rendering = threading.Lock()
        self._indexing = threading.Lock()
        self._checked: dict[str, tuple[float, Any]] = {}

    # ---- the dashboard document and the search index ----

    def dashboard(self) -> dict[str, Any]:
        """rows, columns and generated_at of dashboard/models.json (empty before the first summary)."""
        from modelwatch.flows.summary import DASHBOARD_JSON, dashboard_columns
        from modelwatch.tasks.dashboard import DashboardRow, MonitorColumn

        version = self.store.version(DASHBOARD_JSON)
        with self._lock:
            if self._dashboard is not None and self._dashboard[0] == version:
                return self._dashboard[1]
        if version is None:
            view = {"rows": [], "columns": dashboard_columns(), "generated_at": None}
        else:
            document = self.store.read_json(DASHBOARD_JSON)
            view = {"rows": [DashboardRow.model_validate(r) for r in document.get("models", [])],
                    "columns": [MonitorColumn.model_validate(c) for c in document.get("columns", [])]
                    or dashboard_columns(),
                    "generated_at": datetime.fromisoformat(document["generated_at"])}
        with self._lock:
            self._dashboard = (version, view)
        return view

    def fleet_view(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The dashboard view and each of its models' fleet-table row as HTML, rendered once per
        dashboard document (a fleet page or a search then only joins them)."""
        from modelwatch.tasks.dashboard_html import render_rows

        with self._rendering:
            view = self.dashboard()
            cached = self._rows_html
            if cached is not None and cached[0] is view:
                return cached
            # A new summary rewrites models.json but changes few rows: the unchanged rows keep their HTML.
            kept: dict[str, Any] = {}
            if cached is not None and cached[0]["columns"] == view["columns"]:
                before = {r.model: r for r in cached[0]["rows"]}
                kept = {r.model: cached[1][r.model] for r in view["rows"] if before.get(r.model) == r}
            fresh = render_rows([r for r in view["rows"] if r.model not in kept], lambda m: f"/models/{m}",
                                view["columns"], endpoint_href=lambda e: f"/endpoints/{e}")
            fragments = {r.model: kept.get(r.model) or fresh[r.model] for r in view["rows"]}
            self._rows_html = (view, fragments)
            return view, fragments

    def warm(self) -> None:
        """Read the dashboard, render its rows, build the search index and compile the pages'
        templates before the first request needs them (`modelwatch ui` does so before serving)."""
        from modelwatch.tasks.html_templates import environment

        try:
            self.fleet_view()
            self.search_index()
        except Exception:  # noqa: BLE001 - the request that needs them reports the problem
            pass
        for template in ("console/fleet.html", "console/model.html", "console/sign_in.html"):
            environment().get_template(template)

    def search_index(self) -> list[Any]:
        from modelwatch.flows.summary import DASHBOARD_JSON
        from modelwatch.tasks.fleet_search import build_index

        with self._indexing:
            version = self.store.version(DASHBOARD_JSON)
            with self._lock:
                if self._index is not None and self._index[0] == version:
                    return self._index[1]
            index = build_index(self.store, self.dashboard()["rows"])
            with self._lock:
                self._index = (version, index)
            return index

    def changed(self) -> None:
        """Forget the cached views after this console changed something (cards feed the search)."""
        with self._lock:
            self._dashboard = self._index = self._rows_html = None

    # ---- who is asking ----

    def account(self, name: str) -> Any:
        """The store's account of a name, re-read at most every ACCOUNT_RECHECK_SECONDS."""
        from modelwatch.tasks.accounts import read_account

        moment = time.monotonic()
        cached = self._checked.get(name)
        if cached is not None and moment - cached[0] < ACCOUNT_RECHECK_SECONDS:
            return cached[1]
        try:
            account = read_account(self.store, name)
        except UserError:
            account = None
        self._checked[name] = (moment, account)
        return account

    def forget_account(self, name: str) -> None:
        """Re-read this account on its next request (this console just changed it)."""
        self._checked.pop(name, None)

    def session_of(self, request: Request) -> tuple[Session | None, bool]:
        """The request's live session, and whether it was just made (proxy sign-in)."""
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if self.config.auth == "proxy":
            name = request.headers.get(self.config.proxy_header)
            if not name:
                return None, False
            if session is not None and session.user == name:
                return self._current(session), False
            account = self.account(name)
            role = (account.role if account is not None and not account.disabled
                    else None if account is not None else self.config.proxy_default_role)
            if role is None:
                raise Refused(403, f"{name} has no console account (ask an admin for one)")
            return self.sessions.create(name, role), True
        return (self._current(session) if session is not None else None), False

    def _current(self, session: Session) -> Session | None:
        """The session with its account's current role; None once the account is gone or disabled."""
        account = self.account(session.user)
        if account is None:
            if self.config.auth == "proxy" and self.config.proxy_default_role:
                return session
            self.sessions.end(session.token)
            return None
        if account.disabled:
            self.sessions.end(session.token)
            return None
        session.role = account.role
        return session

    # ---- rendering ----

    def context(self, session: Session | None) -> dict[str, Any]:
        viewer = None if session is None else Viewer(
            name=session.user, role=session.role, csrf=session.csrf,
            can_sign_out=self.config.auth == "local")
        messages = []
        if session is not None:
            messages, session.flash = session.flash, []
        return {"csp": self.meta_policy, "style": self.style, "script": self.script, "user": viewer,
                "messages": messages}

    def secure(self, request: Request) -> bool:
        return self.config.secure_cookies if self.config.secure_cookies is not None \
            else request.url.scheme == "https"


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status)


def _back(path: str) -> str:
    """Where an error page links back to: the model page an action was about, else the fleet."""
    match = re.match(r"/models/" + _MODEL, path)
    return f"/models/{match.group('model')}" if match else "/"


def _local_path(target: str | None) -> str:
    """A redirect target after sign-in: a path on this console only (never //host or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def create_app(config: ConsoleConfig) -> FastAPI:
    """The console as an ASGI application.

    Parameters
    ----------
    config : ConsoleConfig
        The store, the sign-in mode and the metrics token.

    Examples
    --------
    >>> import uvicorn  # doctest: +SKIP
    >>> uvicorn.run(create_app(ConsoleConfig(store="./modelwatch-store")), host="127.0.0.1")
    ... # doctest: +SKIP
    """
    from modelwatch.console import pages

    console = Console(config)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console

    def refused(request: Request, session: Session | None, status: int, message: str) -> Response:
        if "text/html" not in request.headers.get("accept", "") and request.method == "GET":
            return JSONResponse({"error": message}, status_code=status)
        context = console.context(session)
        from modelwatch.tasks.html_templates import render

        return _html(render("console/error.html", **context, title="modelwatch — refused",
                            heading={401: "Sign-in needed", 403: "Not allowed", 404: "Not found",
                                     429: "Too many attempts"}.get(status, "Refused"),
                            message=message, back=_back(request.url.path)), status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        session, fresh = None, False
        try:
            if path not in PUBLIC:
                session, fresh = console.session_of(request)
                if session is None:
                    if console.config.auth == "proxy":
                        raise Refused(401, f"no {console.config.proxy_header} header: the console "
                                      "is reached through its sign-in proxy")
                    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                        response: Response = RedirectResponse(
                            f"/sign-in?next={quote(path)}", status_code=303)
                    else:
                        response = JSONResponse({"error": "sign in first"}, status_code=401)
                    response.headers.update(HEADERS)
                    return response
            request.state.session = session
            response = await call_next(request)
        except Refused as problem:
            response = refused(request, session, problem.status, problem.message)
        if fresh and session is not None:
            _set_session_cookie(response, session, console.secure(request))
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", console.policy)
        return response

    @app.exception_handler(Refused)
    async def on_refused(request: Request, problem: Refused) -> Response:
        return refused(request, getattr(request.state, "session", None), problem.status,
                       problem.message)

    @app.exception_handler(NotPermitted)
    async def on_not_permitted(request: Request, problem: NotPermitted) -> Response:
        return refused(request, getattr(request.state, "session", None), 403, str(problem))

    @app.exception_handler(UserError)
    async def on_user_error(request: Request, problem: UserError) -> Response:
        return refused(request, getattr(request.state, "session", None), 400, str(problem))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/sign-in")
    def sign_in_page(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query's name
        if console.config.auth == "proxy":
            return RedirectResponse("/", status_code=303)
        return pages.sign_in(console, request, _local_path(next))

    # Every form posts here: the CSRF check comes before any handler.
    actions: list[tuple[re.Pattern[str], Callable[..., Response]]] = pages.actions()

    @app.post("/{path:path}")
    async def post(request: Request, path: str) -> Response:
        form = await _form(request)
        if request.url.path == "/sign-in":
            return await run_in_threadpool(pages.sign_in_post, console, request, form)
        session: Session | None = request.state.session
        if session is None:
            raise Refused(401, "sign in first")
        if not same_token(form.get("csrf"), session.csrf):
            raise Refused(403, "the form's CSRF token is missing or does not match this session: "
                          "reload the page and try again")
        for pattern, handler in actions:
            match = pattern.fullmatch(request.url.path)
            if match:
                actor = Actor(session.user, session.role, "console")
                # Handlers hash passwords, call the Prefect API and write the store: off the loop.
                return await run_in_threadpool(handler, console, request, session, actor, form,
                                               **match.groupdict())
        raise Refused(404, f"no action at {request.url.path}")

    pages.register_pages(app, console)
    return app


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as {field: last value}; refused when it is another
    kind of body or too large."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise Refused(415, f"expected a form (application/x-www-form-urlencoded), got "
                      f"{kind or 'no content type'}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, f"the form is larger than {MAX_FORM_BYTES // 1024} KiB")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise Refused(400, "the form is not UTF-8") from None
    return {name: values[-1] for name, values in fields.items()}


def _set_session_cookie(response: Response, session: Session, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, secure=secure,
                        samesite="strict", path="/")


def sign_in_cookie(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(SIGN_IN_COOKIE, token, httponly=True, secure=secure, samesite="strict",
                        path="/sign-in", max_age=3600)


def now() -> datetime:
    return datetime.now(UTC)

