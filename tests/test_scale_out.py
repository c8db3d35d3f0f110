"""Scale-out on a real Dask cluster: `dask scheduler` and `dask worker` (two worker processes) on
127.0.0.1, the store on the S3 test server. A data-quality execution and a ground-truth merge run on
the cluster write what the same runs write locally, byte for byte, and their partitions ran on the
cluster's workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelwatch.flows.child_processes import die_with_parent, free_port, stop_child
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import iso_z
from tests.cli_run import invoke, run

ROOT = Path(__file__).resolve().parent.parent
MODEL, ENDPOINT = "credit-default", "credit-default-prod"
START = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefect_api: str, s3_endpoint: str
            ) -> Iterator[str]:
    """A Dask scheduler and two single-threaded worker processes, started with distributed's own
    commands; the workers see the same Prefect API and S3 endpoint as the test."""
    from distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    procs = []
    with open(logs / "scheduler.log", "wb") as out:
        procs.append(subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent))
    with open(logs / "workers.log", "wb") as out:
        procs.append(subprocess.Popen(
            [dask, "worker", address, "--host", "127.0.0.1", "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard", "--memory-limit", "2GiB"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent))
    try:
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for proc in reversed(procs):
            stop_child(proc, grace=20)


def task_prefixes(address: str) -> set[str]:
    """The kinds of task the scheduler has run (the Prefect tasks' function names)."""
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))


def snapshot(store: Store, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under a prefix (all folder levels), by key."""
    found = {key: store.read_bytes(key) for key in store.list(prefix) if not key.endswith(skip)}
    for name in store.list_dirs(prefix):
        found.update(snapshot(store, f"{prefix}/{name}", skip))
    return found


def test_a_data_quality_execution_and_a_merge_on_the_cluster_equal_the_local_runs(
        cluster: str, s3_bucket: str, tmp_path: Path) -> None:
    from modelwatch.flows.demo_data import LABEL, generate_demo
    from modelwatch.tasks.executions import execution_prefix

    store = Store(s3_bucket)
    case = generate_demo(tmp_path / "demo", start=START, rows_per_hour=20, training_rows=1_500,
                         validation_rows=100)
    for path in sorted(Path(case.capture_root).rglob("*.jsonl")):
        store.write_bytes(f"capture/{ENDPOINT}/{path.relative_to(case.capture_root)}", path.read_bytes())
    run("models", "register", "--model", MODEL, "--problem-type", "binary", "--features-from",
        str(case.training_csv), "--label", LABEL, "--store", s3_bucket)
    run("endpoints", "register", "--endpoint", ENDPOINT, "--model", MODEL, "--model-version", "1",
        "--store", s3_bucket)
    run("baseline", "suggest", "--model", MODEL, "--dataset", str(case.training_csv), "--label",
        LABEL, "--store", s3_bucket)
    run("groundtruth", "upload", "--endpoint", ENDPOINT, "--file", str(case.labels_csv),
        "--id-column", "event_id", "--label-column", LABEL, "--labelled-at-column", "labelled_at",
        "--store", s3_bucket)
    start, end = case.days[1]
    window = ["--start", iso_z(start), "--end", iso_z(end), "--store", s3_bucket]
    prefix = execution_prefix(MODEL, "data-quality", start, end)

    local = run("monitor", "run", "--model", MODEL, *window, "--no-report")
    local_files = snapshot(store, prefix, skip=("execution.json",))
    local_merge = run("groundtruth", "merge", "--endpoint", ENDPOINT, *window)
    local_merged = snapshot(store, f"merged/{ENDPOINT}", skip=(".json",))
    assert local["status"] == "CompletedWithViolations" and local_merge["captures_matched"] > 0

    on_cluster = run("monitor", "run", "--model", MODEL, *window, "--no-report", "--dask", cluster)
    assert snapshot(store, prefix, skip=("execution.json",)) == local_files
    same = ("status", "records_read", "records_malformed", "rows_profiled", "files_read", "metric",
            "violation_count")
    assert {k: on_cluster.get(k) for k in same} == {k: local.get(k) for k in same}
    merged = run("groundtruth", "merge", "--endpoint", ENDPOINT, *window, "--dask", cluster)
    assert snapshot(store, f"merged/{ENDPOINT}", skip=(".json",)) == local_merged
    counts = {k: v for k, v in local_merge.items() if k.startswith(("captures_", "labels_"))}
    assert {k: merged[k] for k in counts} == counts

    # The partitions ran on the cluster's workers, not in the flow's process.
    assert {"profile_chunk_task", "merge_hours_task"} <= task_prefixes(cluster)


def test_a_dask_address_is_checked_before_any_work(s3_bucket: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = invoke("monitor", "run", "--model", MODEL, "--start", "2026-11-24", "--end",
                     "2026-11-25", "--store", s3_bucket, "--dask", "127.0.0.1:1")
    assert code == 2 and "--dask '127.0.0.1:1': expected a Dask scheduler address" in capsys.readouterr().err
    port = free_port()  # nothing listens there
    code, _ = invoke("groundtruth", "merge", "--endpoint", ENDPOINT, "--start", "2026-11-24T00:00Z",
                     "--end", "2026-11-25T00:00Z", "--store", s3_bucket, "--dask",
                     f"tcp://127.0.0.1:{port}")
    assert code == 2 and f"--dask tcp://127.0.0.1:{port}: no Dask scheduler answers" in \
        capsys.readouterr().err
