"""The check steps of modelwatch.prefect in a user's flow (SageMaker Pipelines' QualityCheckStep and
ClarifyCheckStep): the first run registers the baseline, a dataset like it passes, a drifted one fails
the flow or, when asked not to fail, reports its violations; registration happens only past a
passing check. Statistics and bias metrics are checked against numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prefect import flow

import modelwatch
from modelwatch.flows.demo_data import LABEL, training_frame
from modelwatch.prefect import CheckFailed, bias_check, quality_check
from modelwatch.tasks.store import Store, json_dumps

pytestmark = pytest.mark.usefixtures("prefect_api")
MODEL = "applicants"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("check-steps")
    rng = np.random.default_rng(5)
    paths = {"train": root / "train.csv", "fresh": root / "fresh.csv", "drifted": root / "drifted.csv"}
    training_frame(4000, rng).to_csv(paths["train"], index=False)
    training_frame(4000, rng).to_csv(paths["fresh"], index=False)
    training_frame(4000, rng, drift=True).to_csv(paths["drifted"], index=False)
    return paths


@flow
def retrain_pipeline(store: str, train: str, fresh: str, drifted: str) -> tuple[dict, dict, dict]:
    first = quality_check(MODEL, train, label=LABEL, register_baseline="1", store=store)
    passed = quality_check(MODEL, fresh, label=LABEL, register_baseline="2", store=store)
    reported = quality_check(MODEL, drifted, fail_on_violations=False, version="1", store=store)
    return first, passed, reported


@flow
def strict_pipeline(store: str, drifted: str) -> dict:
    return quality_check(MODEL, drifted, label=LABEL, register_baseline="3", store=store)


def test_quality_check_registers_passes_and_fails_on_drift(datasets: dict[str, Path],
                                                           tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    first, passed, reported = retrain_pipeline(store, *(str(datasets[k])
                                                        for k in ("train", "fresh", "drifted")))
    assert first["status"] == "NoBaseline" and first["violations"] == []
    assert Path(first["registered"]["constraints"]).is_file()
    assert passed["status"] == "Completed" and passed["baseline_version"] == "1"
    assert passed["violations"] == [] and passed["registered"]["baseline"].endswith(
        "baselines/applicants/2/data-quality/baseline.json")

    assert reported["status"] == "CompletedWithViolations" and reported["registered"] is None
    found = {(v["feature_name"], v["constraint_check_type"]) for v in reported["violations"]}
    assert ("income", "baseline_drift_check") in found
    assert ("utilization", "completeness_check") in found
    assert ("region", "categorical_values_check") in found
    assert not any(name in ("age", "num_accounts", "has_mortgage") for name, _ in found)
    statistics = json.loads(Path(reported["outputs"]["statistics.json"]).read_text())
    drifted = pd.read_csv(datasets["drifted"])
    income = next(f for f in statistics["features"] if f["name"] == "income")["numerical_statistics"]
    assert income["mean"] == pytest.approx(drifted["income"].mean(), rel=1e-12)
    assert income["std_dev"] == pytest.approx(drifted["income"].std(ddof=0), rel=1e-9)
    utilization = next(f for f in statistics["features"] if f["name"] == "utilization")
    assert utilization["numerical_statistics"]["common"]["num_missing"] == \
        int(drifted["utilization"].isna().sum())

    state = strict_pipeline(store, str(datasets["drifted"]), return_state=True)
    assert state.is_failed()
    with pytest.raises(CheckFailed, match="violation"):
        state.result()
    assert not Store(store).exists("baselines/applicants/3/data-quality/baseline.json")


def _lending(rng: np.random.Generator, n: int, facet_rate: float) -> pd.DataFrame:
    """Applicants with a sensitive facet (gender 1 is group d) and the model's decisions; group d is
    approved at `facet_rate`, the others at 0.5."""
    gender = rng.integers(0, 2, n)
    approved = np.where(gender == 1, rng.random(n) < facet_rate, rng.random(n) < 0.5).astype(int)
    repaid = np.where(rng.random(n) < 0.8, approved, 1 - approved)
    return pd.DataFrame({"income": rng.normal(50, 10, n).round(2), "gender": gender,
                         "repaid": repaid, "approved": approved})


def _metric(analysis: dict, name: str) -> float:
    [entry] = analysis["post_training_bias_metrics"]["facets"]["gender"]
    return next(m["value"] for m in entry["metrics"] if m["name"] == name)


@flow
def bias_pipeline(store: str, validation: str, later: str) -> tuple[dict, dict]:
    first = bias_check(MODEL, validation, label="repaid", register_baseline="1", store=store,
                       prediction="approved", facet=["gender=1"], bound=["DI=0.8:1.25"])
    return first, bias_check(MODEL, later, fail_on_violations=False, store=store)


def test_bias_check_measures_the_facets_of_the_baseline(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    validation, later = tmp_path / "validation.csv", tmp_path / "later.csv"
    _lending(rng, 3000, 0.5).to_csv(validation, index=False)
    frame = _lending(rng, 3000, 0.3)
    frame.to_csv(later, index=False)
    store = str(tmp_path / "store")
    first, found = bias_pipeline(store, str(validation), str(later))
    assert first["status"] == "NoBaseline" and first["registered"]["constraints"]
    assert found["status"] == "CompletedWithViolations"
    assert {(v["facet"], v["facet_value"], v["metric_name"]) for v in found["violations"]} >= {
        ("gender", "1", "DI")}
    analysis = json.loads(Path(found["outputs"]["analysis.json"]).read_text())
    d, a = frame[frame.gender == 1], frame[frame.gender != 1]
    assert _metric(analysis, "DPPL") == pytest.approx(a.approved.mean() - d.approved.mean(), abs=1e-12)
    assert _metric(analysis, "DI") == pytest.approx(d.approved.mean() / a.approved.mean(), abs=1e-12)


def test_the_api_reads_back_what_a_run_wrote(datasets: dict[str, Path], tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    modelwatch.suggest_baseline(MODEL, str(datasets["train"]), label=LABEL, store=store)
    with pytest.raises(modelwatch.UserError, match="is not a baseline option"):
        modelwatch.suggest_baseline(MODEL, str(datasets["train"]), label=LABEL, store=store,
                                    facet=["region=north"])
    with pytest.raises(modelwatch.UserError, match="no data-quality execution"):
        modelwatch.read_execution(MODEL, "2026-01-01", "2026-01-02", store=store)
    execution = modelwatch.run_monitor(MODEL, "2026-01-01", "2026-01-02",
                                       source=str(datasets["drifted"]), store=store, report=False)
    assert execution["status"] == "CompletedWithViolations"
    found = modelwatch.read_execution(MODEL, "2026-01-01T00:00:00Z", "2026-01-02", store=store)
    assert found.execution == json.loads(json_dumps(execution))  # as the document was written
    assert len(found.violations) == execution["violation_count"] > 0
    assert set(found.documents) == {"statistics.json", "constraint_violations.json"}
