"""How a console is set up: its store, how people sign in, and the token of its metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelwatch.tasks.errors import UserError

METRICS_TOKEN_ENV = "MODELWATCH_METRICS_TOKEN"
MIN_TOKEN_CHARS = 16


class ConsoleConfig(BaseModel):
    """The console's configuration.

    Parameters
    ----------
    store : str
        The store's root URI (a folder or s3://bucket/prefix), as every command takes it.
    auth : {"local", "proxy"}, default "local"
        ``local``: accounts of ``modelwatch users add`` sign in with their password. ``proxy``: a
        trusted reverse proxy (an OIDC proxy in front) has signed the user in and names them in
        ``proxy_header``; the console must then be reachable only through that proxy.
    proxy_header : str, default "X-Forwarded-User"
        The header carrying the signed-in user's name (``proxy`` only).
    proxy_default_role : str or None, default None
        The role of a proxy user with no account in the store; None refuses such users.
    metrics_token : str or None
        The bearer token ``/metrics`` asks for (at least 16 characters); None turns ``/metrics``
        off. Default: ``$MODELWATCH_METRICS_TOKEN``.
    secure_cookies : bool or None, default None
        Mark cookies Secure; None: when the request came over https.

    Examples
    --------
    >>> ConsoleConfig(store="./modelwatch-store").auth
    'local'
    """

    model_config = ConfigDict(extra="forbid")

    store: str
    auth: Literal["local", "proxy"] = "local"
    proxy_header: str = "X-Forwarded-User"
    proxy_default_role: str | None = None
    metrics_token: str | None = Field(default_factory=lambda: os.environ.get(METRICS_TOKEN_ENV) or None)
    secure_cookies: bool | None = None

    def checked(self) -> ConsoleConfig:
        from modelwatch.tasks.accounts import check_role

        if self.proxy_default_role is not None:
            check_role(self.proxy_default_role)
        if self.metrics_token is not None and len(self.metrics_token) < MIN_TOKEN_CHARS:
            raise UserError(f"metrics token: expected at least {MIN_TOKEN_CHARS} characters, got "
                            f"{len(self.metrics_token)}")
        return self


def read_token_file(path: str) -> str:
    try:
        token = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as problem:
        raise UserError(f"--metrics-token-file {path}: cannot read it ({problem.strerror})") from None
    if not token:
        raise UserError(f"--metrics-token-file {path}: the file is empty")
    return token
