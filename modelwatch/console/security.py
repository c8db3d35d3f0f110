"""The console's sessions, CSRF tokens and sign-in rate limit, kept in the server's memory (a restart
signs everyone out), and the headers every response carries."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from modelwatch.tasks.csp import script_hash

SESSION_COOKIE = "modelwatch_session"
SIGN_IN_COOKIE = "modelwatch_sign_in"  # the sign-in form's CSRF token, before a session exists
IDLE_SECONDS = 60 * 60  # a session unused this long ends
LIFETIME_SECONDS = 12 * 60 * 60  # and any session after this long
FAILURE_WINDOW_SECONDS = 15 * 60
FAILURES_PER_NAME = 5  # failed sign-ins per name and window before that name is refused
FAILURES_PER_CLIENT = 20  # and per client address


@dataclass
class Session:
    token: str
    user: str
    role: str
    csrf: str
    created: float
    seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, message) shown once


class Sessions:
    """Signed-in sessions by their cookie's random token."""

    def __init__(self, idle: float = IDLE_SECONDS, lifetime: float = LIFETIME_SECONDS) -> None:
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.idle, self.lifetime = idle, lifetime

    def create(self, user: str, role: str) -> Session:
        moment = time.monotonic()
        session = Session(token=secrets.token_urlsafe(32), user=user, role=role,
                          csrf=secrets.token_urlsafe(32), created=moment, seen=moment)
        with self._lock:
            self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value (its idle clock restarted), or None."""
        if not token:
            return None
        moment = time.monotonic()
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if moment - session.seen > self.idle or moment - session.created > self.lifetime:
                del self._by_token[token]
                return None
            session.seen = moment
            return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def end_user(self, user: str) -> int:
        """End every session of a user (their role changed, or the account was disabled)."""
        with self._lock:
            ended = [t for t, s in self._by_token.items() if s.user == user]
            for token in ended:
                del self._by_token[token]
        return len(ended)


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class SignInLimiter:
    """Failed sign-ins counted per name and per client address over a sliding window; once either
    reaches its limit, sign-ins for it are refused (even with the right password) until the oldest
    failure leaves the window."""

    def __init__(self, window: float = FAILURE_WINDOW_SECONDS, per_name: int = FAILURES_PER_NAME,
                 per_client: int = FAILURES_PER_CLIENT) -> None:
        self.window, self.limits = window, {"name": per_name, "client": per_client}
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], moment: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and moment - times[0] > self.window:
            times.popleft()
        return times

    def retry_after(self, name: str, client: str) -> float:
        """Seconds until a sign-in for this name from this client is allowed again (0: now)."""
        moment = time.monotonic()
        wait = 0.0
        with self._lock:
            for kind, value in (("name", name.lower()), ("client", client)):
                times = self._recent((kind, value), moment)
                if len(times) >= self.limits[kind]:
                    wait = max(wait, self.window - (moment - times[0]))
        return wait

    def failed(self, name: str, client: str) -> None:
        moment = time.monotonic()
        with self._lock:
            for key in (("name", name.lower()), ("client", client)):
                self._recent(key, moment).append(moment)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(("name", name.lower()), None)


def content_security_policy(scripts: tuple[str, ...]) -> str:
    """The static pages' policy, with forms allowed to post back to the console itself."""
    hashes = " ".join(sorted({script_hash(s) for s in scripts})) or "'none'"
    return (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src 'none'; "
            "font-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


# A file from the store (an execution's report) keeps its own policy (in its meta element) and runs
# in a sandbox: an opaque origin that cannot reach the console's session or post to it.
STORE_FILE_POLICY = "sandbox allow-scripts; frame-ancestors 'none'; form-action 'none'"

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
