"""A user's own monitor type, from a package under tests/plugins installed for this module (its
``modelwatch.monitors`` entry point is all that registers it): baselined and run through the CLI,
scheduled and run by `modelwatch serve`, alerted on, and shown as its own dashboard column. Its
numbers are checked against the same statistics computed here with numpy."""

from __future__ import annotations

import contextlib
import importlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelwatch.flows import monitor_types
from modelwatch.flows.child_processes import stop_child
from modelwatch.flows.demo_data import capture_file_name, capture_hour_dir
from modelwatch.tasks.capture_records import capture_line, capture_record
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import iso_z
from tests.cli_run import invoke, run
from tests.prefect_server import server_env
from tests.report_pages import read_report

pytestmark = pytest.mark.usefixtures("prefect_api")
REPO = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).parent / "plugins" / "text_monitor"
UV = REPO / ".tools" / "bin" / "uv"
MODEL, ENDPOINT, TYPE = "reviews", "reviews-live", "text-drift"
DAY1 = datetime(2026, 3, 1, tzinfo=UTC)
COMMON = [f"w{i}" for i in range(40)]
NEW = [f"n{i}" for i in range(40)]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The plugin package installed (with its entry point) into a folder on sys.path."""
    target = tmp_path_factory.mktemp("plugin-site")
    subprocess.run([str(UV), "pip", "install", "-q", "--no-deps", "--python", sys.executable,
                    "--target", str(target), str(PLUGIN)], check=True, timeout=300)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    assert TYPE in monitor_types.reload(), monitor_types.load_problems()
    yield target
    sys.path.remove(str(target))
    sys.modules.pop("modelwatch_text_monitor", None)
    monitor_types.reload()


def _texts(rng: np.random.Generator, n: int, mean_words: float, new_share: float) -> list[str]:
    weights = 1.0 / np.arange(1, len(COMMON) + 1)
    weights /= weights.sum()
    texts = []
    for _ in range(n):
        count = 1 + rng.poisson(mean_words)
        words = [str(rng.choice(NEW)) if rng.random() < new_share else str(rng.choice(COMMON, p=weights))
                 for _ in range(count)]
        texts.append(" ".join(words))
    return texts


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Training reviews, and two days of capture: day 1 like training, day 2 longer texts with a
    third of their words new."""
    root = tmp_path_factory.mktemp("text-case")
    rng = np.random.default_rng(11)
    train = pd.DataFrame({"review": _texts(rng, 800, 8, 0.0), "stars": rng.integers(1, 6, 800),
                          "liked": rng.integers(0, 2, 800)})
    train.to_csv(root / "train.csv", index=False)
    store = root / "store"
    capture = store / "capture" / ENDPOINT
    days = {}
    for day, (mean_words, new_share) in enumerate([(8, 0.0), (16, 0.35)]):
        start = DAY1 + timedelta(days=day)
        texts = _texts(rng, 300, mean_words, new_share)
        for hour in range(3):
            t = start + timedelta(hours=hour, minutes=5)
            folder = capture_hour_dir(capture, t)
            folder.mkdir(parents=True, exist_ok=True)
            lines = [capture_line(capture_record(f"{text},{int(rng.integers(1, 6))}", "0.5",
                                                 encoding="CSV", event_id=f"d{day}-h{hour}-{i}",
                                                 inference_time=t + timedelta(seconds=i)))
                     for i, text in enumerate(texts[hour * 100:(hour + 1) * 100])]
            (folder / capture_file_name(t, 0, f"f{day}{hour}")).write_text("\n".join(lines) + "\n")
        days[day] = (start, start + timedelta(days=1), texts)
    return {"root": root, "train": train, "store": str(store), "capture": str(capture), "days": days}


def _shares(texts: list[str], vocabulary: list[str]) -> dict[str, float]:
    counts = Counter(w for t in texts for w in t.lower().split())
    total = sum(counts.values())
    shares = {w: counts[w] / total for w in vocabulary}
    return shares | {"<other>": 1 - sum(shares.values())}


def _expected(train: pd.DataFrame, texts: list[str]) -> dict[str, float]:
    """The window's statistics, computed independently of the plugin."""
    base_lengths = np.array([len(t.split()) for t in train["review"]], dtype=float)
    lengths = np.array([len(t.split()) for t in texts], dtype=float)
    vocabulary = [w for w, _ in Counter(w for t in train["review"] for w in t.split()).most_common(50)]
    before, now = _shares(list(train["review"]), vocabulary), _shares(texts, vocabulary)
    return {"length_mean": lengths.mean(),
            "length_shift": abs(lengths.mean() - base_lengths.mean()) / base_lengths.std(),
            "vocabulary_distance": 0.5 * sum(abs(now[w] - before[w]) for w in now)}


def _window(case: dict, day: int) -> list[str]:
    start, end, _ = case["days"][day]
    return ["--start", iso_z(start), "--end", iso_z(end)]


def test_a_registered_type_is_baselined_run_and_alerted_through_the_cli(plugin: Path,
                                                                        case: dict) -> None:
    store, train = case["store"], case["train"]
    code, out = invoke("baseline", "suggest", "--help")
    assert code == 0 and "--text-column" in out and "text-drift options" in out
    code, _ = invoke("baseline", "suggest", "--model", MODEL, "--type", TYPE, "--dataset",
                     str(case["root"] / "train.csv"), "--text-column", "review", "--facet", "x",
                     "--store", store)
    assert code == 2  # --facet is bias-drift's, not text-drift's: refused, not ignored
    code, _ = invoke("baseline", "suggest", "--model", MODEL, "--type", TYPE, "--dataset",
                     str(case["root"] / "train.csv"), "--text-column", "reveiw", "--store", store)
    assert code == 2
    run("models", "register", "--model", MODEL, "--problem-type", "binary", "--features-from",
        str(case["root"] / "train.csv"), "--label", "liked", "--store", store)
    run("endpoints", "register", "--endpoint", ENDPOINT, "--model", MODEL, "--model-version", "1",
        "--store", store)
    uris = run("baseline", "suggest", "--model", MODEL, "--type", TYPE, "--dataset",
               str(case["root"] / "train.csv"), "--label", "liked", "--text-column", "review",
               "--store", store)
    statistics = json.loads(Path(uris["statistics"]).read_text())
    lengths = np.array([len(t.split()) for t in train["review"]], dtype=float)
    assert statistics["length_mean"] == pytest.approx(lengths.mean(), abs=1e-12)
    assert statistics["length_std"] == pytest.approx(lengths.std(), abs=1e-12)

    clean = run("monitor", "run", "--model", MODEL, "--type", TYPE, *_window(case, 0),
                "--store", store)
    expected = _expected(train, case["days"][0][2])
    assert clean["status"] == "Completed", clean
    assert clean["rows_profiled"] == 300 and clean["records_read"] == 300
    assert clean["metric"] == pytest.approx(expected["vocabulary_distance"], abs=1e-12)
    assert clean["metric_name"] == "vocabulary distance"

    drifted = run("monitor", "run", "--model", MODEL, "--type", TYPE, *_window(case, 1),
                  "--capture", case["capture"], "--store", store)
    expected = _expected(train, case["days"][1][2])
    assert drifted["status"] == "CompletedWithViolations", drifted
    assert drifted["violation_types"] == {"text_length_check": 1, "vocabulary_drift_check": 1}
    found = json.loads(Path(drifted["outputs"]["statistics.json"]).read_text())
    assert {c["check"] for c in read_report(drifted).checks} == {"text_length_check",
                                                               "vocabulary_drift_check"}
    for key, value in expected.items():
        assert found[key] == pytest.approx(value, abs=1e-12), key
    alert = run("alerts", "show", "--model", MODEL, "--type", TYPE, "--store", store)
    assert alert["state"] == "ALARM"
    code, _ = invoke("monitor", "run", "--model", MODEL, "--type", TYPE, *_window(case, 1),
                     "--merged", case["capture"], "--store", store)
    assert code == 2  # text-drift reads capture


def _flow_run_state(flow_run_id: str) -> tuple[str | None, str | None]:
    """(state type, state name) of a flow run."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
    return (state.type.value, state.name) if state else (None, None)


def test_a_registered_type_is_scheduled_served_and_shown_as_its_own_column(
        plugin: Path, case: dict, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    store = case["store"]
    if not Store(store).exists(f"baselines/{MODEL}/1/{TYPE}/constraints.json"):
        pytest.skip("needs the baseline of the CLI test before it")
    created = run("monitor", "schedule", "create", "--model", MODEL, "--type", TYPE,
                  "--cron", "0 0 1 1 *", "--store", store)
    assert created["parameters"]["monitor_type"] == TYPE
    env = server_env(tmp_path / "serve-home", PREFECT_API_URL.value())
    env["PYTHONPATH"] = f"{plugin}:{env['PYTHONPATH']}" if env.get("PYTHONPATH") else str(plugin)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen([sys.executable, "-m", "modelwatch.cli", "serve", "--store", store,
                                  "--summary-cron", "0 0 1 1 *"], env=env, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        flow_run = run_deployment(f"scheduled-monitor/{created['deployment'].split('/')[1]}",
                                  parameters={"window_end": case["days"][1][1].isoformat()},
                                  timeout=0)
        deadline, state, name = time.monotonic() + 300, None, None
        while time.monotonic() < deadline:
            state, name = _flow_run_state(str(flow_run.id))
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") or serve.poll() is not None:
                break
            time.sleep(1)
        assert state == "COMPLETED", f"{state}: {log.read_text()[-4000:]}"
        assert name == "CompletedWithViolations"  # the scheduled run carries its execution's verdict
    finally:
        stop_child(serve, signal.SIGTERM, 15.0, group=True)
        with contextlib.suppress(Exception):
            log.unlink()
    the_store = Store(store)
    dashboard = the_store.read_json("dashboard/models.json")
    assert [c["name"] for c in dashboard["columns"]][-1] == TYPE
    row = next(r for r in dashboard["models"] if r["model"] == MODEL)
    assert row["monitors"][TYPE]["status"] == "Alarm"
    assert row["monitors"][TYPE]["last_violation_count"] == 2
    index = the_store.read_bytes("dashboard/index.html").decode()
    assert 'data-key="text-drift"' in index and ">Text drift<" in index
    page = the_store.read_bytes(f"dashboard/models/{MODEL}.html").decode()
    assert "vocabulary distance, higher is worse, threshold 0.2" in page
