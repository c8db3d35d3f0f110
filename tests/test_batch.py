"""The batch transform flow end to end through the CLI on a real (temporary) Prefect API: register a
fitted scikit-learn pipeline, score a dataset, check the outputs, the job record and the capture,
then monitor the capture like an endpoint's. Plus the registry commands' user errors in a
subprocess."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelwatch.tasks.capture import PREDICTION, parse_capture
from modelwatch.tasks.store import Store
from modelwatch.tasks.windows import iso_z, parse_time
from tests.cli_run import invoke, run

MODEL = "churn"
FEATURES = ["tenure", "spend", "plan"]
LABEL = "churned"
ROWS = 12_000  # more than one capture file's 10,000 records


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    spend = np.round(rng.gamma(4.0, 20.0, n), 2)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    logit = -0.04 * tenure + 0.01 * spend + np.where(plan == "basic", 0.5, -0.3)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"tenure": tenure, "spend": spend, "plan": plan, LABEL: churned})


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """A training CSV, a fitted pipeline dumped with joblib, and a labelless dataset to score."""
    folder = tmp_path_factory.mktemp("batch")
    train = frame(3_000, seed=1)
    train.to_csv(folder / "train.csv", index=False)
    model = Pipeline([
        ("pre", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                                   ("num", StandardScaler(), ["tenure", "spend"])])),
        ("clf", LogisticRegression(max_iter=1000)),
    ]).fit(train[FEATURES], train[LABEL])
    joblib.dump(model, folder / "model.joblib")
    scoring = frame(ROWS, seed=2)[FEATURES]
    scoring.to_csv(folder / "input.csv", index=False)
    return {"folder": folder, "model": model, "scoring": scoring,
            "train": str(folder / "train.csv"), "artifact": str(folder / "model.joblib"),
            "input": str(folder / "input.csv")}




def register(case: dict, store: str) -> dict:
    return run("models", "register", "--model", MODEL, "--problem-type", "binary",
               "--features-from", case["train"], "--label", LABEL, "--artifact", case["artifact"],
               "--training-run", "train-run-1", "--store", store)


@pytest.mark.usefixtures("prefect_api")
def test_batch_job_end_to_end(case: dict, tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    record = register(case, store_uri)
    assert [(f["name"], f["type"]) for f in record["features"]] == [
        ("tenure", "Integral"), ("spend", "Fractional"), ("plan", "String")]
    assert record["versions"][0]["training_dataset_uri"] == case["train"]

    job = run("batch", "run", "--model", MODEL, "--input", case["input"], "--job-id", "churn-nightly",
              "--store", store_uri)
    assert job["status"] == "Completed" and job["job_id"] == "churn-nightly"
    assert job["rows_in"] == job["rows_out"] == ROWS
    assert job["model_version"] == "1" and job["flow_run_id"]
    assert job["finished_at"] >= job["started_at"]
    store = Store(store_uri)
    assert store.read_json("registry/batch-jobs/churn-nightly.json") == job

    expected = case["model"].predict_proba(case["scoring"])[:, 1]
    assert job["output_uri"] == store.uri("batch/churn-nightly/output.csv")
    output = pd.read_csv(job["output_uri"], float_precision="round_trip")
    assert list(output.columns) == [*FEATURES, PREDICTION]
    np.testing.assert_array_equal(output[PREDICTION].to_numpy(), expected)
    pd.testing.assert_frame_equal(output[FEATURES], case["scoring"])

    # The capture: SageMaker CSV records, one per row, at most 10,000 per file, in the job's hour.
    capture_root = Path(job["capture_uri"])
    assert capture_root == Path(store.uri("capture/batch-churn-nightly"))
    started = parse_time(job["started_at"])
    files = sorted(capture_root.rglob("*.jsonl"))
    hour = capture_root / "AllTraffic" / started.strftime("%Y/%m/%d/%H")
    assert [f.relative_to(hour).as_posix() for f in files] == ["part-00000.jsonl",
                                                               "part-00001.jsonl"]
    batches = [parse_capture(f.read_bytes(), str(f), FEATURES) for f in files]
    assert [b.num_rows for b in batches] == [10_000, 2_000]
    assert all(b.records_malformed == 0 for b in batches)
    captured = np.concatenate([np.asarray(b.columns[PREDICTION].to_pylist(), dtype=float)
                               for b in batches])
    np.testing.assert_array_equal(captured, expected)
    plans = [v for b in batches for v in b.columns["plan"].to_pylist()]
    assert plans == case["scoring"]["plan"].tolist()
    first = json.loads(files[0].read_text().splitlines()[0])
    assert first["eventMetadata"]["inferenceTime"] == iso_z(started)
    assert re.fullmatch(r"[0-9a-f-]{36}", first["eventMetadata"]["eventId"])

    # The data-quality monitor reads the batch capture like an endpoint's (no HTML report: it
    # costs seconds and is not what this test is about).
    run("baseline", "suggest", "--model", MODEL, "--dataset", case["train"], "--label", LABEL,
        "--store", store_uri)
    window = started.replace(minute=0, second=0, microsecond=0)
    execution = run("monitor", "run", "--model", MODEL, "--capture", str(capture_root),
                    "--start", iso_z(window), "--end", iso_z(window + timedelta(hours=1)),
                    "--no-report", "--store", store_uri)
    assert execution["status"] == "Completed", execution
    assert execution["records_read"] == execution["rows_profiled"] == ROWS
    assert execution["records_malformed"] == 0

    # The job shows in the list and in the model's lineage.
    [listed] = run("batch", "list", "--model", MODEL, "--json", "--store", store_uri)
    assert listed["job_id"] == "churn-nightly"
    shown = run("models", "show", "--model", MODEL, "--store", store_uri)
    assert {"from": "model:churn/v1", "to": "batch:churn-nightly"} in shown["lineage"]
    assert {"from": "run:train-run-1", "to": "model:churn/v1"} in shown["lineage"]
    code, table = invoke("batch", "list", "--store", store_uri)
    assert code == 0 and "churn-nightly" in table and "Completed" in table


@pytest.mark.usefixtures("prefect_api")
def test_default_job_id_and_output_option(case: dict, tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    register(case, store_uri)
    small = case["scoring"].head(50)
    small.to_parquet(tmp_path / "small.parquet", index=False)
    output = tmp_path / "out" / "scores.csv"
    job = run("batch", "run", "--model", MODEL, "--model-version", "1",
              "--input", str(tmp_path / "small.parquet"), "--output", str(output),
              "--store", store_uri)
    assert re.fullmatch(rf"{MODEL}-\d{{8}}t\d{{6}}", job["job_id"])
    assert datetime.strptime(job["job_id"][len(MODEL) + 1:], "%Y%m%dt%H%M%S")
    assert job["output_uri"] == str(output) and job["rows_out"] == 50
    scores = pd.read_csv(output, float_precision="round_trip")[PREDICTION].to_numpy()
    np.testing.assert_array_equal(scores, case["model"].predict_proba(small)[:, 1])


@pytest.mark.usefixtures("prefect_api")
def test_a_scoring_failure_marks_the_job_failed(case: dict, tmp_path: Path) -> None:
    store_uri = str(tmp_path / "store")
    register(case, store_uri)
    broken = case["scoring"].head(20).astype({"spend": object})
    broken.loc[3, "spend"] = "lots"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    code, stdout = invoke("batch", "run", "--model", MODEL, "--input", str(tmp_path / "broken.csv"),
                          "--job-id", "broken-1", "--store", store_uri)
    assert code == 1
    job = json.loads(stdout)
    assert job["status"] == "Failed" and "lots" in job["failure_reason"]
    assert job["rows_out"] == 0 and job["finished_at"]
    assert Store(store_uri).read_json("registry/batch-jobs/broken-1.json")["status"] == "Failed"


@pytest.mark.usefixtures("prefect_api")
def test_missing_feature_columns_are_a_user_error(case: dict, tmp_path: Path, capsys) -> None:
    store_uri = str(tmp_path / "store")
    register(case, store_uri)
    case["scoring"].drop(columns=["plan", "spend"]).to_csv(tmp_path / "partial.csv", index=False)
    code, stdout = invoke("batch", "run", "--model", MODEL, "--input", str(tmp_path / "partial.csv"),
                          "--job-id", "partial-1", "--store", store_uri)
    assert code == 2 and stdout == ""
    assert "missing feature column(s) spend, plan" in capsys.readouterr().err
    assert not Store(store_uri).exists("registry/batch-jobs/partial-1.json")


def test_batch_user_errors_before_prefect(case: dict, tmp_path: Path, capsys) -> None:
    store_uri = str(tmp_path / "store")
    for args, message in [
        (["--model", "ghost", "--input", case["input"]], "unknown model 'ghost'"),
        (["--model", MODEL, "--input", str(tmp_path / "nope.csv")], "no such file"),
        (["--model", MODEL, "--input", case["input"], "--model-version", "9"], "has no version '9'"),
        (["--model", MODEL, "--input", case["input"], "--job-id", "Nightly Run"],
         "invalid batch job id"),
    ]:
        if args[1] == MODEL and not Store(store_uri).exists("registry/models/churn.json"):
            register(case, store_uri)
        code, stdout = invoke("batch", "run", *args, "--store", store_uri)
        assert code == 2 and stdout == "", args
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--problem-type", "psychic"], "--problem-type 'psychic' is not supported: expected one of "
                                    "binary, multiclass, regression"),
    (["--problem-type", "binary", "--features-from", "{tmp}/missing.csv", "--label", "y"],
     "--features-from {tmp}/missing.csv: no such file"),
    (["--problem-type", "binary", "--features-from", "{dataset}", "--label", "nope"],
     "label column 'nope' not found"),
    (["--problem-type", "binary", "--feature", "age"], "expected name:Type"),
])
def test_models_register_user_errors_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    dataset = tmp_path / "train.csv"
    dataset.write_text("a,b,y\n1,x,0\n2,y,1\n")
    filled = [a.format(tmp=tmp_path, dataset=dataset) for a in args]
    result = subprocess.run(
        [sys.executable, "-m", "modelwatch.cli", "models", "register", "--model", "m", *filled,
         "--store", str(tmp_path / "store")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "store" / "registry").exists()


@pytest.mark.usefixtures("prefect_api")
def test_s3_store(case: dict, s3_bucket: str) -> None:
    run("models", "register", "--model", MODEL, "--problem-type", "binary",
        "--feature", "tenure:Integral", "--feature", "spend:Fractional", "--feature", "plan:String",
        "--label", LABEL, "--artifact", case["artifact"], "--store", s3_bucket)
    store = Store(s3_bucket)
    store.write_bytes("inputs/small.csv", case["scoring"].head(30).to_csv(index=False).encode())
    job = run("batch", "run", "--model", MODEL, "--input", f"{s3_bucket}/inputs/small.csv",
              "--job-id", "s3-job", "--store", s3_bucket)
    assert job["status"] == "Completed" and job["rows_out"] == 30
    assert job["output_uri"] == f"{s3_bucket}/batch/s3-job/output.csv"
    assert job["capture_uri"] == f"{s3_bucket}/capture/batch-s3-job"
    output = pd.read_csv(io.BytesIO(store.read_bytes("batch/s3-job/output.csv")),
                         float_precision="round_trip")
    np.testing.assert_array_equal(output[PREDICTION].to_numpy(),
                                  case["model"].predict_proba(case["scoring"].head(30))[:, 1])
    hour = parse_time(job["started_at"]).strftime("%Y/%m/%d/%H")
    [part] = store.list(f"capture/batch-s3-job/AllTraffic/{hour}")
    assert parse_capture(store.read_bytes(part), part, FEATURES).num_rows == 30


@pytest.mark.usefixtures("prefect_api")
def test_a_swapped_artifact_is_refused_before_it_is_unpickled(case: dict, tmp_path: Path) -> None:
    """Artifacts are code: the digest recorded at registration guards every load."""
    import hashlib
    import shutil

    store_uri = str(tmp_path / "store")
    artifact = tmp_path / "model.joblib"
    shutil.copy(case["artifact"], artifact)
    record = run("models", "register", "--model", MODEL, "--problem-type", "binary",
                 "--features-from", case["train"], "--label", LABEL, "--artifact", str(artifact),
                 "--store", store_uri)
    assert record["versions"][0]["artifact_sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    # Someone replaces the file with a pickle that would run code when loaded.
    marker = tmp_path / "pwned"
    joblib.dump(Exploit(str(marker)), artifact)
    code, out = invoke("batch", "run", "--model", MODEL, "--input", case["input"], "--store", store_uri)
    assert code == 2 and not marker.exists()
    jobs = run("batch", "list", "--json", "--store", store_uri)
    assert [j["status"] for j in jobs] == ["Failed"]
    assert "SHA-256" in jobs[0]["failure_reason"]


class Exploit:
    """Unpickling this touches a file: the proof that a load ran attacker code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))
