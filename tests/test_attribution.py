"""Feature attribution: global SHAP values against closed forms (linear and additive models) and against
shap's tree explainer checked with the model's own raw output, nDCG against the documented example and
sklearn, the drift check on a healthy and a collapsed window, and SageMaker's analysis.json samples."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import shap
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import ndcg_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelwatch.errors import UserError
from modelwatch.tasks.attribution import (
    DEFAULT_THRESHOLD,
    AttributionAnalysis,
    ExplainSettings,
    LabelAttribution,
    check_attribution,
    explain,
    moved_features,
    ndcg,
)
from modelwatch.tasks.baselines import parse_document
from modelwatch.tasks.store import json_dumps
from tests.sagemaker_samples import sample

FEATURES = ["x0", "x1", "x2", "x3"]
SCALES = np.array([1.0, 2.0, 0.5, 3.0])
MEANS = np.array([0.0, 5.0, -1.0, 10.0])
WEIGHTS = np.array([1.5, -0.4, 2.0, 0.05])


def draw(n: int, seed: int) -> pd.DataFrame:
    """Independent features with different scales and means."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 4)) * SCALES + MEANS, columns=FEATURES)


def linear_target(frame: pd.DataFrame, seed: int) -> np.ndarray:
    return frame.to_numpy() @ WEIGHTS + 3.0 + np.random.default_rng(seed).normal(0, 0.1, len(frame))


def binary_target(frame: pd.DataFrame, seed: int) -> np.ndarray:
    logit = (frame.to_numpy() - MEANS) / SCALES @ np.array([2.0, 1.0, -0.6, 0.3])
    return (np.random.default_rng(seed).random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)


def aggregate(local: np.ndarray, method: str) -> np.ndarray:
    return {
        "mean_abs": lambda v: np.abs(v).mean(axis=0),
        "median": lambda v: np.median(np.abs(v), axis=0),
        "mean_sq": lambda v: np.square(v).mean(axis=0),
    }[method](local)


def values(analysis: AttributionAnalysis, label: str = "label0") -> np.ndarray:
    found = analysis.labels()[label].global_shap_values
    return np.array([found[name] for name in FEATURES])


# ---- closed forms: f(x) = w.x + b on independent features, interventional background ----------

@pytest.mark.parametrize("agg_method", ["mean_abs", "median", "mean_sq"])
def test_linear_regression_matches_the_closed_form(agg_method: str) -> None:
    train, window, background = draw(2000, 0), draw(400, 1), draw(60, 2)
    model = LinearRegression().fit(train, linear_target(train, 0))
    settings = ExplainSettings(agg_method=agg_method)  # 400 rows and 60 background rows: all are used
    analysis = explain(model, window, FEATURES, background=background, settings=settings)

    local = model.coef_ * (window.to_numpy() - background.to_numpy().mean(axis=0))
    np.testing.assert_allclose(values(analysis), aggregate(local, agg_method), rtol=1e-9, atol=1e-12)
    attribution = analysis.labels()["label0"]
    assert attribution.expected_value == pytest.approx(model.predict(background).mean(), rel=1e-12)
    info = analysis.modelwatch
    assert info is not None
    assert (info.explainer, info.output, info.agg_method) == ("linear", "prediction", agg_method)
    assert (info.records_explained, info.records_available, info.background_records) == (400, 400, 60)


def test_logistic_regression_is_explained_in_log_odds() -> None:
    train, window, background = draw(3000, 3), draw(300, 4), draw(50, 5)
    model = LogisticRegression().fit(train, binary_target(train, 3))
    analysis = explain(model, window, FEATURES, background=background, label_names=["default"])

    local = model.coef_[0] * (window.to_numpy() - background.to_numpy().mean(axis=0))
    np.testing.assert_allclose(values(analysis, "default"), np.abs(local).mean(axis=0), rtol=1e-9)
    expected = analysis.labels()["default"].expected_value
    assert expected == pytest.approx(model.decision_function(background).mean(), rel=1e-12)
    assert analysis.modelwatch is not None and analysis.modelwatch.output == "log-odds"


def test_multiclass_logistic_regression_has_one_label_per_class() -> None:
    train, window, background = draw(3000, 6), draw(200, 7), draw(40, 8)
    classes = np.digitize(train["x0"], [-0.5, 0.5])
    model = LogisticRegression().fit(train, classes)
    analysis = explain(model, window, FEATURES, background=background, label_names=["low", "mid", "high"])

    assert list(analysis.labels()) == ["low", "mid", "high"]
    centred = window.to_numpy() - background.to_numpy().mean(axis=0)
    margins = model.decision_function(background).mean(axis=0)
    for k, label in enumerate(["low", "mid", "high"]):
        np.testing.assert_allclose(values(analysis, label), np.abs(model.coef_[k] * centred).mean(axis=0),
                                   rtol=1e-9)
        assert analysis.labels()[label].expected_value == pytest.approx(margins[k], rel=1e-9, abs=1e-12)


# ---- tree ensembles: shap's tree explainer, checked against the model's own raw output ----------

def test_gradient_boosting_values_add_up_to_the_models_log_odds() -> None:
    train, window, background = draw(2000, 9), draw(300, 10), draw(50, 11)
    model = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0)
    model.fit(train, binary_target(train, 9))
    analysis = explain(model, window, FEATURES, background=background)

    reference = shap.TreeExplainer(model, data=background, feature_perturbation="interventional")
    local = reference.shap_values(window)
    raw = model.decision_function(window)
    np.testing.assert_allclose(local.sum(axis=1) + reference.expected_value, raw, atol=1e-6)
    np.testing.assert_allclose(values(analysis), np.abs(local).mean(axis=0), rtol=1e-9)
    # interventional: the base value is the mean raw output over the background
    expected = analysis.labels()["label0"].expected_value
    assert expected == pytest.approx(model.decision_function(background).mean(), abs=1e-6)
    info = analysis.modelwatch
    assert info is not None
    assert (info.explainer, info.output, info.feature_perturbation) == ("tree", "log-odds", "interventional")
    # the most important feature of the generating logit leads
    assert max(analysis.labels()["label0"].global_shap_values.items(), key=lambda kv: kv[1])[0] == "x0"


def test_binary_random_forest_keeps_the_positive_class_in_probability() -> None:
    train, window, background = draw(1500, 12), draw(200, 13), draw(40, 14)
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)
    model.fit(train, binary_target(train, 12))
    analysis = explain(model, window, FEATURES, background=background)

    assert list(analysis.labels()) == ["label0"]
    reference = shap.TreeExplainer(model, data=background, feature_perturbation="interventional")
    local = reference.shap_values(window)
    np.testing.assert_allclose(local[:, :, 1].sum(axis=1) + analysis.labels()["label0"].expected_value,
                               model.predict_proba(window)[:, 1], atol=1e-6)
    np.testing.assert_allclose(values(analysis), np.abs(local[:, :, 1]).mean(axis=0), rtol=1e-9)
    assert analysis.labels()["label0"].expected_value == pytest.approx(
        model.predict_proba(background)[:, 1].mean(), abs=1e-9)
    assert analysis.modelwatch is not None and analysis.modelwatch.output == "probability"


def test_hist_gradient_boosting_uses_the_path_dependent_algorithm() -> None:
    train, window = draw(1500, 15), draw(200, 16)
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0).fit(train, linear_target(train, 15))
    analysis = explain(model, window, FEATURES)

    reference = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    local = reference.shap_values(window)
    np.testing.assert_allclose(local.sum(axis=1) + reference.expected_value, model.predict(window), atol=1e-6)
    np.testing.assert_allclose(values(analysis), np.abs(local).mean(axis=0), rtol=1e-9)
    info = analysis.modelwatch
    assert info is not None
    assert (info.feature_perturbation, info.background_records) == ("tree_path_dependent", 0)


# ---- model-agnostic: the permutation explainer on a pipeline -----------------------------------

def mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 0.5, n),
        "region": rng.choice(["north", "south", "east"], n),
    })
    frame.loc[rng.random(n) < 0.1, "income"] = np.nan
    return frame


def test_pipeline_with_categories_and_missing_values_matches_the_additive_closed_form() -> None:
    """An additive model's exact SHAP value is f_i(x_i) - mean over the background of f_i: one antithetic
    permutation recovers it, through the category codes and the imputer."""
    columns = ["age", "income", "region"]
    train, window, background = mixed_frame(800, 17), mixed_frame(60, 18), mixed_frame(20, 19)
    target = 0.3 * train["age"] + 0.0001 * train["income"].fillna(20000) + train["region"].map(
        {"north": 2.0, "south": -1.0, "east": 0.5})
    model = Pipeline([
        ("pre", ColumnTransformer([
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age", "income"]),
        ])),
        ("reg", LinearRegression()),
    ]).fit(train[columns], target)
    numpy_state = np.random.get_state()[1].copy()
    analysis = explain(model, window, columns, background=background)
    assert (np.random.get_state()[1] == numpy_state).all()  # shap's global seeding is undone

    anchor = background.iloc[[0] * len(window)].reset_index(drop=True)
    anchor_bg = background.iloc[[0] * len(background)].reset_index(drop=True)
    expected = {}
    for name in columns:
        varied = anchor.assign(**{name: window[name].to_numpy()})
        varied_bg = anchor_bg.assign(**{name: background[name].to_numpy()})
        local = model.predict(varied) - model.predict(varied_bg).mean()
        expected[name] = np.abs(local).mean()
    found = analysis.labels()["label0"]
    assert found.global_shap_values == pytest.approx(expected, rel=1e-6)
    assert found.expected_value == pytest.approx(model.predict(background).mean(), rel=1e-12)
    info = analysis.modelwatch
    assert info is not None
    assert (info.explainer, info.output, info.permutations) == ("permutation", "prediction", 1)
    assert (info.records_explained, info.background_records) == (60, 20)


def test_multiclass_gradient_boosting_falls_back_to_permutation_on_probabilities() -> None:
    train, window, background = draw(600, 20), draw(30, 21), draw(10, 22)
    model = GradientBoostingClassifier(n_estimators=5, random_state=0)
    model.fit(train, np.digitize(train["x0"], [-0.5, 0.5]))
    analysis = explain(model, window, FEATURES, background=background)

    assert list(analysis.labels()) == ["label0", "label1", "label2"]
    expected = [analysis.labels()[f"label{k}"].expected_value for k in range(3)]
    np.testing.assert_allclose(expected, model.predict_proba(background).mean(axis=0), atol=1e-12)
    assert analysis.modelwatch is not None and analysis.modelwatch.explainer == "permutation"
    assert analysis.modelwatch.output == "probability"


# ---- sampling and errors -----------------------------------------------------------------------

def test_sampling_is_seeded_and_bounded() -> None:
    train, window = draw(2000, 23), draw(5000, 24)
    window.loc[window.index[:50], "x2"] = np.nan
    model = LinearRegression().fit(train, linear_target(train, 23))
    small = ExplainSettings(sample_size=300, background_size=40)

    first = explain(model, window, FEATURES, settings=small)
    assert first.modelwatch is not None
    assert (first.modelwatch.records_explained, first.modelwatch.records_available) == (300, 5000)
    assert (first.modelwatch.records_skipped, first.modelwatch.background_records) == (50, 40)
    assert explain(model, window, FEATURES, settings=small) == first
    other = explain(model, window, FEATURES, settings=small.model_copy(update={"seed": 1}))
    assert values(other).tolist() != values(first).tolist()
    assert ndcg(first.labels()["label0"].global_shap_values,
                other.labels()["label0"].global_shap_values) > 0.99


def test_user_errors_name_the_problem() -> None:
    train = draw(500, 25)
    model = LinearRegression().fit(train, linear_target(train, 25))
    with pytest.raises(UserError, match=r"no column 'x3'.*columns present: \['x0', 'x1', 'x2'\]"):
        explain(model, train.drop(columns="x3"), FEATURES)
    with pytest.raises(UserError, match="feature 'x1' is not numeric"):
        explain(model, train.assign(x1="high"), FEATURES)
    with pytest.raises(UserError, match="fitted on the columns"):
        explain(model, train.assign(x9=1.0), ["x0", "x1", "x2", "x9"])
    with pytest.raises(UserError, match="label names"):
        explain(model, train, FEATURES, label_names=["a", "b"])


# ---- nDCG --------------------------------------------------------------------------------------

def test_ndcg_reproduces_the_documented_example() -> None:
    training = {"SAT score": 0.70, "GPA": 0.50, "Class rank": 0.05}
    live = {"SAT score": 0.10, "GPA": 0.20, "Class rank": 0.70}
    dcg = 0.05 / 1 + 0.50 / math.log2(3) + 0.70 / 2
    idcg = 0.70 / 1 + 0.50 / math.log2(3) + 0.05 / 2
    assert ndcg(training, live) == pytest.approx(dcg / idcg, rel=1e-12)
    assert round(ndcg(training, live), 3) == 0.688


def test_ndcg_equals_sklearn() -> None:
    rng = np.random.default_rng(26)
    for _ in range(50):
        m = int(rng.integers(2, 30))
        before, after = rng.random(m), rng.random(m)
        names = [f"f{i}" for i in range(m)]
        score = ndcg(dict(zip(names, before, strict=True)), dict(zip(names, after, strict=True)))
        assert score == pytest.approx(ndcg_score([before], [after]), rel=1e-12)
    # ties in the current values: averaged over the tied positions, as sklearn does
    before, after = rng.random(12), np.round(rng.random(12), 1)
    names = [f"f{i}" for i in range(12)]
    score = ndcg(dict(zip(names, before, strict=True)), dict(zip(names, after, strict=True)))
    assert score == pytest.approx(ndcg_score([before], [after]), rel=1e-12)


def test_ndcg_edges() -> None:
    weights = {"a": 0.4, "b": 0.3, "c": 0.3, "d": 0.0}
    assert ndcg(weights, dict(weights)) == 1.0
    assert ndcg(weights, {name: 2 * value for name, value in weights.items()}) == 1.0
    assert ndcg({}, {}) == 1.0
    assert ndcg({"a": 0.0}, {"a": 1.0}) == 1.0
    # a missing feature counts 0 on the side it is missing from: gains a=1, b=.5, c=0; order b, c, a
    score = ndcg({"a": 1.0, "b": 0.5}, {"b": 0.5, "c": 0.3})
    assert score == pytest.approx((0.5 + 0.0 / math.log2(3) + 1.0 / 2) / (1.0 + 0.5 / math.log2(3)))
    # key order does not matter, even with ties
    assert ndcg({"a": 1.0, "b": 0.5, "c": 0.2}, {"a": 0.1, "b": 0.1, "c": 0.9}) == ndcg(
        {"c": 0.2, "b": 0.5, "a": 1.0}, {"c": 0.9, "b": 0.1, "a": 0.1})


def test_moved_features_name_rank_and_value() -> None:
    training = {"SAT score": 0.70, "GPA": 0.50, "Class rank": 0.05}
    live = {"SAT score": 0.10, "GPA": 0.20, "Class rank": 0.70}
    assert moved_features(training, live) == [
        "Class rank: rank 3 -> 1, 0.05 -> 0.7",
        "SAT score: rank 1 -> 3, 0.7 -> 0.1",
        "GPA: rank 2 -> 2, 0.5 -> 0.2",
    ]
    assert moved_features(training, live, top=1) == ["Class rank: rank 3 -> 1, 0.05 -> 0.7"]
    assert moved_features({"a": 0.8, "b": 0.2}, {"b": 0.2}) == [
        "a: rank 1 -> absent, 0.8 -> absent", "b: rank 2 -> 1, 0.2 -> 0.2"]
    assert moved_features(training, dict(training)) == []


# ---- the drift check ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drift_case() -> tuple[GradientBoostingClassifier, pd.DataFrame]:
    train = draw(3000, 27)
    model = GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0)
    return model.fit(train, binary_target(train, 27)), train


def test_a_window_from_the_training_distribution_does_not_drift(drift_case) -> None:
    model, train = drift_case
    settings = ExplainSettings(sample_size=500, background_size=50)
    baseline = explain(model, train, FEATURES, settings=settings)
    window = explain(model, draw(2000, 28), FEATURES, background=train, settings=settings)

    violations, scores = check_attribution(baseline, window)
    assert scores["label0"] >= DEFAULT_THRESHOLD
    assert violations.violations == []


def test_a_collapsed_feature_is_a_violation_naming_it(drift_case) -> None:
    model, train = drift_case
    settings = ExplainSettings(sample_size=500, background_size=50)
    baseline = explain(model, train, FEATURES, settings=settings)
    collapsed = draw(2000, 29).assign(x0=train["x0"].mean())  # the strongest feature no longer varies
    window = explain(model, collapsed, FEATURES, background=train, settings=settings)

    violations, scores = check_attribution(baseline, window)
    score = scores["label0"]
    assert score < DEFAULT_THRESHOLD
    before = baseline.labels()["label0"].global_shap_values
    after = window.labels()["label0"].global_shap_values
    assert score == ndcg(before, after)
    [violation] = violations.violations
    assert (violation.label, violation.metric_name, violation.constraint_check_type) == (
        "label0", "shap", "feature_attribution_drift_check")
    assert violation.description.startswith(
        f"Feature attribution drift {score} exceeds threshold 0.9; features that moved most: x0: rank 1 -> ")
    assert set(violation.model_dump()) == {"label", "metric_name", "constraint_check_type", "description"}
    # a stricter or looser threshold moves the decision, not the score
    assert check_attribution(baseline, window, threshold=score / 2)[0].violations == []


def test_labels_on_one_side_only_are_not_scored() -> None:
    weights = LabelAttribution(global_shap_values={"a": 0.5, "b": 0.1}, expected_value=0.2)
    baseline = AttributionAnalysis(explanations={"kernel_shap": {"label0": weights, "label1": weights}})
    current = AttributionAnalysis(explanations={"kernel_shap": {"label1": weights, "label2": weights}})
    violations, scores = check_attribution(baseline, current)
    assert scores == {"label1": 1.0}
    assert violations.violations == []
    assert [(c.subject, c.value, c.passed) for c in violations.checks] == [("label1", 1.0, True)]
    assert set(baseline.labels()) - set(scores) == {"label0"}
    assert set(current.labels()) - set(scores) == {"label2"}


def test_our_documents_round_trip(drift_case) -> None:
    model, train = drift_case
    analysis = explain(model, train, FEATURES, settings=ExplainSettings(sample_size=100, background_size=20))
    raw = json.loads(json_dumps(analysis))
    assert set(raw) == {"version", "explanations", "modelwatch"}
    assert set(raw["explanations"]["kernel_shap"]["label0"]) == {"global_shap_values", "expected_value"}
    assert parse_document(AttributionAnalysis, json_dumps(analysis), "ours") == analysis


# ---- SageMaker's analysis.json files -----------------------------------------------------------

@pytest.mark.parametrize("name", [
    "clarify_feature_attribution_baseline_analysis.json",
    "clarify_explainability_analysis_fraud.json",
    "clarify_explanability.json",
])
def test_sagemaker_analysis_files_load_and_round_trip(name: str) -> None:
    text = sample(name).read_text()
    analysis = parse_document(AttributionAnalysis, text, name)
    assert json.loads(json_dumps(analysis)) == json.loads(text)
    assert analysis.labels()
    for attribution in analysis.labels().values():
        assert attribution.global_shap_values and all(v >= 0 for v in attribution.global_shap_values.values())


def test_the_real_baseline_against_itself_has_no_drift() -> None:
    name = "clarify_feature_attribution_baseline_analysis.json"
    baseline = parse_document(AttributionAnalysis, sample(name).read_text(), name)
    assert list(baseline.labels()) == ["0.7956783771514893"]  # a score used as the label key
    violations, scores = check_attribution(baseline, baseline.model_copy(deep=True))
    assert scores == {"0.7956783771514893": 1.0}
    assert violations.violations == []


def test_the_sdk_fixture_keeps_pdp_and_text_explanations() -> None:
    name = "clarify_explanability.json"
    analysis = parse_document(AttributionAnalysis, sample(name).read_text(), name)
    assert isinstance(analysis.explanations["pdp"], list)
    assert analysis.labels()["label1"].model_extra["global_top_shap_text"]["[feature_name_1]"]["charming"] > 0
    config = json.loads(sample("clarify_explainability_analysis_config.json").read_text())
    assert ExplainSettings(agg_method=config["methods"]["shap"]["agg_method"]).agg_method == "mean_abs"
