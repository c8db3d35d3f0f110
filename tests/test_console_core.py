"""The console's core, without a server: password hashing, roles, the sign-in limit, sessions, the
audit log, fleet search, separation of duties on cards, and the Prometheus text."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelwatch.console.metrics import metrics_text
from modelwatch.console.security import Sessions, SignInLimiter
from modelwatch.tasks import accounts
from modelwatch.tasks.audit import AuditEntry, append_audit, audit_csv, audit_jsonl, read_audit
from modelwatch.tasks.cards import (
    create_card,
    get_card,
    review_authors,
    set_status,
    update_card,
)
from modelwatch.tasks.dashboard import DashboardRow, MonitorCell, MonitorColumn
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.fleet_search import entry_for, search
from modelwatch.tasks.registry import ModelRecord, ModelVersion, register_model
from modelwatch.tasks.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"))


def test_password_hash_is_scrypt_as_hashlib_computes_it() -> None:
    stored = accounts.hash_password("correct horse battery staple")
    scheme, n, r, p, salt, key = stored.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", 2**15, 8, 1)
    # Independently: the same salt through hashlib gives the same key; 128*N*r bytes is 32 MiB.
    again = hashlib.scrypt(b"correct horse battery staple", salt=base64.b64decode(salt), n=2**15, r=8,
                           p=1, dklen=32, maxmem=64 * 2**20)
    assert again == base64.b64decode(key) and 128 * int(n) * int(r) == 32 * 2**20
    assert accounts.verify_password(stored, "correct horse battery staple")
    assert not accounts.verify_password(stored, "correct horse battery stapler")
    assert not accounts.verify_password("garbage", "x") and not accounts.verify_password(None, "x")
    assert accounts.hash_password("correct horse battery staple") != stored  # a fresh salt each time


def test_roles_nest_and_accounts_round_trip(store: Store) -> None:
    held = [accounts.PERMISSIONS[r] for r in accounts.ROLES]
    assert all(a < b for a, b in zip(held, held[1:], strict=False))
    assert "cards.review" not in accounts.PERMISSIONS["engineer"]
    assert "alerts.edit" not in accounts.PERMISSIONS["viewer"]
    account = accounts.add_account(store, "ana@example.com", "approver", "a long passphrase", by="root")
    assert account.may("cards.review") and not account.may("users.manage")
    with pytest.raises(UserError, match="already exists"):
        accounts.add_account(store, "ana@example.com", "viewer", "another passphrase", by="root")
    with pytest.raises(UserError, match="12 to 1024"):
        accounts.add_account(store, "bo", "viewer", "short", by="root")
    with pytest.raises(UserError, match="unknown role"):
        accounts.add_account(store, "bo", "owner", "a long passphrase", by="root")
    with pytest.raises(UserError, match="invalid user name"):
        accounts.add_account(store, "../etc", "viewer", "a long passphrase", by="root")
    assert accounts.authenticate(store, "ana@example.com", "a long passphrase").role == "approver"
    assert accounts.authenticate(store, "ana@example.com", "a wrong passphrase") is None
    assert accounts.authenticate(store, "nobody", "a long passphrase") is None
    accounts.change_account(store, "ana@example.com", disabled=True)
    assert accounts.authenticate(store, "ana@example.com", "a long passphrase") is None
    sso = accounts.add_account(store, "carl", "viewer", None, by="root")
    assert sso.password_hash is None and accounts.authenticate(store, "carl", "") is None
    raw = json.loads((Path(store.root) / "access/users/ana@example.com.json").read_text())
    assert "a long passphrase" not in json.dumps(raw) and raw["password_hash"].startswith("scrypt$")


def test_sign_in_limit_per_name_and_client() -> None:
    limiter = SignInLimiter(window=0.5, per_name=3, per_client=5)
    for _ in range(3):
        assert limiter.retry_after("ana", "10.0.0.1") == 0
        limiter.failed("ana", "10.0.0.1")
    assert 0 < limiter.retry_after("ANA", "10.0.0.2") <= 0.5  # names compare case-insensitively
    assert limiter.retry_after("bo", "10.0.0.1") == 0  # the client has 3 of its 5
    limiter.failed("bo", "10.0.0.1")
    limiter.failed("cy", "10.0.0.1")
    assert limiter.retry_after("dee", "10.0.0.1") > 0  # the client's 5 are used
    time.sleep(0.6)
    assert limiter.retry_after("ana", "10.0.0.1") == 0  # the window slid past them


def test_sessions_expire_when_idle_and_end_per_user() -> None:
    sessions = Sessions(idle=0.3, lifetime=10)
    one, two = sessions.create("ana", "viewer"), sessions.create("ana", "viewer")
    assert one.token != two.token and one.csrf != two.csrf and len(one.token) >= 40
    assert sessions.get(one.token) is one and sessions.get("forged") is None
    time.sleep(0.35)
    assert sessions.get(one.token) is None
    three = sessions.create("ana", "viewer")
    assert sessions.end_user("ana") == 2 and sessions.get(three.token) is None


def test_audit_is_append_only_filtered_and_exported(store: Store) -> None:
    t0 = datetime(2026, 12, 1, 23, 59, tzinfo=UTC)
    entries = [AuditEntry(at=t0 + timedelta(minutes=i), who="ana", action="alerts.set",
                          model="churn" if i % 2 == 0 else "fraud", target="data-quality",
                          before={"m": i}, after={"m": i + 1}, note="=HYPERLINK(\"x\")" if i == 0
                          else None) for i in range(4)]
    for entry in reversed(entries):
        append_audit(store, entry)
    with pytest.raises(FileExistsError):
        append_audit(store, entries[0])  # the same entry never replaces what is written
    assert [e.id for e in read_audit(store)] == [e.id for e in entries]
    assert [e.id for e in read_audit(store, model="churn")] == [entries[0].id, entries[2].id]
    assert [e.id for e in read_audit(store, start=t0 + timedelta(minutes=1),
                                     end=t0 + timedelta(minutes=2))] == [entries[1].id, entries[2].id]
    assert len(list(Path(store.root, "audit/2026/12/02").iterdir())) == 3  # filed by day (UTC)
    assert [json.loads(line)["id"] for line in audit_jsonl(entries).splitlines()] == \
        [e.id for e in entries]
    rows = list(csv.DictReader(io.StringIO(audit_csv(entries))))
    assert rows[0]["note"] == "'=HYPERLINK(\"x\")"  # not a formula in a spreadsheet
    assert json.loads(rows[3]["after"]) == {"m": 4} and rows[1]["note"] == ""


def test_search_matches_every_word_in_any_field() -> None:
    index = [
        entry_for("churn", "Predicts customer churn", ["web-prod"],
                  {"model_overview": {"model_owner": "Ana Núñez", "model_description": "GBM"}}),
        entry_for("fraud", "Card fraud", ["payments"], {"intended_uses": {"purpose_of_model":
                                                                          "Flag churners"}}),
        entry_for("credit", None, [], None),
    ]
    assert search(index, "churn") == {"churn": ["name", "description"], "fraud": ["card"]}
    assert search(index, "NUNEZ gbm") == {"churn": ["owner", "card"]}
    assert search(index, "payments fraud") == {"fraud": ["name", "description", "endpoints"]}
    assert search(index, "gbm payments") == {}  # every word must match the same model
    assert search(index, "   ") == {}


def _registered(store: Store, name: str) -> None:
    register_model(store, ModelRecord(name=name, problem_type="binary",
                                      versions=[ModelVersion(version="1")]))


def test_whoever_submitted_or_edited_a_version_under_review_cannot_approve_it(store: Store) -> None:
    _registered(store, "churn")
    create_card(store, "churn", {"intended_uses": {"risk_rating": "High"}}, by="erin")
    set_status(store, "churn", "PendingReview", by="ana")
    with pytest.raises(UserError, match="ana cannot approve card v2 .*submitted it"):
        set_status(store, "churn", "Approved", by="ana")
    update_card(store, "churn", {"intended_uses": {"purpose_of_model": "retention"}}, by="bo")
    assert review_authors(store, get_card(store, "churn")) == {"ana": "submitted", "bo": "edited"}
    with pytest.raises(UserError, match="bo cannot approve card v3 .*edited it"):
        set_status(store, "churn", "Approved", by="bo")
    approved = set_status(store, "churn", "Approved", by="cy", note="ok")
    assert approved.status == "Approved" and approved.status_history[-1].by == "cy"


def test_metrics_text_follows_the_rows() -> None:
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    rows = [DashboardRow(model="churn", monitors={
        "data-quality": MonitorCell(status="Alarm", alarm=True, last_execution_at=at,
                                    last_violation_count=3, last_metric=0.25),
        "model-quality": MonitorCell(status="Inactive")})]
    columns = [MonitorColumn(name="data-quality", label="Data quality", metric="max drift"),
               MonitorColumn(name="model-quality", label="Model quality", metric="accuracy")]
    samples = {}
    for line in metrics_text(rows, columns, at).splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    key = 'model="churn",monitor_type="data-quality"'
    assert samples[f"modelwatch_monitor_alarm{{{key}}}"] == 1
    assert samples[f'modelwatch_monitor_status{{{key},status="Alarm"}}'] == 1
    assert samples[f'modelwatch_monitor_status{{{key},status="OK"}}'] == 0
    assert samples[f"modelwatch_monitor_last_execution_timestamp_seconds{{{key}}}"] == at.timestamp()
    assert samples[f"modelwatch_monitor_last_violations{{{key}}}"] == 3
    assert samples[f'modelwatch_monitor_headline_metric{{{key},metric="max drift"}}'] == 0.25
    assert samples['modelwatch_monitor_status{model="churn",monitor_type="model-quality",'
                   'status="Inactive"}'] == 1
    assert samples["modelwatch_models"] == 1


def test_users_commands_audit_and_never_print_hashes(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    from tests.cli_run import invoke

    monkeypatch.setenv("MODELWATCH_IDENTITY", "it-admin")
    monkeypatch.setattr("sys.stdin", io.StringIO("a long passphrase\n"))
    code, out = invoke("users", "add", "ana", "--role", "engineer", "--password-stdin",
                       "--store", store.root)
    assert code == 0 and json.loads(out)["password"] == "set" and "scrypt" not in out
    assert accounts.authenticate(store, "ana", "a long passphrase").role == "engineer"
    code, out = invoke("users", "add", "sso-user", "--sso-only", "--store", store.root)
    assert code == 0 and json.loads(out)["password"] == "none (single sign-on)"
    code, _ = invoke("users", "add", "ana", "--role", "owner", "--sso-only", "--store", store.root)
    assert code == 2 and "unknown role 'owner'" in capsys.readouterr().err
    code, out = invoke("users", "set-role", "ana", "approver", "--store", store.root)
    assert code == 0 and json.loads(out)["role"] == "approver"
    code, out = invoke("users", "disable", "ana", "--store", store.root)
    assert code == 0 and accounts.authenticate(store, "ana", "a long passphrase") is None
    code, out = invoke("users", "list", "--store", store.root)
    assert code == 0 and "scrypt" not in out
    assert [a["name"] for a in json.loads(out)] == ["ana", "sso-user"]
    assert [(e.who, e.via, e.action, e.target, e.after) for e in read_audit(store)] == [
        ("it-admin", "cli", "users.add", "ana", {"role": "engineer", "disabled": False,
                                                  "password": True}),
        ("it-admin", "cli", "users.add", "sso-user", {"role": "viewer", "disabled": False,
                                                       "password": False}),
        ("it-admin", "cli", "users.set-role", "ana", {"role": "approver", "disabled": False,
                                                       "password": True}),
        ("it-admin", "cli", "users.disable", "ana", {"role": "approver", "disabled": True,
                                                      "password": True})]
    assert "scrypt" not in json.dumps([e.dump() for e in read_audit(store)], default=str)
    code, out = invoke("audit", "export", "--format", "csv", "--store", store.root)
    assert code == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 4


def test_ui_refuses_to_start_without_an_account_or_with_bad_options(
        store: Store, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from tests.cli_run import invoke

    store.write_text("registry/.keep", "")
    assert invoke("ui", "--store", store.root)[0] == 2
    assert "no console account with a password" in capsys.readouterr().err
    assert invoke("ui", "--auth", "ldap", "--store", store.root)[0] == 2
    assert "--auth 'ldap': expected local or proxy" in capsys.readouterr().err
    (tmp_path / "token").write_text("short\n")
    assert invoke("ui", "--metrics-token-file", str(tmp_path / "token"), "--store", store.root)[0] == 2
    assert "at least 16 characters" in capsys.readouterr().err
    assert invoke("ui", "--auth", "proxy", "--proxy-default-role", "boss", "--store",
                  store.root)[0] == 2
    assert "unknown role 'boss'" in capsys.readouterr().err
