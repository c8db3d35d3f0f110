"""The governance console served for real: `modelwatch ui` under uvicorn on 127.0.0.1 over a store
with a monitored model, driven over HTTP. Sign-in, sessions, CSRF, roles, separation of duties, the
audit log, schedules through the Prefect API, search, /metrics and escaping."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelwatch.flows.child_processes import (
    die_with_parent,
    free_port,
    stop_child,
    wait_until_answers,
)
from modelwatch.tasks.accounts import add_account
from modelwatch.tasks.audit import read_audit
from modelwatch.tasks.cards import create_card, get_card
from modelwatch.tasks.store import Store
from tests.cli_run import invoke, run

ROOT = Path(__file__).resolve().parent.parent
MODEL, OTHER, ENDPOINT = "credit-default", "fraud-screen", "credit-default-prod"
START = datetime(2026, 11, 23, tzinfo=UTC)
PASSWORD = "a long enough passphrase"
TOKEN = "metrics-token-0123456789"
USERS = {"vera": "viewer", "eng": "engineer", "apo": "approver", "apu": "approver", "root": "admin",
         "locked": "viewer"}
XSS = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[dict[str, Any]]:
    """A store with a drifted data-quality execution, a paused-able schedule, cards and accounts;
    `modelwatch ui` serving it on a free loopback port."""
    from modelwatch.flows.demo_data import LABEL, generate_demo

    root = tmp_path_factory.mktemp("console")
    uri = str(root / "store")
    store = Store(uri)
    case = generate_demo(root / "demo", start=START, rows_per_hour=10, training_rows=1_500,
                         validation_rows=100)
    for path in sorted(Path(case.capture_root).rglob("*.jsonl")):
        store.write_bytes(f"capture/{ENDPOINT}/{path.relative_to(case.capture_root)}",
                          path.read_bytes())
    run("models", "register", "--model", MODEL, "--problem-type", "binary", "--features-from",
        str(case.training_csv), "--label", LABEL, "--description", "Retail loan default risk",
        "--store", uri)
    run("models", "register", "--model", OTHER, "--problem-type", "binary", "--feature",
        "amount:Fractional", "--description", "Screens card payments", "--store", uri)
    run("endpoints", "register", "--endpoint", ENDPOINT, "--model", MODEL, "--model-version", "1",
        "--store", uri)
    create_card(store, MODEL, {"model_overview": {"model_owner": "Ana Núñez",
                                                  "model_description": "gradient boosting"},
                               "intended_uses": {"risk_rating": "High"}}, by="erin")
    create_card(store, OTHER, {"model_overview": {"model_description": XSS, "model_owner": XSS},
                               "intended_uses": {"risk_rating": "Low", "purpose_of_model": XSS}},
                by="erin")
    run("baseline", "suggest", "--model", MODEL, "--dataset", str(case.training_csv), "--label",
        LABEL, "--store", uri)
    start, end = case.days[1]
    execution = run("monitor", "run", "--model", MODEL, "--start", start.isoformat(), "--end",
                    end.isoformat(), "--no-report", "--store", uri)
    assert execution["status"] == "CompletedWithViolations", execution
    run("monitor", "schedule", "create", "--model", MODEL, "--cron", "0 3 * * *", "--store", uri)
    assert invoke("dashboard", "--refresh", "--store", uri)[0] == 0
    for name, role in USERS.items():
        add_account(store, name, role, PASSWORD, by="test")
    with serving(uri, root / "ui.log", api=prefect_api) as url:
        yield {"url": url, "store": store, "uri": uri, "execution": execution, "api": prefect_api}


@contextlib.contextmanager
def serving(uri: str, log: Path, *options: str, api: str) -> Iterator[str]:
    """`modelwatch ui` on a free loopback port until the block ends; yields its URL."""
    port = free_port()
    env = {**os.environ, "PREFECT_API_URL": api, "MODELWATCH_METRICS_TOKEN": TOKEN}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "modelwatch.cli", "ui", "--store", uri,
                                 "--port", str(port), *options], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_answers(proc, url + "/health", 60, "the console")
        except RuntimeError as problem:
            raise RuntimeError(f"{problem}: {log.read_text()[-3000:]}") from None
        yield url
    finally:
        stop_child(proc, grace=20)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def signed_in(console: dict, name: str) -> httpx.Client:
    client = httpx.Client(base_url=console["url"], timeout=60)
    page = client.get("/sign-in")
    answer = client.post("/sign-in", data={"username": name, "password": PASSWORD,
                                           "csrf": csrf_of(page.text), "next": "/"})
    assert answer.status_code == 303, answer.text
    return client


def post(client: httpx.Client, path: str, data: dict[str, str], page: str = f"/models/{MODEL}",
         csrf: bool = True) -> httpx.Response:
    form = dict(data)
    if csrf:
        form["csrf"] = csrf_of(client.get(page).text)
    return client.post(path, data=form)


ACTIONS = [(f"/models/{MODEL}/alerts/data-quality", {"datapoints_to_alert": "2",
                                                     "evaluation_period": "3"}),
           (f"/models/{MODEL}/schedules/data-quality", {"action": "pause"}),
           (f"/models/{MODEL}/schedules/data-quality", {"action": "cron", "cron": "0 5 * * *"}),
           (f"/models/{MODEL}/card/status", {"to": "PendingReview"})]


def test_without_a_session_every_route_is_refused(console: dict) -> None:
    from modelwatch.console.app import PUBLIC, create_app
    from modelwatch.console.config import ConsoleConfig

    app = create_app(ConsoleConfig(store=console["uri"]))
    paths = {r.path for r in app.routes if "GET" in getattr(r, "methods", ())} - set(PUBLIC)
    examples = {"{model}": MODEL, "{endpoint}": ENDPOINT, "{kind}": "csv",
                "{key:path}": "monitoring/x/data-quality/w/report.html"}
    assert len(paths) >= 8
    client = httpx.Client(base_url=console["url"], timeout=30)
    for path in sorted(paths) + ["/no-such-page"]:
        for placeholder, value in examples.items():
            path = path.replace(placeholder, value)
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith("/sign-in"), path
        data = client.get(path)
        assert data.status_code == 401 and MODEL not in data.text, path
    for path, form in ACTIONS + [("/sign-out", {})]:
        assert client.post(path, data=form).status_code == 401, path
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/metrics").status_code == 401  # its own token, not a session
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0000000"}
                      ).status_code == 401


def test_sign_in_needs_its_form_token_and_is_rate_limited(console: dict) -> None:
    client = httpx.Client(base_url=console["url"], timeout=60)
    assert client.post("/sign-in", data={"username": "eng", "password": PASSWORD}).status_code == 403
    page = client.get("/sign-in")
    assert "HttpOnly" in page.headers["set-cookie"] and "SameSite=strict" in page.headers["set-cookie"]
    token = csrf_of(page.text)
    for _ in range(5):
        wrong = client.post("/sign-in", data={"username": "locked", "password": "not the password!",
                                              "csrf": token})
        assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    blocked = client.post("/sign-in", data={"username": "locked", "password": PASSWORD, "csrf": token})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    other = client.post("/sign-in", data={"username": "eng", "password": PASSWORD, "csrf": token,
                                          "next": "//evil.example/x"})
    assert other.status_code == 303 and other.headers["location"] == "/"  # never off-site
    cookie = other.headers["set-cookie"]
    assert "modelwatch_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_forms_without_the_csrf_token_are_refused_and_not_audited(console: dict) -> None:
    client = signed_in(console, "eng")
    before = len(read_audit(console["store"]))
    for path, form in ACTIONS:
        assert post(client, path, form, csrf=False).status_code == 403, path
        assert post(client, path, {**form, "csrf": "forged"}, csrf=False).status_code == 403, path
    other = signed_in(console, "apo")  # another session's token is not this one's
    token = csrf_of(other.get(f"/models/{MODEL}").text)
    assert client.post(ACTIONS[0][0], data={**ACTIONS[0][1], "csrf": token}).status_code == 403
    assert client.post(ACTIONS[0][0], json={**ACTIONS[0][1]}).status_code == 415
    assert len(read_audit(console["store"])) == before


def test_a_viewer_can_read_but_change_nothing(console: dict) -> None:
    client = signed_in(console, "vera")
    page = client.get(f"/models/{MODEL}")
    assert page.status_code == 200 and "Save alert" not in page.text and "Pause schedule" not in page.text
    before = len(read_audit(console["store"]))
    for path, form in ACTIONS:
        refused = post(client, path, form)
        assert refused.status_code == 403 and "may not" in refused.text, path
    assert len(read_audit(console["store"])) == before
    assert get_card(console["store"], MODEL).status == "Draft"


def test_an_engineer_edits_an_alert_and_the_dashboard_shows_it(console: dict) -> None:
    from modelwatch.tasks.alerts import read_alert

    client = signed_in(console, "eng")
    done = post(client, *ACTIONS[0])
    assert done.status_code == 303 and done.headers["location"] == f"/models/{MODEL}"
    criteria = read_alert(console["store"], MODEL, "data-quality").criteria
    assert (criteria.datapoints_to_alert, criteria.evaluation_period) == (2, 3)
    page = client.get(f"/models/{MODEL}").text
    assert "2 of the last 3" in page and "data-quality alert: 2 of the last 3" in page  # the note
    entry = read_audit(console["store"], model=MODEL)[-1]
    assert (entry.who, entry.role, entry.via, entry.action, entry.target) == \
        ("eng", "engineer", "console", "alerts.set", "data-quality")
    assert entry.before == {"datapoints_to_alert": 1, "evaluation_period": 1}
    assert entry.after == {"datapoints_to_alert": 2, "evaluation_period": 3}
    assert "alerts.set" in page and 'class="audit-row"' in page  # shown on the model page
    count = len(read_audit(console["store"]))
    bad = post(client, ACTIONS[0][0], {"datapoints_to_alert": "4", "evaluation_period": "3"})
    assert bad.status_code == 400 and "datapoints-to-alert" in bad.text
    assert len(read_audit(console["store"])) == count  # a refused change is not audited


def test_a_schedule_paused_and_re_timed_in_the_console_is_so_in_prefect(console: dict) -> None:
    from modelwatch.flows.prefect_api import monitor_schedules

    client = signed_in(console, "eng")
    assert post(client, *ACTIONS[1]).status_code == 303
    info = monitor_schedules(MODEL)[(MODEL, "data-quality")]
    assert not info.active
    fleet = client.get("/").text
    row = re.search(rf'<tr class="model-row" data-model="{MODEL}".*?</tr>', fleet, re.S).group(0)
    assert 'data-monitor="data-quality" data-state="Inactive"' in row
    assert post(client, *ACTIONS[2]).status_code == 303
    info = monitor_schedules(MODEL)[(MODEL, "data-quality")]
    assert info.cron == "0 5 * * *" and not info.active and info.parameters["period"] == "P1D"
    assert post(client, f"/models/{MODEL}/schedules/data-quality", {"action": "resume"}
                ).status_code == 303
    assert monitor_schedules(MODEL)[(MODEL, "data-quality")].active
    bad = post(client, f"/models/{MODEL}/schedules/data-quality", {"action": "cron",
                                                                  "cron": "every day"})
    assert bad.status_code == 400 and "cron" in bad.text
    actions = [(e.action, e.before, e.after) for e in read_audit(console["store"], model=MODEL)
               if e.action.startswith("schedule.")]
    assert actions == [
        ("schedule.pause", {"active": True, "cron": "0 3 * * *"}, {"active": False, "cron": "0 3 * * *"}),
        ("schedule.cron", {"active": False, "cron": "0 3 * * *"}, {"active": False, "cron": "0 5 * * *"}),
        ("schedule.resume", {"active": False, "cron": "0 5 * * *"}, {"active": True, "cron": "0 5 * * *"}),
    ]


def test_card_review_roles_and_separation_of_duties(console: dict) -> None:
    engineer, approver, second = (signed_in(console, n) for n in ("eng", "apo", "apu"))
    assert post(approver, f"/models/{MODEL}/card/status", {"to": "PendingReview",
                                                           "note": "ready"}).status_code == 303
    refused = post(engineer, f"/models/{MODEL}/card/status", {"to": "Approved"})
    assert refused.status_code == 403 and "may not approve" in refused.text
    own = post(approver, f"/models/{MODEL}/card/status", {"to": "Approved"})
    assert own.status_code == 400 and "separation of duties" in own.text
    page = second.get(f"/models/{MODEL}").text
    assert 'data-move="Approved"' in page and "apo (submitted)" in page
    assert post(second, f"/models/{MODEL}/card/status", {"to": "Approved", "note": "fine"}
                ).status_code == 303
    card = get_card(console["store"], MODEL)
    assert card.status == "Approved" and card.status_history[-1].by == "apu"
    moves = [(e.who, e.after["status"]) for e in read_audit(console["store"], model=MODEL)
             if e.action == "card.status"]
    assert moves == [("apo", "PendingReview"), ("apu", "Approved")]
    assert 'data-status="Approved"' in second.get(f"/models/{MODEL}").text


def test_search_over_names_descriptions_owners_endpoints_and_cards(console: dict) -> None:
    client = signed_in(console, "vera")

    def found(query: str) -> set[str]:
        page = client.get("/", params={"q": query}).text
        return set(re.findall(r'<tr class="model-row" data-model="([^"]+)"', page))

    assert found("") == {MODEL, OTHER}
    assert found("nunez") == {MODEL}  # the card's owner, accents folded
    assert found("PAYMENTS") == {OTHER}  # the registry description
    assert found(ENDPOINT) == {MODEL}
    assert found("gradient boosting") == {MODEL}  # card text
    assert found("onerror") == {OTHER}
    assert found("loan payments") == set()
    page = client.get("/", params={"q": "<b>x"}).text
    assert "<b>x" not in page and escape("<b>x") in page
    shown = dict(re.findall(r'<div class="tile[^"]*" data-risk="(\w+)"><span class="n">(\d+)</span>',
                            page))
    rows = json.loads((Path(console["uri"]) / "dashboard/models.json").read_text())["models"]
    expected = {risk: sum(1 for r in rows if r["risk_rating"] == risk and any(
        c["status"] == "Alarm" or c.get("alarm") for c in r["monitors"].values()))
        for risk in ("High", "Medium", "Low", "Unknown")}
    assert {k: int(v) for k, v in shown.items()} == expected


def test_metrics_follow_the_dashboard(console: dict) -> None:
    response = httpx.get(console["url"] + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    document = json.loads((Path(console["uri"]) / "dashboard/models.json").read_text())
    for row in document["models"]:
        for monitor_type, cell in row["monitors"].items():
            key = f'model="{row["model"]}",monitor_type="{monitor_type}"'
            assert samples[f'modelwatch_monitor_status{{{key},status="{cell["status"]}"}}'] == 1
            in_alarm = cell["status"] == "Alarm" or cell.get("alarm", False)
            assert samples[f"modelwatch_monitor_alarm{{{key}}}"] == float(in_alarm)
            if cell.get("last_violation_count") is not None:
                assert samples[f"modelwatch_monitor_last_violations{{{key}}}"] == \
                    cell["last_violation_count"]
    key = f'model="{MODEL}",monitor_type="data-quality"'
    violations = console["execution"]["violation_count"]
    assert violations > 0 and samples[f"modelwatch_monitor_last_violations{{{key}}}"] == violations


def test_violations_are_listed_and_card_text_is_escaped(console: dict) -> None:
    client = signed_in(console, "vera")
    page = client.get(f"/models/{MODEL}")
    violations = json.loads(Path(console["execution"]["outputs"]["constraint_violations.json"]
                                 ).read_text())["violations"]
    assert violations and all(escape(v["description"]) in page.text for v in violations)
    policy = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["form-action"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["script-src"].startswith("'sha256-")
    assert "unsafe" not in policy["script-src"] and " " not in policy["script-src"]
    other = client.get(f"/models/{OTHER}").text
    assert XSS not in other and "<img src=x" not in other and escape(XSS) in other
    scripts = re.findall(r"<script>(.*?)</script>", other, re.S)
    assert len(scripts) == 1 and "pwned" not in scripts[0]


def test_audit_export_and_page(console: dict) -> None:
    client = signed_in(console, "vera")
    entries = read_audit(console["store"])
    lines = client.get("/audit.jsonl").text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [e.id for e in entries]
    rows = list(csv.DictReader(io.StringIO(client.get(f"/models/{MODEL}/audit.csv").text)))
    assert [r["id"] for r in rows] == [e.id for e in entries if e.model == MODEL]
    page = client.get("/audit").text
    assert re.findall(r'<tr class="audit-row" data-action="([^"]+)"', page) == \
        [e.action for e in reversed(entries)]


def test_reports_are_served_sandboxed_and_nothing_else_from_the_store(console: dict) -> None:
    client = signed_in(console, "vera")
    key = f"monitoring/{MODEL}/data-quality/20261124T000000Z_20261125T000000Z/report.html"
    console["store"].write_text(key, "<!DOCTYPE html><title>report</title><p>drift</p>")
    report = client.get(f"/store/{key}")
    assert report.status_code == 200 and "<p>drift</p>" in report.text
    assert report.headers["content-security-policy"].startswith("sandbox allow-scripts;")
    assert client.get("/store/access/users/root.json").status_code == 404
    assert client.get("/store/monitoring/../access/users/root.json").status_code == 404
    assert client.get("/store/dashboard/models.json").status_code == 404


def test_single_sign_on_through_a_trusted_proxy_header(console: dict, tmp_path: Path) -> None:
    with serving(console["uri"], tmp_path / "proxy.log", "--auth", "proxy", "--proxy-header",
                 "X-Auth-User", api=console["api"]) as url:
        anonymous = httpx.get(url + "/", headers={"Accept": "text/html"})
        assert anonymous.status_code == 401 and "X-Auth-User" in anonymous.text
        assert httpx.get(url + "/", headers={"X-Auth-User": "stranger"}).status_code == 403
        client = httpx.Client(base_url=url, headers={"X-Auth-User": "eng"}, timeout=60)
        page = client.get(f"/models/{MODEL}")
        assert page.status_code == 200 and "signed in as <b>eng</b> (engineer)" in page.text
        assert "Sign out" not in page.text  # the proxy signs people out
        assert client.post(ACTIONS[0][0], data=ACTIONS[0][1]).status_code == 403  # CSRF still
        done = client.post(ACTIONS[0][0], data={"datapoints_to_alert": "1",
                                                "evaluation_period": "2",
                                                "csrf": csrf_of(page.text)})
        assert done.status_code == 303
        entry = read_audit(console["store"], model=MODEL)[-1]
        assert (entry.who, entry.role, entry.action, entry.after) == (
            "eng", "engineer", "alerts.set", {"datapoints_to_alert": 1, "evaluation_period": 2})
        # Another name on the same connection's cookie is another person, not this session.
        other = client.get(f"/models/{MODEL}", headers={"X-Auth-User": "vera"})
        assert "signed in as <b>vera</b> (viewer)" in other.text
        assert httpx.post(url + "/sign-in", data={"username": "eng", "password": PASSWORD}
                          ).status_code == 404


# ---- in a real browser ------------------------------------------------------------------------------

BROWSER_MODEL = "churn-browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    from tests.chromium import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("headless Chromium not found: install it with `apt-get install -y chromium`")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def browser_session(chromium: Any, console: dict, name: str) -> Any:
    page = chromium.new_context().new_page()
    page.set_default_timeout(30_000)
    page.goto(console["url"] + "/")
    assert page.url.startswith(console["url"] + "/sign-in")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_url(console["url"] + "/")
    assert f"signed in as {name}" in page.inner_text("#signed-in")
    return page


def test_in_chromium_sign_in_search_alert_and_schedule(console: dict, chromium: Any) -> None:
    from modelwatch.flows.prefect_api import monitor_schedules
    from modelwatch.tasks.alerts import read_alert

    page = browser_session(chromium, console, "eng")
    page.fill("#search", "núñez")
    page.click("#search-form button")
    assert page.eval_on_selector_all("tr.model-row", "rows => rows.map(r => r.dataset.model)") == [MODEL]
    page.click(f'tr.model-row[data-model="{MODEL}"] td.model a')
    page.wait_for_url(console["url"] + f"/models/{MODEL}")
    form = page.locator('.monitor-form[data-monitor="data-quality"]')
    form.locator("input[name=datapoints_to_alert]").fill("3")
    form.locator("input[name=evaluation_period]").fill("4")
    form.locator(".alert-form button").click()
    page.wait_for_selector("p.flash.done")
    assert "3 of the last 4" in page.inner_text('.monitor-form[data-monitor="data-quality"] .criteria')
    criteria = read_alert(console["store"], MODEL, "data-quality").criteria
    assert (criteria.datapoints_to_alert, criteria.evaluation_period) == (3, 4)
    page.locator('.monitor-form[data-monitor="data-quality"] .schedule-toggle button').click()
    page.wait_for_selector('.monitor-form[data-monitor="data-quality"] .schedule-state[data-active="false"]')
    assert not monitor_schedules(MODEL)[(MODEL, "data-quality")].active
    page.goto(console["url"] + "/")
    cell = page.locator(f'tr.model-row[data-model="{MODEL}"] td[data-monitor="data-quality"]')
    assert cell.get_attribute("data-state") == "Inactive"
    page.goto(console["url"] + f"/models/{MODEL}")
    page.locator('.monitor-form[data-monitor="data-quality"] .schedule-toggle button').click()
    page.wait_for_selector('.monitor-form[data-monitor="data-quality"] .schedule-state[data-active="true"]')
    assert monitor_schedules(MODEL)[(MODEL, "data-quality")].active


def test_in_chromium_a_card_is_submitted_refused_to_its_submitter_and_approved(
        console: dict, chromium: Any) -> None:
    run("models", "register", "--model", BROWSER_MODEL, "--problem-type", "binary", "--feature",
        "tenure:Integral", "--store", console["uri"])
    engineer = browser_session(chromium, console, "eng")
    engineer.goto(console["url"] + f"/models/{BROWSER_MODEL}")
    engineer.click("#edit-card")  # the card is created in the form
    engineer.fill('textarea[name="model_overview.model_description"]', "Churn scores for offers")
    engineer.select_option('select[name="intended_uses.risk_rating"]', "Medium")
    engineer.fill('textarea[name="evaluation_details"]', json.dumps([{"name": "holdout", "metric_groups": [
        {"name": "quality", "metric_data": [{"name": "auc", "type": "number", "value": 0.84}]}]}]))
    engineer.click("#save-card")
    engineer.wait_for_url(console["url"] + f"/models/{BROWSER_MODEL}/card/v1")
    assert get_card(console["store"], BROWSER_MODEL).content["intended_uses"] == {"risk_rating": "Medium"}
    engineer.goto(console["url"] + f"/models/{BROWSER_MODEL}")
    assert engineer.locator('#card-move button[data-move="Approved"]').count() == 0  # not theirs
    engineer.fill("#card-move input[name=note]", "ready for review")
    engineer.click('#card-move button[data-move="PendingReview"]')
    engineer.wait_for_selector('#review-status:has-text("PendingReview")')
    # An approver who sends it back and submits it again is its submitter: the Approve is refused.
    approver = browser_session(chromium, console, "apo")
    approver.goto(console["url"] + f"/models/{BROWSER_MODEL}")
    approver.click('#card-move button[data-move="Draft"]')
    approver.wait_for_selector('#review-status:has-text("Draft")')
    approver.click('#card-move button[data-move="PendingReview"]')
    approver.wait_for_selector('#review-status:has-text("PendingReview")')
    approver.click('#card-move button[data-move="Approved"]')
    assert "separation of duties" in approver.inner_text("#error-message")
    assert get_card(console["store"], BROWSER_MODEL).status == "PendingReview"
    other = browser_session(chromium, console, "apu")
    other.goto(console["url"] + f"/models/{BROWSER_MODEL}")
    other.click('#card-move button[data-move="Approved"]')
    other.wait_for_selector('#review-status:has-text("Approved")')
    card = get_card(console["store"], BROWSER_MODEL)
    assert card.status == "Approved" and card.status_history[-1].by == "apu"
    assert [(e.who, e.after["status"]) for e in read_audit(console["store"], model=BROWSER_MODEL)] == [
        ("eng", "Draft"), ("eng", "PendingReview"), ("apo", "Draft"), ("apo", "PendingReview"),
        ("apu", "Approved")]
    # The approved card exported as PDF from its page: the text is the card's.
    other.goto(console["url"] + f"/models/{BROWSER_MODEL}/card")
    with other.expect_download() as download:
        other.click("#export-pdf")
    path = download.value.path()
    assert download.value.suggested_filename == f"{BROWSER_MODEL}-card-v{card.card_version}.pdf"
    text = _pdf_text(Path(path).read_bytes())
    for expected in (f"Model card: {BROWSER_MODEL}", "Status Approved", "Risk rating Medium",
                     "Model description: Churn scores for offers", "auc number 0.84",
                     "PendingReview eng", "Approved apu"):
        assert expected in text, expected


def test_in_chromium_card_payloads_run_nothing(console: dict, chromium: Any) -> None:
    page = browser_session(chromium, console, "vera")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(console["url"] + f"/models/{OTHER}")
    page.wait_for_load_state("load")
    assert page.title() == f"modelwatch — {OTHER}" and dialogs == []
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("document.scripts.length") == 1  # the dashboard's own, allowed by its hash
    assert XSS in page.inner_text("body")  # shown as text
    page.goto(console["url"] + "/?q=" + "%3Cscript%3Edocument.title%3D%27q%27%3C%2Fscript%3E")
    assert page.title() == "modelwatch — model dashboard" and dialogs == []


def test_admins_manage_users_and_a_change_ends_that_users_sessions(console: dict) -> None:
    engineer = signed_in(console, "eng")
    assert engineer.get("/users", headers={"Accept": "text/html"}).status_code == 403
    assert post(engineer, "/users", {"name": "newbie", "role": "admin", "password": PASSWORD},
                page="/").status_code == 403
    admin = signed_in(console, "root")
    page = admin.get("/users").text
    assert set(re.findall(r'<tr class="user-row" data-user="([^"]+)"', page)) >= set(USERS)
    assert "scrypt" not in page
    added = post(admin, "/users", {"name": "newbie", "role": "engineer", "password": PASSWORD},
                 page="/users")
    assert added.status_code == 303
    newbie = signed_in(console, "newbie")
    assert "(engineer)" in newbie.get("/").text
    assert post(admin, "/users/newbie", {"action": "set-role", "role": "viewer"},
                page="/users").status_code == 303
    assert newbie.get("/", headers={"Accept": "text/html"}).status_code == 303  # signed out
    assert "(viewer)" in signed_in(console, "newbie").get("/").text
    last = post(admin, "/users/root", {"action": "disable"}, page="/users")
    assert last.status_code == 400 and "last enabled admin" in last.text
    assert post(admin, "/users/newbie", {"action": "remove"}, page="/users").status_code == 303
    entries = [(e.who, e.via, e.action, e.target) for e in read_audit(console["store"])
               if e.action.startswith("users.")]
    assert entries == [("root", "console", "users.add", "newbie"),
                       ("root", "console", "users.set-role", "newbie"),
                       ("root", "console", "users.remove", "newbie")]


FORM_MODEL, CLONE_TARGET = "card-form", "card-clone-target"


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages).split())


def test_card_form_creates_edits_with_a_diff_clones_archives_and_exports(console: dict) -> None:
    from modelwatch.tasks.card_form import FIELDS
    from modelwatch.tasks.cards import card_versions

    for name in (FORM_MODEL, CLONE_TARGET):
        run("models", "register", "--model", name, "--problem-type", "binary", "--feature",
            "tenure:Integral", "--version", "7", "--store", console["uri"])
    engineer, viewer = signed_in(console, "eng"), signed_in(console, "vera")
    assert engineer.get(f"/models/{FORM_MODEL}/card").headers["location"] == \
        f"/models/{FORM_MODEL}/card/edit"
    form_path = f"/models/{FORM_MODEL}/card/edit"
    page = engineer.get(form_path).text
    assert set(re.findall(r'name="([a-z_.]+)"', page)) >= {f.name for f in FIELDS} | {"model_version"}
    assert viewer.get(form_path, headers={"Accept": "text/html"}).status_code == 403

    evaluation = [{"name": "holdout", "metric_groups": [{"name": "quality", "metric_data": [
        {"name": "auc", "type": "number", "value": 0.87}]}]}]
    typed = {"model_overview.model_description": "Churn <b>risk</b>\r\nsecond line",
             "model_overview.model_owner": "retention", "model_overview.model_id": "churn-7",
             "model_overview.model_artifact": "s3://m/a.tar.gz\r\n\r\n s3://m/b.tar.gz ",
             "intended_uses.risk_rating": "Medium", "business_details.line_of_business": "Telecom",
             "evaluation_details": json.dumps(evaluation),
             "additional_information.custom_details": '{"reviewer": "model-risk"}',
             "model_version": "7", "note": "first draft"}
    # A broken JSON field: refused with its name, nothing written, everything typed kept.
    broken = post(engineer, f"/models/{FORM_MODEL}/card", {**typed, "evaluation_details": "[{"},
                  page=form_path)
    assert broken.status_code == 400
    assert "Not saved: evaluation_details: not valid JSON" in broken.text
    assert escape("Churn <b>risk</b>", quote=False) in broken.text and "[{</textarea>" in broken.text
    assert card_versions(console["store"], FORM_MODEL) == []
    assert post(viewer, f"/models/{FORM_MODEL}/card", typed, page="/").status_code == 403

    created = post(engineer, f"/models/{FORM_MODEL}/card", typed, page=form_path)
    assert created.status_code == 303 and created.headers["location"] == f"/models/{FORM_MODEL}/card/v1"
    card = get_card(console["store"], FORM_MODEL)
    assert (card.card_version, card.status, card.created_by, card.model_version) == (1, "Draft", "eng", "7")
    assert card.content == {
        "model_overview": {"model_description": "Churn <b>risk</b>\nsecond line",
                           "model_owner": "retention", "model_id": "churn-7",
                           "model_artifact": ["s3://m/a.tar.gz", "s3://m/b.tar.gz"],
                           "model_version": "7", "model_name": FORM_MODEL},
        "intended_uses": {"risk_rating": "Medium"}, "business_details": {"line_of_business": "Telecom"},
        "evaluation_details": evaluation,
        "additional_information": {"custom_details": {"reviewer": "model-risk"}}}

    # The form shows the card as stored; saving it changed writes v2 and lists exactly what changed.
    page = engineer.get(form_path).text
    assert "s3://m/a.tar.gz\ns3://m/b.tar.gz</textarea>" in page
    assert '<option value="Medium" selected>' in page
    edited = {**typed, "model_overview.model_name": FORM_MODEL,  # as the form holds it
              "model_overview.model_owner": "", "intended_uses.risk_rating": "High",
              "evaluation_details": json.dumps([{**evaluation[0], "metric_groups": [{"name": "quality",
                  "metric_data": [{"name": "auc", "type": "number", "value": 0.91}]}]}]),
              "note": "new holdout"}
    assert post(engineer, f"/models/{FORM_MODEL}/card", edited, page=form_path).headers["location"] \
        == f"/models/{FORM_MODEL}/card/v2"
    assert get_card(console["store"], FORM_MODEL, 1).content == card.content  # v1 never rewritten
    page = engineer.get(f"/models/{FORM_MODEL}/card/v2").text
    rows = re.findall(r'<tr class="change (\w+)" data-path="([^"]+)">', page)
    assert rows == [("changed", "evaluation_details[0].metric_groups[0].metric_data[0].value"),
                    ("changed", "intended_uses.risk_rating"), ("removed", "model_overview.model_owner")]
    assert "Changes from v1" in page and 'id="no-previous"' in engineer.get(
        f"/models/{FORM_MODEL}/card/v1").text
    update = [e for e in read_audit(console["store"], model=FORM_MODEL) if e.action == "card.update"]
    assert [(e.who, e.after["changed"], e.note) for e in update] == [("eng", [r[1] for r in rows],
                                                                      "new holdout")]
    # The same content again writes nothing, and says only that.
    same = post(engineer, f"/models/{FORM_MODEL}/card", edited, page=form_path)
    assert len(card_versions(console["store"], FORM_MODEL)) == 2
    flashes = re.findall(r'<p class="flash done" role="status">([^<]*)</p>',
                         engineer.get(same.headers["location"]).text)
    assert flashes == ["card v2 already has this content; nothing saved"]

    # Exports of a version: PDF (its text read back), HTML under its own policy, Markdown.
    pdf = engineer.get(f"/models/{FORM_MODEL}/card/v2.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    text = _pdf_text(pdf.content)
    assert "Model card: card-form" in text and "Risk rating High" in text and "auc number 0.91" in text
    html = engineer.get(f"/models/{FORM_MODEL}/card/v1.html")
    assert html.headers["content-security-policy"].startswith("default-src 'none'")
    assert "Churn &lt;b&gt;risk&lt;/b&gt;" in html.text
    assert engineer.get(f"/models/{FORM_MODEL}/card/v2.md").text.startswith("# Model card: card-form")
    assert engineer.get(f"/models/{FORM_MODEL}/card/v9.pdf").status_code == 404

    # Clone to another model: a Draft card there, without what named the source model.
    cloned = post(engineer, f"/models/{FORM_MODEL}/card/clone", {"to": CLONE_TARGET},
                  page=f"/models/{FORM_MODEL}/card")
    assert cloned.headers["location"] == f"/models/{CLONE_TARGET}/card/v1"
    copy = get_card(console["store"], CLONE_TARGET)
    source = get_card(console["store"], FORM_MODEL)
    assert copy.status == "Draft" and copy.created_by == "eng"
    assert copy.content["model_overview"] == {
        k: v for k, v in source.content["model_overview"].items()
        if k not in ("model_name", "model_id", "model_version")} | {"model_name": CLONE_TARGET,
                                                                   "model_version": "7"}
    assert {k: v for k, v in copy.content.items() if k != "model_overview"} == \
        {k: v for k, v in source.content.items() if k != "model_overview"}
    assert copy.status_history[-1].note == "cloned from card-form card v2"
    again = post(engineer, f"/models/{FORM_MODEL}/card/clone", {"to": CLONE_TARGET},
                 page=f"/models/{FORM_MODEL}/card")
    assert again.status_code == 400 and "already has a card" in again.text

    # Archive: the card cannot change any more; the form then creates a new card from its content.
    assert post(engineer, f"/models/{FORM_MODEL}/card/status", {"to": "Archived"}).status_code == 303
    page = engineer.get(form_path).text
    assert "New model card for card-form" in page and "The Archived card v3" in page
    assert post(engineer, f"/models/{FORM_MODEL}/card", {**edited, "note": ""}, page=form_path
                ).headers["location"] == f"/models/{FORM_MODEL}/card/v4"
    assert get_card(console["store"], FORM_MODEL).status == "Draft"
    actions = [(e.action, e.target) for e in read_audit(console["store"], model=FORM_MODEL)]
    assert actions == [("card.create", "card v1"), ("card.update", "card v2"),
                       ("card.status", "card v3"), ("card.create", "card v4")]
