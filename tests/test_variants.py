"""Production variants (A/B tests): the comparison's numbers against independent statistics, and
one endpoint with two variants through capture, merge, both monitors, `variants compare` and the
endpoint page."""

from __future__ import annotations

import csv
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score

from modelwatch.capture import CaptureConfig, CaptureWriter
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.quality import compute_metrics
from modelwatch.tasks.store import Store
from modelwatch.tasks.variants import compare_variants
from tests.cli_run import invoke, run

FEATURES = ["f0", "f1", "f2"]
HOUR = datetime(2026, 11, 23, 10, tzinfo=UTC)
WINDOW = ("--start", "2026-11-23T10:00:00Z", "--end", "2026-11-23T11:00:00Z")
ROWS = 600
RIGHT = {"control": 0.80, "candidate": 0.90}  # each variant's chance of a correct prediction


def _binary(rng: np.random.Generator, n: int, right: float) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.integers(0, 2, n)
    return truth, np.where(rng.random(n) < right, truth, 1 - truth)


def test_the_accuracy_interval_matches_the_two_proportion_interval() -> None:
    rng = np.random.default_rng(1)
    (ta, pa_), (tb, pb) = _binary(rng, 3000, 0.80), _binary(rng, 2500, 0.84)
    result = compare_variants({"A": compute_metrics("binary", ta, pa_, bootstrap=2000),
                               "B": compute_metrics("binary", tb, pb, bootstrap=2000)},
                              "A", "B", "accuracy")
    p1, p2 = accuracy_score(ta, pa_), accuracy_score(tb, pb)
    assert result.difference == pytest.approx(p2 - p1, abs=1e-12)
    # Wald's interval of a difference of proportions, computed here from the counts.
    se = math.sqrt(p1 * (1 - p1) / 3000 + p2 * (1 - p2) / 2500)
    half = stats.norm.ppf(0.975) * se
    assert (result.ci_high - result.ci_low) / 2 == pytest.approx(half, rel=0.08)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(p2 - p1) / se), rel=0.5)
    assert result.significant and result.better == "B"
    assert result.ci_low > 0 and (result.p_value < 0.05)


def test_the_f1_standard_error_matches_scipys_two_sample_bootstrap() -> None:
    rng = np.random.default_rng(2)
    (ta, pa_), (tb, pb) = _binary(rng, 1500, 0.78), _binary(rng, 1200, 0.80)
    result = compare_variants({"A": compute_metrics("binary", ta, pa_, bootstrap=2000),
                               "B": compute_metrics("binary", tb, pb, bootstrap=2000)},
                              "A", "B", "f1")
    # scipy resamples each variant's row indices on its own; the statistic is the f1 difference.
    def difference(x: np.ndarray, y: np.ndarray) -> float:
        x, y = x.astype(int), y.astype(int)
        return f1_score(tb[y], pb[y]) - f1_score(ta[x], pa_[x])

    reference = stats.bootstrap((np.arange(len(ta)), np.arange(len(tb))), difference,
                                paired=False, vectorized=False, n_resamples=1500, random_state=3)
    se = math.hypot(result.control.standard_deviation, result.treatment.standard_deviation)
    assert se == pytest.approx(reference.standard_error, rel=0.12)
    assert result.difference == pytest.approx(f1_score(tb, pb) - f1_score(ta, pa_), abs=1e-12)


def test_an_a_a_test_is_significant_about_as_often_as_its_level_says() -> None:
    rng = np.random.default_rng(4)
    trials, hits = 300, 0
    for _ in range(trials):
        (ta, pa_), (tb, pb) = _binary(rng, 400, 0.75), _binary(rng, 400, 0.75)
        hits += compare_variants({"A": compute_metrics("binary", ta, pa_),
                                  "B": compute_metrics("binary", tb, pb)},
                                 "A", "B", "accuracy").significant
    # 5 % expected; the binomial 1e-4 interval of 300 trials at 5 % is about 1 to 11 %.
    low, high = stats.binom.ppf([1e-4, 1 - 1e-4], trials, 0.05)
    assert low <= hits <= high


def test_lower_is_better_metrics_and_bad_inputs() -> None:
    rng = np.random.default_rng(5)
    truth = rng.normal(size=800)
    worse = compute_metrics("regression", truth, truth + rng.normal(0, 1.0, 800))
    better = compute_metrics("regression", truth, truth + rng.normal(0, 0.5, 800))
    result = compare_variants({"A": worse, "B": better}, "A", "B", "rmse")
    assert result.lower_is_better and result.difference < 0 and result.better == "B"
    with pytest.raises(UserError, match="'accuracy' is not a Regression metric.*rmse"):
        compare_variants({"A": worse, "B": better}, "A", "B", "accuracy")
    with pytest.raises(UserError, match="variant 'C' has no labelled records.*A, B"):
        compare_variants({"A": worse, "B": better}, "A", "C", "rmse")
    with pytest.raises(UserError, match="--confidence 1.5"):
        compare_variants({"A": worse, "B": better}, "A", "B", "rmse", confidence=1.5)


@pytest.mark.usefixtures("prefect_api")
def test_an_endpoint_with_two_variants_is_monitored_and_compared_per_variant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_uri = str(tmp_path / "store")
    rng = np.random.default_rng(6)
    train = tmp_path / "train.csv"
    validation = tmp_path / "validation.csv"
    rows = rng.normal(size=(5000, 3)).round(6)
    with train.open("w", newline="") as handle:
        csv.writer(handle).writerows([[*FEATURES, "label"], *([*r, int(r[0] > 0)] for r in rows)])
    truth, predicted = _binary(rng, 2000, 0.85)
    with validation.open("w", newline="") as handle:
        csv.writer(handle).writerows([["label", "prediction"], *zip(truth, predicted, strict=True)])
    run("models", "register", "--model", "churn", "--problem-type", "binary", "--features-from",
        str(train), "--label", "label", "--store", store_uri)
    run("baseline", "suggest", "--model", "churn", "--dataset", str(train), "--label", "label",
        "--store", store_uri)
    run("baseline", "suggest", "--model", "churn", "--type", "model-quality", "--dataset",
        str(validation), "--label", "label", "--prediction", "prediction", "--store", store_uri)
    run("endpoints", "register", "--endpoint", "ab", "--model", "churn", "--model-version", "1",
        "--store", store_uri)

    # Two variants' writers; the candidate's f1 has moved by 1.5 sd and it predicts better.
    sent: dict[str, dict[str, tuple[int, int]]] = {"control": {}, "candidate": {}}
    sent_f1: dict[str, list[float]] = {"control": [], "candidate": []}
    for variant in sent:
        capture = CaptureWriter(CaptureConfig(store=store_uri, endpoint="ab", variant=variant,
                                              flush_seconds=30))
        labels, predictions = _binary(rng, ROWS, RIGHT[variant])
        for i in range(ROWS):
            row = rng.normal(size=3) + (np.array([0, 1.5, 0]) if variant == "candidate" else 0)
            ident = f"{variant}-{i}"
            assert capture.record(",".join(f"{v:.6f}" for v in row), str(predictions[i]),
                                  inference_id=ident, seconds=0.002,
                                  at=(HOUR + timedelta(seconds=5 * i)).timestamp())
            sent[variant][ident] = (int(labels[i]), int(predictions[i]))
            sent_f1[variant].append(float(f"{row[1]:.6f}"))
        capture.close()

    labels_file = tmp_path / "labels.csv"
    labels_file.write_text("id,label\n" + "".join(f"{i},{label}\n" for ids in sent.values()
                                                  for i, (label, _) in ids.items()))
    run("groundtruth", "upload", "--endpoint", "ab", "--file", str(labels_file), "--id-column", "id",
        "--label-column", "label", "--labelled-at", "2026-11-23T10:45:00Z", "--store", store_uri)
    merged = run("groundtruth", "merge", "--endpoint", "ab", *WINDOW, "--lookback", "PT1H",
                 "--store", store_uri)
    assert merged["captures_matched"] == 2 * ROWS
    store = Store(store_uri)
    hour = "merged/ab/2026/11/23/10"
    assert store.list(hour) == [f"{hour}/part-00000.candidate.jsonl",
                                f"{hour}/part-00000.control.jsonl"]
    for variant, ids in sent.items():
        lines = store.read_bytes(f"{hour}/part-00000.{variant}.jsonl").splitlines()
        assert sorted(json.loads(line)["eventMetadata"]["inferenceId"] for line in lines) == sorted(ids)

    quality = run("monitor", "run", "--model", "churn", "--type", "model-quality", *WINDOW,
                  "--store", store_uri)
    everything = [v for ids in sent.values() for v in ids.values()]
    assert quality["metric"] == pytest.approx(accuracy_score(*zip(*everything, strict=True)),
                                              abs=1e-12)
    assert set(quality["variants"]) == set(sent)
    for variant, ids in sent.items():
        outcome = quality["variants"][variant]
        assert outcome["records"] == ROWS and outcome["metric_name"] == "accuracy"
        assert outcome["metric"] == pytest.approx(
            accuracy_score(*zip(*ids.values(), strict=True)), abs=1e-12)
    documents = json.loads(Path(quality["outputs"]["variants.json"]).read_text())
    assert documents["control"]["statistics"]["dataset"]["item_count"] == ROWS

    drift = run("monitor", "run", "--model", "churn", *WINDOW, "--no-report", "--store", store_uri)
    assert drift["status"] == "CompletedWithViolations"
    assert drift["variants"]["control"]["status"] == "Completed"
    assert drift["variants"]["candidate"]["status"] == "CompletedWithViolations"
    assert {v.split(":")[0] for v in drift["variants"]["candidate"]["violations"]} == {"f1"}
    per_variant = json.loads(Path(drift["outputs"]["variants.json"]).read_text())
    for variant in sent:
        features = {f["name"]: f for f in per_variant[variant]["statistics"]["features"]}
        assert features["f1"]["numerical_statistics"]["mean"] == pytest.approx(
            np.mean(sent_f1[variant]), abs=1e-9)

    compared = run("variants", "compare", "--endpoint", "ab", "--metric", "accuracy", *WINDOW,
                   "--variants", "control", "candidate", "--store", store_uri)
    accuracy = {v: quality["variants"][v]["metric"] for v in sent}
    assert compared["difference"] == pytest.approx(accuracy["candidate"] - accuracy["control"],
                                                   abs=1e-12)
    se = math.sqrt(sum(a * (1 - a) / ROWS for a in accuracy.values()))
    assert (compared["ci_high"] - compared["ci_low"]) / 2 == pytest.approx(1.96 * se, rel=0.12)
    assert compared["significant"] and compared["better"] == "candidate"
    assert compared["variants_found"] == {"candidate": ROWS, "control": ROWS}
    capsys.readouterr()
    code, _ = invoke("variants", "compare", "--endpoint", "ab", "--metric", "rmse", *WINDOW,
                     "--store", store_uri)
    assert code == 2 and "'rmse' is not a BinaryClassification metric" in capsys.readouterr().err

    run("dashboard", "--refresh", "--json", "--store", store_uri)
    page = (tmp_path / "store" / "dashboard" / "endpoints" / "ab.html").read_text()
    for variant in sent:
        cells = re.search(rf'<tr data-variant="{variant}" data-monitor="model-quality">(.*?)</tr>',
                          page).group(1)
        assert f"{accuracy[variant]:.4g}" in cells and f"{ROWS}" in cells

