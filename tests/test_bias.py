"""Clarify post-training bias metrics checked three ways: a hand-computed table, fairlearn's own group
metrics (and numpy/scikit-learn formulas written out here) on a random frame, and SageMaker's real files.
Also the bias-drift constraints: silent on a window from the baseline's population, firing when the facet's
positive predictions drop."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
    true_positive_rate_difference,
)
from sklearn.metrics import accuracy_score
from sklearn.neighbors import KNeighborsClassifier

from modelwatch.errors import UserError
from modelwatch.tasks.bias import compute_bias, facets_too_small
from modelwatch.tasks.bias_constraints import (
    check_bias,
    constraints_from_analysis,
    metric_noise,
    suggest_bias_constraints,
)
from modelwatch.tasks.bias_documents import (
    POST_TRAINING_METRICS,
    BiasAnalysis,
    BiasConstraints,
    BiasViolations,
    FacetSpec,
    MetricRange,
    parse_bounds,
    parse_facet,
    parse_label_values,
)
from modelwatch.tasks.store import json_dumps
from tests.sagemaker_samples import sample


def values(analysis: BiasAnalysis, facet: str, entry: int = 0) -> dict[str, float | None]:
    section = analysis.post_training_bias_metrics
    assert section is not None
    return {m.name: m.value for m in section.facets[facet][entry].metrics}


# ---- a table small enough to check by hand --------------------------------------------------------

# sex F is group d (6 rows), M is group a (10 rows); cell = confusion cell of (label, prediction).
HAND_ROWS = [
    # sex, label, predicted, group, x        cell
    ("F", 1, 1, "A", 1),    # TP d
    ("F", 0, 1, "A", 101),  # FP d
    ("F", 0, 1, "B", 102),  # FP d
    ("F", 1, 0, "A", 2),    # FN d
    ("F", 1, 0, "B", 100),  # FN d
    ("F", 0, 0, "B", 103),  # TN d
    ("M", 1, 1, "A", 0),    # TP a
    ("M", 1, 1, "A", 1),    # TP a
    ("M", 1, 1, "B", 2),    # TP a
    ("M", 1, 1, "B", 3),    # TP a
    ("M", 0, 1, "A", 4),    # FP a
    ("M", 0, 1, "B", 5),    # FP a
    ("M", 1, 0, "A", 100),  # FN a
    ("M", 0, 0, "A", 101),  # TN a
    ("M", 0, 0, "B", 102),  # TN a
    ("M", 0, 0, "B", 103),  # TN a
]


def hand_frame() -> pd.DataFrame:
    return pd.DataFrame(HAND_ROWS, columns=["sex", "label", "predicted", "group", "x"])


def test_every_metric_on_a_hand_checked_table():
    analysis = compute_bias(hand_frame(), label="label", predicted="predicted", facets=[parse_facet("sex=F")],
                            group="group", features=["x", "group", "sex"], min_members=1)
    got = values(analysis, "sex")
    # d: TP=1 FP=2 FN=2 TN=1, n=6; labels+ 3, labels- 3, predicted+ 3, predicted- 3
    # a: TP=4 FP=2 FN=1 TN=3, n=10; labels+ 5, labels- 5, predicted+ 6, predicted- 4
    expected = {
        "DPPL": 6 / 10 - 3 / 6,                 # 0.1
        "DI": (3 / 6) / (6 / 10),               # 0.8333
        "DCA": 5 / 6 - 3 / 3,                   # c_a - c_d = -0.1667
        "DCR": 3 / 3 - 5 / 4,                   # r_d - r_a = -0.25
        "RD": 4 / 5 - 1 / 3,                    # recall_a - recall_d = 0.4667
        "SD": 1 / 3 - 3 / 5,                    # specificity_d - specificity_a = -0.2667
        "DAR": 4 / 6 - 1 / 3,                   # precision_a - precision_d = 0.3333
        "DRR": 1 / 3 - 3 / 4,                   # TN_d/pred-_d - TN_a/pred-_a = -0.4167
        "AD": 7 / 10 - 2 / 6,                   # 0.3667
        "TE": 2 / 2 - 1 / 2,                    # FN_d/FP_d - FN_a/FP_a = 0.5
        # b = pred - label + 1 over all 16 rows: three 0s (FN), nine 1s (TP, TN), four 2s (FP);
        # mu = 17/16, sum b^2 = 25, GE = (sum (b/mu)^2 - N) / (N * 2 * 1)
        "GE": (25 / (17 / 16) ** 2 - 16) / (16 * 2),   # 0.1920
        # group A (8 rows): accepted 5 (2 of d), rejected 3 (1 of d): DD = 1/3 - 2/5
        # group B (8 rows): accepted 4 (1 of d), rejected 4 (2 of d): DD = 2/4 - 1/4
        "CDDPL": (8 * (1 / 3 - 2 / 5) + 8 * (2 / 4 - 1 / 4)) / 16,   # 0.0917
        # kNN (k=5) on a's x: x near 0..5 -> predicted 1, x near 100..103 -> 0. d rows: x=1 pred 1 -> 1,
        # x=101/102 pred 1 -> 0 (two flips down), x=2 pred 0 -> 1 (one flip up), x=100/103 pred 0 -> 0.
        "FT": (2 - 1) / 6,
    }
    assert set(got) == set(POST_TRAINING_METRICS) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    entry = analysis.post_training_bias_metrics.facets["sex"][0]
    assert [m.name for m in entry.metrics] == sorted(POST_TRAINING_METRICS)
    assert (entry.value_or_threshold, entry.members, entry.non_members) == ("F", 6, 10)
    assert entry.metric("DI").description == "Disparate Impact (DI)"
    assert entry.metric("DCA").description == "Difference in Conditional Acceptance (DCA)"
    assert analysis.post_training_bias_metrics.label_value_or_threshold == "1"


def test_each_value_of_a_column_is_a_facet_entry():
    analysis = compute_bias(hand_frame(), label="label", predicted="predicted", facets=[parse_facet("sex")],
                            min_members=1)
    entries = analysis.post_training_bias_metrics.facets["sex"]
    assert [e.value_or_threshold for e in entries] == ["F", "M"]
    female, male = values(analysis, "sex", 0), values(analysis, "sex", 1)
    assert male["DPPL"] == pytest.approx(-female["DPPL"])
    assert male["DI"] == pytest.approx(1 / female["DI"])
    assert male["GE"] == female["GE"]
    assert male["CDDPL"] is None and male["FT"] is None
    errors = {m.name: m.error for m in entries[1].metrics if m.error}
    assert errors == {"CDDPL": "Group variable is empty or not provided",
                      "FT": "Flip test needs numeric features: none given (besides the facet, label and "
                            "prediction)"}


def test_too_few_members_makes_every_metric_null_with_a_note():
    analysis = compute_bias(hand_frame(), label="label", predicted="predicted", facets=[parse_facet("sex=F")])
    entry = analysis.post_training_bias_metrics.facets["sex"][0]
    assert entry.members == 6
    assert all(m.value is None for m in entry.metrics)
    assert {m.error for m in entry.metrics} == {"facet group has 6 members; at least 30 are needed"}
    dumped = entry.dump()["metrics"][0]
    assert dumped["value"] is None and "error" in dumped
    assert facets_too_small(analysis) == ["sex=F: 6 members (at least 30 needed)"]
    # group a too small is reported as well
    analysis = compute_bias(hand_frame(), label="label", predicted="predicted", facets=[parse_facet("sex=F")],
                            min_members=8)
    assert facets_too_small(analysis) == ["sex=F: 6 members (at least 8 needed)"]
    analysis = compute_bias(hand_frame(), label="label", predicted="predicted", facets=[parse_facet("sex=M")],
                            min_members=8)
    assert facets_too_small(analysis) == ["sex=M: 6 rows outside the facet group (at least 8 needed)"]


def tiny(rows: list[tuple[str, int, int]]) -> dict[str, float | None]:
    frame = pd.DataFrame(rows, columns=["sex", "label", "predicted"])
    analysis = compute_bias(frame, label="label", predicted="predicted", facets=[parse_facet("sex=F")],
                            min_members=1)
    return values(analysis, "sex")


def test_zero_over_zero_and_infinity():
    # d: TP=3 FP=1 FN=0 TN=0 (no predicted negatives); a: TP=0 FP=1 FN=1 TN=1
    got = tiny([("F", 1, 1), ("F", 1, 1), ("F", 1, 1), ("F", 0, 1), ("M", 1, 0), ("M", 0, 1), ("M", 0, 0)])
    assert got["TE"] == 0 / 1 - 1 / 1                       # -1
    assert got["DRR"] == 0.0 - 1 / 2                        # d has no predicted negatives: 0/0 -> 0
    assert got["DAR"] == 0 / 1 - 3 / 4
    # d predicts everyone positive, a 1 of 3: DI = 1 / (1/3)
    assert got["DI"] == pytest.approx(3.0)
    rows = [("F", 1, 0), ("F", 1, 0), ("F", 0, 0), ("M", 1, 0), ("M", 0, 1)]
    infinite = compute_bias(pd.DataFrame(rows, columns=["sex", "label", "predicted"]), label="label",
                            predicted="predicted", facets=[parse_facet("sex=F")], min_members=1)
    got = values(infinite, "sex")
    # d: FN=2, FP=0 -> FN_d/FP_d = inf; a: FN=1, FP=1 -> TE = inf - 1 = inf
    assert got["TE"] == math.inf
    # d predicts nothing positive, a predicts 1 of 2: DI = 0 / 0.5 = 0; DCA: c_d = 2/0 = inf -> -inf
    assert got["DI"] == 0.0 and got["DCA"] == -math.inf
    text = json_dumps(infinite)
    assert '"value": "Infinity"' in text and '"value": "-Infinity"' in text
    dumped = infinite.dump()
    assert json.loads(json.dumps(dumped, allow_nan=False)) == dumped
    assert values(BiasAnalysis.model_validate(json.loads(text)), "sex")["TE"] == math.inf


# ---- against fairlearn and formulas written out here, on a random frame -------------------------

def random_frame(n: int = 4000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    member = rng.random(n) < 0.35
    x = rng.normal(size=(n, 2))
    label = rng.random(n) < 0.3 + 0.15 * member
    score = np.clip(0.25 + 0.35 * label - 0.1 * member + 0.1 * x[:, 0] + rng.normal(0, 0.2, n), 0, 1)
    return pd.DataFrame({
        "race": np.where(member, "b", rng.choice(["w", "x"], n)),
        "x1": x[:, 0], "x2": x[:, 1], "region": rng.integers(0, 5, n),
        "label": label.astype(int), "score": score,
    })


@pytest.fixture(scope="module")
def random_case() -> tuple[pd.DataFrame, dict[str, float | None]]:
    frame = random_frame()
    analysis = compute_bias(frame, label="label", predicted="score", facets=[parse_facet("race=b")],
                            group="region", features=["x1", "x2"])
    return frame, values(analysis, "race")


def arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (frame["race"] == "b").to_numpy(), frame["label"].to_numpy() == 1, frame["score"].to_numpy() >= 0.5


def test_fairlearn_group_metrics(random_case):
    frame, got = random_case
    member, y, yhat = arrays(frame)
    dpd = demographic_parity_difference(y, yhat, sensitive_features=member)
    assert abs(got["DPPL"]) == pytest.approx(dpd)
    rates = MetricFrame(metrics=selection_rate, y_true=y, y_pred=yhat, sensitive_features=member).by_group
    assert got["DPPL"] == pytest.approx(rates[False] - rates[True])
    assert min(got["DI"], 1 / got["DI"]) == pytest.approx(
        demographic_parity_ratio(y, yhat, sensitive_features=member))
    assert got["DI"] == pytest.approx(rates[True] / rates[False])
    assert abs(got["RD"]) == pytest.approx(true_positive_rate_difference(y, yhat, sensitive_features=member))
    tpr = MetricFrame(metrics=true_positive_rate, y_true=y, y_pred=yhat, sensitive_features=member).by_group
    assert got["RD"] == pytest.approx(tpr[False] - tpr[True])
    tnr = MetricFrame(metrics=true_negative_rate, y_true=y, y_pred=yhat, sensitive_features=member).by_group
    assert got["SD"] == pytest.approx(tnr[True] - tnr[False])
    accuracy = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=yhat, sensitive_features=member)
    assert abs(got["AD"]) == pytest.approx(accuracy.difference())
    assert got["AD"] == pytest.approx(accuracy.by_group[False] - accuracy.by_group[True])
    assert abs(got["DPPL"]) > 0.01 and abs(got["RD"]) > 0.01  # the frame is not trivially fair


def test_formulas_written_out(random_case):
    frame, got = random_case
    member, y, yhat = arrays(frame)
    a, d = ~member, member

    def share(mask: np.ndarray, within: np.ndarray) -> float:
        return np.sum(mask & within) / np.sum(within)

    assert got["DAR"] == pytest.approx(share(y, yhat & a) - share(y, yhat & d))
    assert got["DRR"] == pytest.approx(share(~y, ~yhat & d) - share(~y, ~yhat & a))
    assert got["DCA"] == pytest.approx(np.sum(y & a) / np.sum(yhat & a) - np.sum(y & d) / np.sum(yhat & d))
    assert got["DCR"] == pytest.approx(
        np.sum(~y & d) / np.sum(~yhat & d) - np.sum(~y & a) / np.sum(~yhat & a))
    assert got["TE"] == pytest.approx(np.sum(y & ~yhat & d) / np.sum(~y & yhat & d)
                                      - np.sum(y & ~yhat & a) / np.sum(~y & yhat & a))
    b = yhat.astype(float) - y + 1
    assert got["GE"] == pytest.approx(np.sum((b / b.mean()) ** 2 - 1) / (len(b) * 2))
    region = frame["region"].to_numpy()
    weighted = 0.0
    for g in np.unique(region):
        in_g = region == g
        dd = share(d, ~yhat & in_g) - share(d, yhat & in_g)
        weighted += np.sum(in_g) * dd
    assert got["CDDPL"] == pytest.approx(weighted / len(region))


def test_flip_test_against_scikit_learn(random_case):
    frame, got = random_case
    member, _, yhat = arrays(frame)
    features = frame[["x1", "x2"]].to_numpy()
    knn = KNeighborsClassifier(n_neighbors=5).fit(features[~member], yhat[~member])
    flipped = knn.predict(features[member])
    original = yhat[member]
    expected = (np.sum(original & ~flipped) - np.sum(~original & flipped)) / member.sum()
    assert got["FT"] == pytest.approx(expected)
    assert got["FT"] != 0


def test_flip_test_samples_large_groups():
    frame = random_frame()
    options = dict(label="label", predicted="score", facets=[parse_facet("race=b")], features=["x1", "x2"],
                   flip_test_rows=300)
    first = compute_bias(frame, **options)
    entry = first.post_training_bias_metrics.facets["race"][0]
    assert entry.flip_test_sampled == {"a": 300, "d": 300}
    assert entry.dump()["flip_test_sampled"] == {"a": 300, "d": 300}
    assert values(compute_bias(frame, **options), "race")["FT"] == entry.metric("FT").value  # seeded
    full = compute_bias(frame, label="label", predicted="score", facets=[parse_facet("race=b")],
                        features=["x1", "x2"])
    assert full.post_training_bias_metrics.facets["race"][0].flip_test_sampled is None
    assert entry.metric("FT").value == pytest.approx(values(full, "race")["FT"], abs=0.1)


def test_label_and_prediction_rules():
    base = random_frame(600, seed=3)
    member, y, yhat = arrays(base)
    reference = values(compute_bias(base, label="label", predicted="score", facets=[parse_facet("race=b")]),
                       "race")
    # the same labels as words, 1.0 floats, booleans and numeric strings all give the same numbers
    words = base.assign(label=np.where(y, "yes", "no"), predicted=np.where(yhat, "yes", "no"))
    same = compute_bias(words, label="label", predicted="predicted", facets=[parse_facet("race=b")],
                        label_values=parse_label_values("yes,y"))
    assert values(same, "race") == pytest.approx(reference)
    assert same.post_training_bias_metrics.label_value_or_threshold == "yes,y"
    for label, predicted in ((y.astype(float), yhat), (np.where(y, "1.0", "0"), yhat.astype(int))):
        mixed = base.assign(label=label, predicted=predicted)
        got = compute_bias(mixed, label="label", predicted="predicted", facets=[parse_facet("race=b")])
        assert values(got, "race") == pytest.approx(reference)
    # a numeric label above a threshold; prediction probabilities >= probability_threshold
    numeric = base.assign(label=np.where(y, 0.9, 0.2))
    got = compute_bias(numeric, label="label", predicted="score", facets=[parse_facet("race=b")],
                       label_values=parse_label_values(">0.5"))
    assert values(got, "race") == pytest.approx(reference)
    assert got.post_training_bias_metrics.label_value_or_threshold == "(0.5, 0.9]"
    ties = pd.DataFrame({"f": ["d"] * 2 + ["a"] * 2, "label": [1, 0, 1, 0], "p": [0.5, 0.49, 0.7, 0.1]})
    got = values(compute_bias(ties, label="label", predicted="p", facets=[parse_facet("f=d")], min_members=1),
                 "f")
    assert got["DPPL"] == 0.0  # 0.5 predicts positive (>=)
    higher = compute_bias(ties, label="label", predicted="p", facets=[parse_facet("f=d")], min_members=1,
                          probability_threshold=0.6)
    assert values(higher, "f")["DPPL"] == 0.5


def test_numeric_threshold_facet_and_missing_values():
    frame = random_frame(2000, seed=5)
    frame["age"] = np.random.default_rng(1).integers(18, 80, len(frame)).astype(float)
    frame.loc[:9, "age"] = np.nan
    frame.loc[10:14, "label"] = None
    analysis = compute_bias(frame, label="label", predicted="score", facets=[parse_facet("age>40")])
    entry = analysis.post_training_bias_metrics.facets["age"][0]
    assert entry.value_or_threshold == "(40, 79]"
    kept = frame.iloc[15:]
    assert entry.members == int((kept["age"] > 40).sum())
    assert entry.members + entry.non_members == len(kept)
    younger, older = kept.loc[kept["age"] <= 40, "score"], kept.loc[kept["age"] > 40, "score"]
    assert entry.metric("DPPL").value == pytest.approx((younger >= 0.5).mean() - (older >= 0.5).mean())


def test_user_errors():
    frame = hand_frame()
    with pytest.raises(UserError, match="'nope'"):
        compute_bias(frame, label="label", predicted="predicted", facets=[parse_facet("nope")])
    with pytest.raises(UserError, match="non-numeric"):
        compute_bias(frame, label="label", predicted="predicted", facets=[parse_facet("sex>1")])
    with pytest.raises(UserError, match="distinct values"):
        compute_bias(random_frame(), label="label", predicted="score", facets=[parse_facet("x1")])
    with pytest.raises(UserError, match="no facet"):
        compute_bias(frame, label="label", predicted="predicted", facets=[])


def test_parse_facet_and_label_values():
    assert parse_facet("Sex") == FacetSpec(name="Sex")
    assert parse_facet(" Sex = 0 ") == FacetSpec(name="Sex", values=["0"])
    assert parse_facet("Sex=0,1") == FacetSpec(name="Sex", values=["0", "1"])
    assert parse_facet("Age>40") == FacetSpec(name="Age", threshold=40.0)
    for bad in ("", "=0", "Sex=", "Sex=0,,1", "Age>", "Age>old", "Age>=40", ">3"):
        with pytest.raises(UserError, match="facet"):
            parse_facet(bad)
    assert parse_label_values(None) is None
    assert parse_label_values("1") == ["1"]
    assert parse_label_values("1, yes") == ["1", "yes"]
    assert parse_label_values(">0.5") == 0.5
    for bad in ("", ">x", "1,,2"):
        with pytest.raises(UserError, match="label values"):
            parse_label_values(bad)


def test_parse_bounds():
    assert parse_bounds(["DI=0.8:1.25", "DPPL=:0.1", "te=-0.1:", "DCAcc=-1:1"]) == {
        "DI": (0.8, 1.25), "DPPL": (None, 0.1), "TE": (-0.1, None), "DCA": (-1.0, 1.0)}
    for bad, message in (("DI", "DI'"), ("DI=0.8", "'DI=0.8'"), ("XX=0:1", "unknown metric 'XX'"),
                         ("DI=:", "neither"), ("DI=2:1", "above"), ("DI=a:1", "'a' is not a number")):
        with pytest.raises(UserError, match=message):
            parse_bounds([bad])
    with pytest.raises(UserError, match="twice"):
        parse_bounds(["DI=0.8:1.25", "di=0.5:2"])


# ---- SageMaker's files ---------------------------------------------------------------------------

ANALYSES = [
    "clarify_bias.json", "clarify_bias_analysis_fraud.json", "clarify_bias_drift_baseline_analysis.json",
    "clarify_data_bias_analysis_good.json", "clarify_data_bias_analysis_bad.json",
]


@pytest.mark.parametrize("name", ANALYSES)
def test_sagemaker_analysis_round_trip(name):
    raw = json.loads(sample(name).read_text())
    analysis = BiasAnalysis.model_validate(raw)
    assert analysis.dump() == raw
    assert json.loads(json_dumps(analysis)) == raw


def test_sagemaker_violations_round_trip():
    raw = json.loads(sample("clarify_bias_drift_constraint_violations.json").read_text())
    assert BiasViolations.model_validate(raw).dump() == raw


def sagemaker_baseline() -> BiasAnalysis:
    return BiasAnalysis.model_validate_json(sample("clarify_bias_drift_baseline_analysis.json").read_text())


def with_values(analysis: BiasAnalysis, **changes: float) -> BiasAnalysis:
    copy = analysis.model_copy(deep=True)
    for metric in copy.post_training_bias_metrics.facets["Sex"][0].metrics:
        metric.value = changes.get(metric.name, metric.value)
    return copy


def test_sagemaker_baseline_as_constraints():
    baseline = sagemaker_baseline()
    constraints = constraints_from_analysis(baseline)
    assert check_bias(constraints, baseline).violations == []
    farther = check_bias(constraints, with_values(baseline, DPPL=0.35))
    assert [v.dump() for v in farther.violations] == [{
        "facet": "Sex", "facet_value": "0", "metric_name": "DPPL",
        "constraint_check_type": "bias_drift_check",
        "description": "Metric value 0.35 doesn't meet the baseline constraint requirement "
                       "0.2199248120300752",
    }]

    def names(**changes: float) -> list[str]:
        return [v.metric_name for v in check_bias(constraints, with_values(baseline, **changes)).violations]

    # the developer guide's example: farther on the other side of fair is a violation too
    assert names(DPPL=-0.3) == ["DPPL"]
    assert names(DPPL=0.1, CDDPL=-0.2, DI=1.5) == []  # DI: |1.5 - 1| < |0.178 - 1|
    assert names(DI=0.1) == ["DI"]


def test_sagemaker_violations_reproduced():
    """The 2024 monitoring execution's current values give exactly its 9 violations."""
    expected = json.loads(sample("clarify_bias_drift_constraint_violations.json").read_text())["violations"]
    current = {v["metric_name"]: float(v["description"].split()[2]) for v in expected}
    assert current["TE"] == math.inf
    baseline = sagemaker_baseline()
    got = check_bias(constraints_from_analysis(baseline), with_values(baseline, **current))
    key = lambda v: v["metric_name"]  # noqa: E731
    assert sorted((v.dump() for v in got.violations), key=key) == sorted(expected, key=key)


def test_missing_facets_are_notes_not_violations():
    baseline = sagemaker_baseline()
    constraints = constraints_from_analysis(baseline)
    current = baseline.model_copy(deep=True)
    section = current.post_training_bias_metrics
    section.facets["Sex"][0].value_or_threshold = "1"
    section.facets["Sex"][0].metrics = [m for m in section.facets["Sex"][0].metrics if m.name != "FT"]
    result = check_bias(constraints, current)
    assert result.violations == []
    assert result.notes == ["Sex=0 is in the constraints but not in the current analysis"]
    section.facets["Sex"][0].value_or_threshold = "0"
    assert check_bias(constraints, current).notes == ["Sex=0: metric FT is not in the current analysis"]
    section.facets = {"Race": section.facets["Sex"]}
    assert check_bias(constraints, current).notes == [
        "facet Sex is in the constraints but not in the current analysis"]
    assert "violations" in check_bias(constraints, current).dump()
    assert "notes" not in check_bias(constraints, current).dump()


# ---- suggested constraints on drifting windows --------------------------------------------------

def population(n: int, seed: int, drop: float = 0.0) -> pd.DataFrame:
    """A model fair to sex=1 at drop 0; `drop` lowers that group's scores on the logit scale."""
    rng = np.random.default_rng(seed)
    sex = (rng.random(n) < 0.4).astype(int)
    x = rng.normal(size=(n, 3))
    logit = 0.8 * x[:, 0] - 0.5 * x[:, 1] - 0.2
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    score = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.5, n) - drop * sex)))
    return pd.DataFrame({"sex": sex, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2],
                         "age": rng.integers(18, 80, n), "label": label, "score": score})


def analyse(frame: pd.DataFrame, facet: str = "sex=1") -> BiasAnalysis:
    return compute_bias(frame, label="label", predicted="score", facets=[parse_facet(facet)], group="age",
                        features=["x1", "x2", "x3"])


@pytest.fixture(scope="module")
def drift_baseline() -> BiasAnalysis:
    return analyse(population(20_000, seed=0))


def test_suggested_ranges(drift_baseline):
    constraints = suggest_bias_constraints(drift_baseline, tolerance=0.1)
    ranges = constraints.facets["sex"][0].metrics
    assert sorted(ranges) == sorted(POST_TRAINING_METRICS)
    base = values(drift_baseline, "sex")
    dppl = ranges["DPPL"]
    assert (dppl.lower, dppl.upper) == (pytest.approx(-(abs(base["DPPL"]) + 0.1)),
                                        pytest.approx(abs(base["DPPL"]) + 0.1))
    di = ranges["DI"]  # on the log scale: [min(b, 1/b) / 1.1, max(b, 1/b) * 1.1]
    assert di.upper == pytest.approx(max(base["DI"], 1 / base["DI"]) * 1.1)
    assert di.lower == pytest.approx(1 / di.upper)
    reloaded = BiasConstraints.model_validate(json.loads(json_dumps(constraints)))
    assert reloaded == constraints


def test_same_population_window_has_no_violation(drift_baseline):
    # TE (a difference of FN/FP ratios) varies with sd ~0.10 between 5,000-row windows of this population:
    # an additive tolerance of 0.1 would flag it about every other window, so it gets an absolute bound.
    constraints = suggest_bias_constraints(drift_baseline, bounds=parse_bounds(["TE=-1:1"]))
    for seed in (1, 2, 3):
        result = check_bias(constraints, analyse(population(5_000, seed=seed)))
        assert result.violations == [] and result.notes == []


def test_dropping_positive_predictions_violates_dppl_and_di(drift_baseline):
    constraints = suggest_bias_constraints(drift_baseline)
    window = analyse(population(5_000, seed=11, drop=0.5))
    got = values(window, "sex")
    assert got["DPPL"] > 0.15 and got["DI"] < 0.7
    violations = {v.metric_name: v for v in check_bias(constraints, window).violations}
    assert {"DPPL", "DI"} <= set(violations)
    dppl = constraints.facets["sex"][0].metrics["DPPL"]
    assert violations["DPPL"].description == (
        f"Metric value {got['DPPL']!r} doesn't meet the baseline constraint requirement "
        f"[{dppl.lower!r}, {dppl.upper!r}]")
    assert (violations["DI"].facet, violations["DI"].facet_value) == ("sex", "1")


def test_absolute_di_bound(drift_baseline):
    constraints = suggest_bias_constraints(drift_baseline, bounds=parse_bounds(["DI=0.8:1.25"]))
    assert constraints.facets["sex"][0].metrics["DI"] == MetricRange(lower=0.8, upper=1.25, source="absolute")
    mild = analyse(population(5_000, seed=12, drop=0.2))
    assert 0.8 < values(mild, "sex")["DI"] < 0.9  # outside the baseline range, inside the absolute one
    from_baseline = suggest_bias_constraints(drift_baseline)
    assert "DI" in {v.metric_name for v in check_bias(from_baseline, mild).violations}
    assert "DI" not in {v.metric_name for v in check_bias(constraints, mild).violations}
    strong = analyse(population(5_000, seed=13, drop=0.5))
    di = [v for v in check_bias(constraints, strong).violations if v.metric_name == "DI"]
    assert di and di[0].description.endswith("requirement [0.8, 1.25]")


def test_too_small_facet_is_a_note_not_a_violation(drift_baseline):
    constraints = suggest_bias_constraints(drift_baseline)
    frame = population(2_000, seed=14, drop=2.0)
    frame = pd.concat([frame[frame["sex"] == 0], frame[frame["sex"] == 1].head(12)])
    window = analyse(frame)
    assert all(value is None for value in values(window, "sex").values())
    assert check_bias(constraints, window).violations == []
    assert facets_too_small(window) == ["sex=1: 12 members (at least 30 needed)"]


def test_threshold_facets_match_across_windows():
    baseline = analyse(population(20_000, seed=0), facet="age>40")
    window = analyse(population(5_000, seed=1).query("age < 75"), facet="age>40")
    assert baseline.post_training_bias_metrics.facets["age"][0].value_or_threshold == "(40, 79]"
    assert window.post_training_bias_metrics.facets["age"][0].value_or_threshold == "(40, 74]"
    result = check_bias(suggest_bias_constraints(baseline, bounds=parse_bounds(["TE=-2:2"])), window)
    assert result.notes == [] and result.violations == []


def test_infinite_and_null_baseline_values():
    baseline = with_values(sagemaker_baseline(), TE=math.inf, DI=0.0, FT=None)
    ranges = suggest_bias_constraints(baseline).facets["Sex"][0].metrics
    assert (ranges["TE"].lower, ranges["TE"].upper) == (-0.1, None)
    assert (ranges["DI"].lower, ranges["DI"].upper) == (None, pytest.approx(1.1))
    assert "FT" not in ranges
    dumped = suggest_bias_constraints(baseline).dump()
    assert dumped["facets"]["Sex"][0]["metrics"]["TE"]["baseline"] == "Infinity"
    assert "FT" in suggest_bias_constraints(baseline, bounds={"FT": (-0.2, 0.2)}).facets["Sex"][0].metrics
    current = with_values(sagemaker_baseline(), TE=-0.5)
    descriptions = [v.description for v in check_bias(suggest_bias_constraints(baseline), current).violations]
    assert descriptions == ["Metric value -0.5 doesn't meet the baseline constraint requirement "
                            "[-0.1, Infinity)"]
    with pytest.raises(UserError, match="tolerance"):
        suggest_bias_constraints(baseline, tolerance=-1)
    with pytest.raises(UserError, match="post_training_bias_metrics"):
        suggest_bias_constraints(BiasAnalysis.model_validate_json(
            sample("clarify_data_bias_analysis_good.json").read_text()))


def test_noise_allowance_keeps_same_population_windows_quiet():
    # Without an absolute TE bound: the baseline's bootstrap spread widens the noisy metrics' ranges,
    # so windows of the expected size drawn like the baseline raise nothing, while a fixed tolerance
    # flags TE in many of them; the drifted window still violates DPPL.
    frame = population(20_000, seed=0)
    settings = {"label": "label", "predicted": "score", "facets": [parse_facet("sex=1")], "group": "age",
                "features": ["x1", "x2", "x3"]}
    noise = metric_noise(frame, window_rows=2_000, draws=30, **settings)
    te_runs = [values(analyse(population(2_000, seed=s)), "sex")["TE"] for s in range(100, 130)]
    assert noise[("sex", "1", "TE")] == pytest.approx(4 * np.std(te_runs, ddof=1), rel=0.5)
    baseline = analyse(frame)
    with_noise = suggest_bias_constraints(baseline, tolerance=0.1, noise=noise)
    fixed = suggest_bias_constraints(baseline, tolerance=0.1)
    windows = [analyse(population(2_000, seed=s)) for s in range(40, 60)]
    assert sum(bool(check_bias(with_noise, w).violations) for w in windows) == 0
    assert sum(bool(check_bias(fixed, w).violations) for w in windows) >= 3
    drifted = check_bias(with_noise, analyse(population(2_000, seed=99, drop=1.5)))
    assert "DPPL" in {v.metric_name for v in drifted.violations}
