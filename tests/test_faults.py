"""Faults of the store, injected by a proxy in front of the S3 test server (tests/s3faults.py): a share
of requests answered 500/503, dropped or delayed, and every request of one kind failing. After each,
the store must be consistent: no index entry without its execution, no run reported as an earlier
one's success, merged files the same as without faults, and a permanent failure given up in bounded
time with a message that says so."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from modelwatch.flows.demo_data import LABEL, generate_demo
from modelwatch.tasks.alerts import read_alert
from modelwatch.tasks.executions import read_index
from modelwatch.tasks.registry import (
    EndpointRecord,
    ModelRecord,
    ModelVersion,
    register_endpoint,
    register_model,
)
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import iso_z
from tests.cli_run import invoke, run
from tests.s3faults import Faults, fail_when, faulty_proxy

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "credit-default"
ENDPOINT = "credit-default-prod"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return generate_demo(tmp_path_factory.mktemp("demo"), rows_per_hour=12, training_rows=2_000)


@contextlib.contextmanager
def bucket_with(case, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Faults]]:
    """A fresh bucket holding the demo's capture and a baseline, and the proxy (no faults yet) that
    every S3 request of the test goes through."""
    name = f"faults-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    root = f"s3://{name}/modelwatch"
    store = Store(root)
    for path in sorted(Path(case.capture_root).rglob("*.jsonl")):
        store.write_bytes(f"capture/{path.relative_to(case.capture_root)}", path.read_bytes())
    run("baseline", "suggest", "--model", MODEL, "--dataset", str(case.training_csv), "--label",
        LABEL, "--store", root)
    register_model(store, ModelRecord(name=MODEL, problem_type="binary",
                                      versions=[ModelVersion(version="1")]))
    register_endpoint(store, EndpointRecord(name=ENDPOINT, model=MODEL, model_version="1",
                                            capture_uri=f"{root}/capture"))
    run("groundtruth", "upload", "--endpoint", ENDPOINT, "--file", str(case.labels_csv),
        "--id-column", "event_id", "--label-column", LABEL, "--labelled-at-column", "labelled_at",
        "--store", root)
    faults = Faults(seed=11)
    with faulty_proxy(s3_endpoint, faults) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy)
        yield root, faults
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)


def monitor(root: str, window) -> tuple[int, dict]:
    code, out = invoke("monitor", "run", "--model", MODEL, "--capture", f"{root}/capture",
                       "--start", iso_z(window[0]), "--end", iso_z(window[1]), "--store", root)
    return code, json.loads(out) if out.strip() else {}


def assert_consistent(root: str) -> None:
    """Every index entry links only a document that exists; the alert's latest execution is the
    index's newest window; nothing is left Running once the runs are over."""
    store = Store(root)
    index = read_index(store, MODEL, "data-quality")
    for entry in index.executions:
        if entry.execution_uri is not None:
            assert store.exists(entry.execution_uri[len(root) + 1:]), entry
            document = store.read_json(entry.execution_uri[len(root) + 1:])
            assert document["status"] == entry.status and document["flow_run_id"] == entry.flow_run_id
        assert entry.status != "Running", entry
    alert = read_alert(store, MODEL, "data-quality")
    if index.executions:
        assert alert.last_execution == index.executions[-1]


def merge(root: str, window) -> dict:
    return run("groundtruth", "merge", "--endpoint", ENDPOINT, "--start", iso_z(window[0]),
               "--end", iso_z(window[1]), "--lookback", "P1D", "--store", root)


def merged_bytes(root: str) -> dict[str, bytes]:
    store = Store(root)
    fs = store.fs
    found = fs.find(store.path(f"merged/{ENDPOINT}"))
    return {path[len(store.base) + 1:]: fs.cat_file(path) for path in sorted(found)
            if "/reports/" not in path}


def test_a_share_of_faults_is_absorbed_with_the_same_results(case, s3_endpoint, monkeypatch) -> None:
    window = case.days[1]
    # Six hours of merge are enough to meet faults on every kind of request, and cost a quarter.
    hours = (case.days[0][0] + timedelta(hours=12), case.days[0][0] + timedelta(hours=18))
    with bucket_with(case, s3_endpoint, monkeypatch) as (clean, _):
        expected, expected_merge = monitor(clean, window), merge(clean, hours)
        expected_files = merged_bytes(clean)
    with bucket_with(case, s3_endpoint, monkeypatch) as (root, faults):
        faults.error_share, faults.drop_share = 0.15, 0.03
        faults.delay_share, faults.delay_seconds = 0.02, 0.3
        code, document = monitor(root, window)
        report = merge(root, hours)
        faults.clear()
        assert sum(1 for _, _, status in faults.seen if status in (0, 500, 503)) > 20
        assert code == expected[0] == 0 and expected[1]["status"] == "CompletedWithViolations"
        for name in ("status", "violation_types", "rows_profiled", "records_malformed"):
            assert document[name] == expected[1][name]
        ours = Store(root).read_bytes(document["outputs"]["statistics.json"][len(root) + 1:])
        theirs = Store(clean).read_bytes(expected[1]["outputs"]["statistics.json"][len(clean) + 1:])
        assert ours == theirs
        assert_consistent(root)
        # The merge: the same counts, and merged files byte for byte (no label lost or doubled).
        names = ("captures_matched", "labels_read", "labels_matched", "labels_duplicate")
        assert {n: report[n] for n in names} == {n: expected_merge[n] for n in names}
        assert report["captures_matched"] > 0
        assert merged_bytes(root) == expected_files


def test_a_failing_final_write_leaves_a_failed_entry_never_the_old_success(case, s3_endpoint,
                                                                         monkeypatch) -> None:
    with bucket_with(case, s3_endpoint, monkeypatch) as (root, faults):
        code, first = monitor(root, case.days[1])
        assert code == 0 and first["status"] == "CompletedWithViolations"
        assert read_alert(Store(root), MODEL, "data-quality").state == "ALARM"
        # Every write of an execution.json refused (a bucket policy, say): no retry helps.
        faults.rules.append(fail_when("PUT", "/execution.json", 403))
        code, second = monitor(root, case.days[1])
        faults.clear()
        assert code == 1
        assert second["status"] == "Failed" and second["flow_run_id"] != first["flow_run_id"]
        [entry] = read_index(Store(root), MODEL, "data-quality").executions
        assert entry.status == "Failed" and entry.execution_uri is None
        assert "execution.json could not be written" in entry.failure_reason
        assert entry.flow_run_id == second["flow_run_id"]
        assert_consistent(root)


def test_a_failed_withdrawal_is_reported_as_this_runs_failure(case, s3_endpoint,
                                                              monkeypatch) -> None:
    with bucket_with(case, s3_endpoint, monkeypatch) as (root, faults):
        code, first = monitor(root, case.days[0])
        assert code == 0
        faults.rules.append(fail_when("DELETE", "/execution.json", 403))
        faults.rules.append(fail_when("POST", "delete", 403))  # batch deletes, if the client uses them
        code, second = monitor(root, case.days[0])
        faults.clear()
        assert code == 1 and second["status"] == "Failed"
        assert second.get("flow_run_id") != first["flow_run_id"]
        assert_consistent(root)


def test_a_permanent_store_failure_gives_up_in_bounded_time_and_says_so(case, s3_endpoint,
                                                                         monkeypatch, capsys) -> None:
    with bucket_with(case, s3_endpoint, monkeypatch) as (root, faults):
        faults.error_share = 1.0
        began = time.monotonic()
        code, stdout = invoke("monitor", "run", "--model", MODEL, "--capture", f"{root}/capture",
                              "--start", iso_z(case.days[0][0]), "--end", iso_z(case.days[0][1]),
                              "--store", root)
        took = time.monotonic() - began
        faults.clear()
        assert code == 1 and stdout == ""
        assert took < 120, took
        said = capsys.readouterr().err
        assert "could not be reached after" in said or "failed after" in said
