"""Who may do what: the console's accounts and roles, kept in the store under ``access/users/``.

An account is one JSON document ``access/users/<name>.json``: its role and, for a local account, a
scrypt hash of its password (memory-hard: 32 MiB per check). An account without a password signs in
only through the trusted single-sign-on header. Roles nest: each holds every permission of the ones
before it, ``viewer < engineer < approver < admin``; separation of duties (no one approves the card
version they submitted) is checked on the card itself, whoever the role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Literal

from pydantic import Field

from modelwatch.tasks.documents import OwnDocument, parse_document
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store, json_dumps

Role = Literal["viewer", "engineer", "approver", "admin"]
ROLES: tuple[str, ...] = ("viewer", "engineer", "approver", "admin")
# What each role adds to the one before it.
_ADDS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "engineer": frozenset({"alerts.edit", "schedules.edit", "cards.edit", "cards.submit"}),
    "approver": frozenset({"cards.review"}),  # approve, or send back to Draft
    "admin": frozenset({"users.manage"}),
}
PERMISSIONS: dict[str, frozenset[str]] = {}
_held: frozenset[str] = frozenset()
for _role in ROLES:
    _held = PERMISSIONS[_role] = _held | _ADDS[_role]

USERS_PREFIX = "access/users"
# Names from a single-sign-on proxy are often e-mail addresses.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
# scrypt: N=2^15, r=8 costs 32 MiB and about 0.1 s per hash here (OWASP's minimum is N=2^17/r=8
# or 2^15 at r=8 with p=3; we keep p=1 for the sign-in latency and rate-limit failures instead).
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_KEY_BYTES = 2**15, 8, 1, 32
_SCRYPT_MAXMEM = 64 * 1024 * 1024


def now() -> datetime:
    return datetime.now(UTC)


class Account(OwnDocument):
    name: str
    role: Role
    password_hash: str | None = None  # None: single sign-on only
    created_at: datetime = Field(default_factory=now)
    created_by: str | None = None
    disabled: bool = False

    def may(self, permission: str) -> bool:
        """Whether this account holds a permission (see PERMISSIONS); a disabled one holds none."""
        return not self.disabled and permission in PERMISSIONS[self.role]


def check_name(name: str) -> str:
    """An account name: 1-128 letters, digits, '.', '_', '@', '+' or '-'; else UserError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UserError(f"invalid user name {name!r}: expected 1-128 letters, digits, '.', '_', "
                        "'@', '+' or '-', starting with a letter or digit")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise UserError(f"password: expected {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} "
                        f"characters, got {len(password)}")
    return password


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=size,
                          maxmem=_SCRYPT_MAXMEM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """A self-describing scrypt hash: ``scrypt$N$r$p$<salt>$<key>`` (base64), random 16-byte salt.

    Examples
    --------
    >>> stored = hash_password("correct horse battery")
    >>> verify_password(stored, "correct horse battery"), verify_password(stored, "wrong")
    (True, False)
    """
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(stored: str | None, password: str) -> bool:
    """Whether a password matches a hash from hash_password (compared in constant time)."""
    if not stored or len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        expected = base64.b64decode(key)
        if scheme != "scrypt":
            return False
        found = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


# A hash to verify against when the account does not exist, so a sign-in takes as long for an unknown
# name as for a wrong password (the time does not tell which names exist).
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def account_key(name: str) -> str:
    return f"{USERS_PREFIX}/{check_name(name)}.json"


def read_account(store: Store, name: str) -> Account | None:
    """The account of that name, or None."""
    key = account_key(name)
    if not store.exists(key):
        return None
    account = parse_document(Account, store.read_bytes(key), store.uri(key))
    if account.name != name:
        raise UserError(f"{store.uri(key)}: holds the account {account.name!r}, not {name!r}")
    return account


def list_accounts(store: Store) -> list[Account]:
    names = sorted(k.rsplit("/", 1)[-1][:-len(".json")] for k in store.list(USERS_PREFIX)
                   if k.endswith(".json"))
    return [a for a in (read_account(store, n) for n in names) if a is not None]


def _save(store: Store, account: Account) -> None:
    store.write_bytes(account_key(account.name), json_dumps(account.dump()).encode("utf-8"))


def add_account(store: Store, name: str, role: str, password: str | None, by: str) -> Account:
    """Create an account; UserError when the name is taken or a value is invalid.

    Parameters
    ----------
    store : Store
        Where ``access/users/<name>.json`` is written.
    name : str
        The sign-in name (for single sign-on: the name the proxy's header carries).
    role : {"viewer", "engineer", "approver", "admin"}
        Roles nest; see the module's documentation.
    password : str or None
        At least 12 characters; None for an account that signs in only through single sign-on.
    by : str
        Who creates it (recorded).

    Examples
    --------
    >>> add_account(Store("/tmp/store"), "alice", "engineer", "a long passphrase", by="root")
    ... # doctest: +SKIP
    """
    check_name(name)
    check_role(role)
    hashed = hash_password(check_password(password)) if password is not None else None
    if read_account(store, name) is not None:
        raise UserError(f"user {name!r} already exists: change it with `modelwatch users set-role` "
                        "or `modelwatch users set-password`")
    account = Account(name=name, role=role, password_hash=hashed, created_by=by)
    try:
        store.create_bytes(account_key(name), json_dumps(account.dump()).encode("utf-8"))
    except FileExistsError:
        raise UserError(f"user {name!r} already exists") from None
    return account


def get_account(store: Store, name: str) -> Account:
    account = read_account(store, name)
    if account is None:
        raise UserError(f"no user {name!r} in {store.root} (add one with `modelwatch users add`)")
    return account


def change_account(store: Store, name: str, *, role: str | None = None,
                   password: str | None = None, disabled: bool | None = None) -> Account:
    """Change an account's role, password or disabled flag; returns the account as saved."""
    account = get_account(store, name)
    changes: dict[str, object] = {}
    if role is not None:
        changes["role"] = check_role(role)
    if password is not None:
        changes["password_hash"] = hash_password(check_password(password))
    if disabled is not None:
        changes["disabled"] = disabled
    account = account.model_copy(update=changes)
    _save(store, account)
    return account


def remove_account(store: Store, name: str) -> Account:
    account = get_account(store, name)
    store.delete(account_key(name))
    return account


def authenticate(store: Store, name: str, password: str) -> Account | None:
    """The account when the name and password match an enabled local account, else None."""
    try:
        account = read_account(store, name)
    except UserError:
        account = None
    if account is None or account.password_hash is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(account.password_hash, password) or account.disabled:
        return None
    return account
