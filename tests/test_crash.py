"""`kill -9` at several points of an execution and of a merge (the CLI in a child process, killed as
soon as the store shows it reached that point). Afterwards the store must be consistent: no index
entry without its execution, the interrupted run visible as Failed and marked Crashed in Prefect, no
merge taken for finished, and a re-run giving what an uninterrupted run gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from modelwatch.flows.demo_data import LABEL, generate_demo
from modelwatch.tasks.executions import execution_prefix, read_index
from modelwatch.tasks.registry import (
    EndpointRecord,
    ModelRecord,
    ModelVersion,
    register_endpoint,
    register_model,
)
from modelwatch.tasks.store import TEMP_SUFFIX, Store
from modelwatch.tasks.windows import iso_z
from tests.cli_run import invoke, run

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "credit-default"
ENDPOINT = "credit-default-prod"
HEARTBEAT = 0.5  # seconds; a run is taken for dead after ten missed beats


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo"), rows_per_hour=12, training_rows=2_000)


@pytest.fixture
def store(case, tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "store"))
    run("baseline", "suggest", "--model", MODEL, "--dataset", str(case.training_csv), "--label",
        LABEL, "--store", store.root)
    register_model(store, ModelRecord(name=MODEL, problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name=ENDPOINT, model=MODEL, model_version="1",
                                            capture_uri=str(case.capture_root)))
    run("groundtruth", "upload", "--endpoint", ENDPOINT, "--file", str(case.labels_csv),
        "--id-column", "event_id", "--label-column", LABEL, "--labelled-at-column", "labelled_at",
        "--store", store.root)
    return store


def _environment() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "MODELWATCH_HEARTBEAT_SECONDS": str(HEARTBEAT)}


def kill_when(args: list[str], reached: Callable[[], bool], timeout: float = 180) -> None:
    """Run the CLI in a child process and SIGKILL it the moment `reached()` says so."""
    child = subprocess.Popen([sys.executable, "-m", "modelwatch.cli", *args], env=_environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not reached():
            if child.poll() is not None:
                raise AssertionError(f"the run ended ({child.returncode}) before the point: "
                                     f"{child.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "the point was never reached"
            time.sleep(0.01)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
        child.stderr.close()


def monitor_args(store: Store, case) -> list[str]:
    start, end = case.days[1]
    return ["monitor", "run", "--model", MODEL, "--capture", str(case.capture_root), "--start",
            iso_z(start), "--end", iso_z(end), "--store", store.root]


def flow_run_state(run_id: str) -> str:
    from uuid import UUID

    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id)).state.type.value


@pytest.mark.parametrize("point", ["attempt.json", "statistics.json", "quarantine.jsonl"])
def test_an_execution_killed_midway_is_settled_and_rerun(store: Store, case, point: str) -> None:
    start, end = case.days[1]
    prefix = execution_prefix(MODEL, "data-quality", start, end)
    kill_when(monitor_args(store, case), lambda: store.exists(f"{prefix}/{point}"))
    [entry] = read_index(store, MODEL, "data-quality").executions
    finished = store.exists(f"{prefix}/execution.json")  # killed just after the last write: a race
    assert entry.execution_uri is None or finished
    if not finished:
        assert entry.status == "Running"

    time.sleep(HEARTBEAT * 12)  # its heartbeat has stopped for longer than the allowance
    summary = run("dashboard", "--refresh", "--json", "--store", store.root)
    assert summary["models"][0]["model"] == MODEL
    [entry] = read_index(store, MODEL, "data-quality").executions
    if finished:  # the outcome was written: the index takes it, whatever the kill interrupted
        assert entry.status == store.read_json(f"{prefix}/execution.json")["status"]
    else:
        assert entry.status == "Failed" and "interrupted" in entry.failure_reason
        assert flow_run_state(entry.flow_run_id) == "CRASHED"

    again = run(*monitor_args(store, case))
    assert again["status"] == "CompletedWithViolations"
    [entry] = read_index(store, MODEL, "data-quality").executions
    assert entry.status == again["status"] and store.exists(f"{prefix}/execution.json")
    assert not store.exists(f"{prefix}/attempt.json")


def test_a_merge_killed_midway_is_never_taken_for_finished(store: Store, case, tmp_path: Path) -> None:
    day = case.days[0]
    merge = ["groundtruth", "merge", "--endpoint", ENDPOINT, "--start", iso_z(day[0]), "--end",
             iso_z(day[1]), "--lookback", "P1D", "--store", store.root]
    folder = Path(store.path(f"merged/{ENDPOINT}"))
    kill_when(merge, lambda: any(folder.glob("2026/*/*/*/part-00000*.jsonl")))
    reports = Path(store.path(f"merged/{ENDPOINT}/reports"))
    # A write the kill cut short leaves a temporary file (swept later, read by nobody): not data.
    assert [p.name.endswith(".running.json") for p in reports.iterdir()
            if not TEMP_SUFFIX.search(p.name)] == [True]

    run("baseline", "suggest", "--model", MODEL, "--type", "model-quality", "--dataset",
        str(case.validation_csv), "--label", LABEL, "--probability", "score", "--store", store.root)
    code, out = invoke("monitor", "run", "--model", MODEL, "--type", "model-quality", "--start",
                        iso_z(day[0]), "--end", iso_z(day[1]), "--store", store.root)
    assert code == 1 and "did not finish" in json.loads(out)["failure_reason"]

    report = run(*merge)
    assert not any(p.name.endswith(".running.json") for p in reports.iterdir())
    merged = {p.relative_to(folder): p.read_bytes() for p in sorted(folder.glob("2026/*/*/*/*"))
              if not TEMP_SUFFIX.search(p.name)}
    clean = Store(str(tmp_path / "clean"))
    register_model(clean, ModelRecord(name=MODEL, problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(clean, EndpointRecord(name=ENDPOINT, model=MODEL, model_version="1",
                                            capture_uri=str(case.capture_root)))
    for label_file in Path(store.path(f"groundtruth/{ENDPOINT}")).rglob("*.jsonl"):
        clean.write_bytes(str(label_file.relative_to(store.base)), label_file.read_bytes())
    expected = run(*merge[:-1], clean.root)
    clean_folder = Path(clean.path(f"merged/{ENDPOINT}"))
    assert merged == {p.relative_to(clean_folder): p.read_bytes()
                      for p in sorted(clean_folder.glob("2026/*/*/*/*"))}
    assert report["captures_matched"] == expected["captures_matched"] > 0

