"""`modelwatch retention apply`: exactly the data wholly older than each kind's age goes (capture,
multi-model capture, ground truth, merged, executions with their index entries, telemetry), counted
to the file and byte; what is not a date folder of the layout stays and is reported; a dry run
removes nothing; bad ages are user errors; the same on S3; and the retention-apply flow and its
scheduled deployment."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelwatch.tasks.dashboard import ExecutionSummary
from modelwatch.tasks.executions import STAMP, Attempt, ExecutionIndex, index_key
from modelwatch.tasks.retention import apply_retention
from modelwatch.tasks.store import Store, json_dumps
from tests.cli_run import invoke, run

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
AGES = {"capture": 7, "groundtruth": 14, "merged": 21, "executions": 30, "telemetry": 14}
FLAGS = [arg for kind, days in AGES.items() for arg in (f"--{kind}-days", str(days))]


def stamp(start: datetime, end: datetime) -> str:
    return f"{start.strftime(STAMP)}_{end.strftime(STAMP)}"


W_OLD = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))
W_EDGE = (datetime(2026, 2, 8, tzinfo=UTC), datetime(2026, 2, 8, 12, tzinfo=UTC))  # ends before 12:30
W_NEW = (datetime(2026, 2, 8, 12, tzinfo=UTC), datetime(2026, 2, 9, tzinfo=UTC))
W_RUNNING = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
W_DEAD = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC))

EXECUTIONS = "monitoring/model-x/data-quality"
# Folders (store keys) the ages make old: each must go whole, with every file in it.
OLD = [
    # capture: 7 days -> cutoff 2026-03-03T12:30; an hour goes once it ended by then
    "capture/ep-a/alltraffic/2026/03/03/11",
    "capture/ep-a/alltraffic/2026/03/01/05",
    "capture/ep-a/alltraffic/2025/12/31/23",
    "capture/ep-a/canary/2026/02/28/00",
    "capture/ep-a/models/model-x/alltraffic/2026/03/01/05",
    "capture/ep-a/models/_unrouted/alltraffic/2026/02/01/10",
    "capture/ep-b/models/2026/02/01/10",  # a variant named "models"
    # ground truth: 14 days -> cutoff 2026-02-24T12:30
    "groundtruth/ep-a/2026/02/01/00",
    "groundtruth/ep-a/2026/02/24/11",
    # merged: 21 days -> cutoff 2026-02-17T12:30
    "merged/ep-a/2026/02/01/00",
    "merged/ep-a/models/model-x/2026/02/17/11",
    # executions: 30 days -> cutoff 2026-02-08T12:30, by window end
    f"{EXECUTIONS}/{stamp(*W_OLD)}",
    f"{EXECUTIONS}/{stamp(*W_EDGE)}",
    f"{EXECUTIONS}/{stamp(*W_DEAD)}",
    f"monitoring/model-y/model-quality/{stamp(*W_OLD)}",
    # telemetry: 14 days -> cutoff 2026-02-24T12:30; a day goes once it ended by then
    "telemetry/ep-a/2026/02/20",
    "telemetry/ep-a/2026/02/23",
]
KEPT = [
    "capture/ep-a/alltraffic/2026/03/03/12",  # ends 13:00, after the cutoff
    "capture/ep-a/alltraffic/2026/03/09/10",
    "capture/ep-a/models/model-x/alltraffic/2026/03/09/00",
    "groundtruth/ep-a/2026/02/24/12",
    "merged/ep-a/2026/02/17/12",
    f"{EXECUTIONS}/{stamp(*W_NEW)}",
    f"{EXECUTIONS}/{stamp(*W_RUNNING)}",
    "telemetry/ep-a/2026/02/24",
    "telemetry/ep-a/2026/03/09",
]
# Not date folders of the layout (or not wholly old): left alone; the first ones reported as skipped.
SKIPPED = [
    "capture/ep-a/alltraffic/notes",
    "capture/ep-a/alltraffic/2026/13",
    "capture/ep-a/alltraffic/2026/02/30",
    "capture/ep-a/alltraffic/2026/03/01/24",
    "capture/ep-a/alltraffic/2026/03/01/stray.txt",
    "groundtruth/ep-a/latest",
    "telemetry/ep-a/2026/02/readme.md",
    f"{EXECUTIONS}/notes",
    f"{EXECUTIONS}/{stamp(*W_RUNNING)}",  # running: kept whatever its age
]
UNTOUCHED = ["merged/ep-a/reports", f"{EXECUTIONS}/index.json", "registry/endpoints/ep-a.json",
             "alerts/model-x/data-quality.json"]


def build(store: Store) -> None:
    """Files of several sizes in every folder above; executions with their index."""
    size = 10
    for folder in OLD + KEPT + SKIPPED + UNTOUCHED[:1]:
        names = ["part-1.jsonl", "part-2.jsonl.gz"] if not folder.startswith("telemetry") else \
            ["writer-1.parquet", "writer-2.parquet"]
        if folder.endswith((".txt", ".md")):
            store.write_bytes(folder, b"x" * size)
            size += 7
            continue
        for name in names:
            store.write_bytes(f"{folder}/{name}", b"x" * size)
            size += 7
    store.write_bytes(f"{OLD[0]}/nested/deeper.jsonl", b"y" * 33)  # a whole hour goes, nested too
    store.write_json("registry/endpoints/ep-a.json", {"name": "ep-a"})
    store.write_json("alerts/model-x/data-quality.json", {"state": "OK"})
    entries = [ExecutionSummary(monitor_type="data-quality", window_start=s, window_end=e,
                                status="Completed") for s, e in (W_DEAD, W_OLD, W_EDGE, W_NEW)]
    entries.insert(0, ExecutionSummary(monitor_type="data-quality", window_start=W_RUNNING[0],
                                       window_end=W_RUNNING[1], status="Running",
                                       started_at=NOW - timedelta(minutes=5)))
    index = ExecutionIndex(model="model-x", monitor_type="data-quality", executions=entries)
    store.write_json(index_key("model-x", "data-quality"), index.dump())
    for window, beat in ((W_RUNNING, NOW - timedelta(minutes=1)), (W_DEAD, NOW - timedelta(days=60))):
        prefix = f"{EXECUTIONS}/{stamp(*window)}"
        store.delete(f"{prefix}/part-1.jsonl")  # a begun execution: attempt.json, no execution.json
        store.write_json(f"{prefix}/attempt.json", Attempt(
            started_at=beat, heartbeat_at=beat, heartbeat_seconds=30).dump())
    for window in (W_OLD, W_EDGE, W_NEW):
        store.write_json(f"{EXECUTIONS}/{stamp(*window)}/execution.json", {"status": "Completed"})


def local_files(root: Path) -> dict[str, int]:
    """Every file under a local folder (relative path -> bytes), by os.walk."""
    out = {}
    for folder, _, names in os.walk(root):
        if Path(folder).relative_to(root).parts[:1] == (".locks",):  # the store's own lock files
            continue
        for name in names:
            path = Path(folder, name)
            out[path.relative_to(root).as_posix()] = path.stat().st_size
    return out


def s3_files(store: Store) -> dict[str, int]:
    """Every object under an S3 store (key -> bytes), from one recursive listing."""
    base = store.path("") + "/"
    return {path[len(base):]: info["size"]
            for path, info in store.fs.find(store.path(""), detail=True).items()}


def expected_by_kind(before: dict[str, int]) -> dict[str, tuple[int, int, set[str]]]:
    """(files, bytes, folders) per kind that must go, worked out from the OLD list."""
    kind_of = {"capture": "capture", "groundtruth": "groundtruth", "merged": "merged",
               "monitoring": "executions", "telemetry": "telemetry"}
    out: dict[str, tuple[int, int, set[str]]] = {kind: (0, 0, set()) for kind in AGES}
    for folder in OLD:
        inside = {k: v for k, v in before.items() if k.startswith(folder + "/")}
        assert inside, folder
        files, size, folders = out[kind_of[folder.split("/")[0]]]
        out[kind_of[folder.split("/")[0]]] = (files + len(inside), size + sum(inside.values()),
                                              folders | {folder})
    return out


def check_report(report: dict, store: Store, before: dict[str, int], dry_run: bool) -> None:
    expected = expected_by_kind(before)
    assert report["dry_run"] is dry_run
    assert set(report["kinds"]) == set(AGES)
    for kind, (files, size, folders) in expected.items():
        part = report["kinds"][kind]
        assert (part["files"], part["bytes"]) == (files, size), kind
        assert set(part["removed"]) == {store.uri(f) for f in folders}, kind
        assert part["days"] == AGES[kind]
        assert part["cutoff"] == (NOW - timedelta(days=AGES[kind])).isoformat().replace("+00:00", "Z")
    assert report["files"] == sum(e[0] for e in expected.values())
    assert report["bytes"] == sum(e[1] for e in expected.values())
    skipped = {s["uri"] for part in report["kinds"].values() for s in part["skipped"]}
    assert skipped == {store.uri(k) for k in SKIPPED}
    assert report["kinds"]["executions"]["index_entries"] == 3


def test_apply_removes_exactly_the_old_folders_and_dry_run_nothing(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(str(root))
    build(store)
    before = local_files(root)

    dry = run("retention", "apply", *FLAGS, "--now", NOW.isoformat(), "--dry-run",
              "--store", str(root))
    check_report(dry, store, before, dry_run=True)
    assert local_files(root) == before
    assert len(json.loads((root / index_key("model-x", "data-quality")).read_text())
               ["executions"]) == 5

    report = run("retention", "apply", *FLAGS, "--now", "2026-03-10T12:30:00Z", "--store", str(root))
    check_report(report, store, before, dry_run=False)
    after = local_files(root)
    gone = {k for k in before if any(k.startswith(f + "/") for f in OLD)}
    assert set(after) == set(before) - gone
    for folder in OLD:
        assert not (root / folder).exists(), folder
    for folder in KEPT + SKIPPED + UNTOUCHED:
        assert (root / folder).exists(), folder
    # Date folders left empty go too; the endpoint and variant folders stay.
    assert not (root / "capture/ep-a/alltraffic/2025").exists()
    assert not (root / "capture/ep-a/models/_unrouted/alltraffic/2026").exists()
    assert (root / "capture/ep-a/models/_unrouted/alltraffic").is_dir()
    assert not (root / "groundtruth/ep-a/2026/02/01").exists()
    assert (root / "capture/ep-a/alltraffic/2026/03/01").is_dir()  # holds skipped entries
    # The index keeps the running and the new window only.
    index = ExecutionIndex.model_validate(store.read_json(index_key("model-x", "data-quality")))
    assert [(e.window_start, e.window_end, e.status) for e in index.executions] == [
        (*W_RUNNING, "Running"), (*W_NEW, "Completed")]
    assert not store.exists(index_key("model-y", "model-quality"))

    again = run("retention", "apply", *FLAGS, "--now", NOW.isoformat(), "--store", str(root))
    assert (again["files"], again["bytes"]) == (0, 0)
    assert all(not part["removed"] for part in again["kinds"].values())
    assert local_files(root) == after


def test_a_kind_without_an_age_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = Store(str(root))
    build(store)
    before = local_files(root)
    report = run("retention", "apply", "--groundtruth-days", "14", "--now", NOW.isoformat(),
                 "--store", str(root))
    assert list(report["kinds"]) == ["groundtruth"]
    gone = {k for k in before if k.startswith(("groundtruth/ep-a/2026/02/01/00/",
                                               "groundtruth/ep-a/2026/02/24/11/"))}
    assert set(local_files(root)) == set(before) - gone
    assert report["files"] == len(gone) == 4
    assert report["bytes"] == sum(before[k] for k in gone)


def test_an_hour_goes_only_once_it_is_wholly_older_than_the_cutoff(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    for hour in ("10", "11", "12"):
        store.write_bytes(f"capture/ep/v/2026/03/03/{hour}/a.jsonl", b"{}\n")
    for day in ("01", "02", "03"):
        store.write_bytes(f"telemetry/ep/2026/03/{day}/w.parquet", b"pq")
    store.write_bytes("telemetry/ep/2026/02/27.parquet", b"day file")  # DESIGN.md's DD.parquet
    store.write_bytes("telemetry/ep/2026/02/notes.parquet", b"?")
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)  # capture cutoff 2026-03-03T12:00 exactly
    report = apply_retention(store, {"capture": 7, "telemetry": 7}, now=now, dry_run=True)
    assert report.kinds["capture"].removed == [store.uri(f"capture/ep/v/2026/03/03/{h}")
                                               for h in ("10", "11")]
    assert report.kinds["telemetry"].removed == [store.uri("telemetry/ep/2026/02/27.parquet")] + [
        store.uri(f"telemetry/ep/2026/03/{d}") for d in ("01", "02")]
    assert (report.kinds["telemetry"].files, report.kinds["telemetry"].bytes) == (3, 12)
    assert [s.uri for s in report.kinds["telemetry"].skipped] == [
        store.uri("telemetry/ep/2026/02/notes.parquet")]
    apply_retention(store, {"telemetry": 7}, now=now)
    assert not store.exists("telemetry/ep/2026/02/27.parquet")
    assert store.exists("telemetry/ep/2026/02/notes.parquet")
    assert store.exists("telemetry/ep/2026/03/03/w.parquet")
    # A naive --now is UTC; one with a zone is converted.
    code, out = invoke("retention", "apply", "--capture-days", "7", "--now", "2026-03-10T14:00+02:00",
                       "--dry-run", "--store", store.root)
    assert code == 0 and len(json.loads(out)["kinds"]["capture"]["removed"]) == 2


@pytest.mark.parametrize("args, message", [
    ([], "no retention age given"),
    (["--dry-run"], "no retention age given"),
    (["--capture-days", "0"], "--capture-days 0: expected a whole number of days, at least 1"),
    (["--telemetry-days", "-3"], "--telemetry-days -3"),
    (["--merged-days", "3000000"], "--merged-days 3000000: too many days"),
    (["--executions-days", "5", "--now", "yesterday"], "--now 'yesterday' is not an ISO-8601"),
    (["--capture-days", "5", "--store", "{file}"], "is a file"),
])
def test_user_errors_exit_2(args: list[str], message: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    filled = [a.format(file=file) for a in args]
    if "--store" not in filled:
        filled += ["--store", str(tmp_path / "store")]
    code, out = invoke("retention", "apply", *filled)
    err = capsys.readouterr().err
    assert code == 2 and out == ""
    assert message in err
    assert err.count("\n") == 1, err


def test_s3_store(s3_bucket: str) -> None:
    store = Store(s3_bucket)
    build(store)
    before = s3_files(store)
    dry = run("retention", "apply", *FLAGS, "--now", NOW.isoformat(), "--dry-run", "--store", s3_bucket)
    check_report(dry, store, before, dry_run=True)
    assert s3_files(store) == before

    report = run("retention", "apply", *FLAGS, "--now", NOW.isoformat(), "--store", s3_bucket)
    check_report(report, store, before, dry_run=False)
    gone = {k for k in before if any(k.startswith(f + "/") for f in OLD)}
    assert set(s3_files(store)) == set(before) - gone
    index = ExecutionIndex.model_validate(store.read_json(index_key("model-x", "data-quality")))
    assert [(e.window_start, e.window_end) for e in index.executions] == [W_RUNNING, W_NEW]


@pytest.mark.usefixtures("prefect_api")
def test_flow_and_scheduled_deployment(tmp_path: Path) -> None:
    from modelwatch.deployments.schedules import (
        RETENTION_DEPLOYMENT,
        existing_retention,
        retention_deployment,
    )
    from modelwatch.flows.retention import retention_apply

    root = tmp_path / "store"
    store = Store(str(root))
    build(store)
    before = local_files(root)
    report = json.loads(json_dumps(retention_apply(
        **{f"{kind}_days": days for kind, days in AGES.items()}, store=str(root), now=NOW)))
    check_report(report, store, before, dry_run=False)
    assert set(local_files(root)) == {k for k in before if not any(k.startswith(f + "/") for f in OLD)}

    code, _ = invoke("retention", "schedule", "--cron", "0 3 * * *", "--store", str(root))
    assert code == 2
    code, _ = invoke("retention", "schedule", "--cron", "whenever", "--capture-days", "7",
                     "--store", str(root))
    assert code == 2
    created = run("retention", "schedule", "--cron", "0 3 * * *", "--capture-days", "7",
                  "--executions-days", "90", "--store", str(root))
    assert created["deployment"] == f"retention-apply/{RETENTION_DEPLOYMENT}"
    assert created["parameters"] == {"capture_days": 7, "executions_days": 90, "store": str(root)}
    info = existing_retention()
    assert info is not None and info.cron == "0 3 * * *" and info.active
    assert info.parameters == created["parameters"]
    served = retention_deployment("", str(root), info=info)  # as `modelwatch serve` would rebuild it
    assert served.parameters == created["parameters"]
    assert [s.schedule.cron for s in served.schedules] == ["0 3 * * *"]
