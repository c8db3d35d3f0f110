"""Feature-attribution drift: global SHAP values per label in Clarify's analysis.json shape, and the nDCG
check of a window's feature ranking against the baseline's (SageMaker's feature_attribution_drift_check, §7
of shared/interop/sagemaker-formats.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import shap
from pydantic import Field
from shap.utils._exceptions import InvalidModelError  # shap exports no public name for it
from sklearn.base import is_classifier
from sklearn.linear_model import GammaRegressor, PoissonRegressor, TweedieRegressor
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC, LinearSVR

from modelwatch.tasks.documents import Check, Document
from modelwatch.tasks.errors import UserError

DEFAULT_THRESHOLD = 0.9
METHOD = "kernel_shap"  # the key SageMaker readers look for, whichever SHAP algorithm produced the values

AggMethod = Literal["mean_abs", "median", "mean_sq"]
Explainer = Literal["tree", "permutation", "kernel", "linear"]

# Models whose shap 0.51 interventional tree algorithm fails its own additivity check (every sklearn
# HistGradientBoosting* tried, binary, multiclass and regression): they get the path-dependent algorithm.
_PATH_DEPENDENT = frozenset({"HistGradientBoostingClassifier", "HistGradientBoostingRegressor"})
_TREE_MODULES = ("sklearn.ensemble", "sklearn.tree", "xgboost", "lightgbm", "catboost")
# Log-link GLMs: shap's linear explainer would explain the log of the prediction; they go model-agnostic.
_GLMS = (PoissonRegressor, GammaRegressor, TweedieRegressor)


# ---- documents ---------------------------------------------------------------------------------

class LabelAttribution(Document):
    global_shap_values: dict[str, float]
    expected_value: float | None = None


# A method's entry: label -> attribution (kernel_shap), a list (pdp), or anything else kept as it is.
ExplanationEntry = Annotated[
    dict[str, LabelAttribution] | list[Any] | dict[str, Any], Field(union_mode="left_to_right"),
]


class ExplainInfo(Document):
    """Ours: how the values were computed (SageMaker readers ignore the key)."""

    explainer: Explainer
    output: str  # "log-odds", "logits", "probability", "decision-function" or "prediction"
    feature_perturbation: str  # "interventional" or "tree_path_dependent"
    records_explained: int
    records_available: int
    records_skipped: int = 0  # rows with a missing feature value (tree and linear explainers only)
    background_records: int
    seed: int
    agg_method: AggMethod
    permutations: int | None = None
    shap_version: str


class AttributionAnalysis(Document):
    """analysis.json: explanations["kernel_shap"][label]; other keys (pdp, global_top_shap_text) are kept."""

    version: str = "1.0"
    explanations: dict[str, ExplanationEntry]
    modelwatch: ExplainInfo | None = None

    def labels(self, method: str = METHOD) -> dict[str, LabelAttribution]:
        """Label key (opaque: "label0", a header, or even a score string) -> its attribution."""
        entry = self.explanations.get(method)
        if not isinstance(entry, dict):
            return {}
        return {label: found for label, found in entry.items() if isinstance(found, LabelAttribution)}


class ExplainSettings(Document):
    """Sizes bound the cost; the defaults keep both explainer families under a minute on 2 cores (below)."""

    # Tree and linear SHAP cost little: 2,000 rows of a 100-tree depth-3 ensemble take ~1 s against a
    # 100-row background, and the mean |SHAP| of 2,000 rows moves by a few percent between seeds.
    sample_size: int = Field(2000, ge=1)
    background_size: int = Field(100, ge=1)
    seed: int = Field(0, ge=0)
    agg_method: AggMethod = "mean_abs"
    # The permutation explainer evaluates the model on rows x permutations x (2 x features + 1) x background
    # rows: 200 x 1 x 21 x 100 = 0.42 M model rows for 10 features, under a second for a small MLP, ~40 s for
    # a KNeighborsClassifier over 5,000 training rows (500 rows: ~90 s). One antithetic permutation (forward
    # and reverse) is exact when features interact at most pairwise; past 100 rows the ranking hardly moves
    # (nDCG between seeds >= 0.999 at 100, 250 and 500 rows), far from the 0.9 threshold.
    agnostic_sample_size: int = Field(200, ge=1)
    permutations: int = Field(1, ge=1)


class AttributionViolation(Document):
    label: str
    metric_name: str = "shap"
    constraint_check_type: str = "feature_attribution_drift_check"
    description: str


class AttributionViolations(Document):
    version: str = "1.0"
    violations: list[AttributionViolation] = Field(default_factory=list)
    # Every label compared, passed or not (the report's table); excluded from SageMaker's shape.
    checks: list[Check] = Field(default_factory=list, exclude=True)


# ---- explaining --------------------------------------------------------------------------------

@dataclass
class _Shap:
    values: np.ndarray  # (rows, features, outputs)
    base: np.ndarray  # (outputs,)
    explainer: Explainer
    output: str
    perturbation: str
    background_records: int
    permutations: int | None = None


def explain(
    model: Any,
    frame: pd.DataFrame,
    features: list[str],
    *,
    background: pd.DataFrame | None = None,
    settings: ExplainSettings | None = None,
    label_names: list[str] | None = None,
) -> AttributionAnalysis:
    """Global SHAP values of `model` on a seeded sample of `frame`, one entry per label.

    Tree ensembles get shap's tree explainer and sklearn linear models its linear explainer, both on raw model
    output (log-odds for boosted classifiers and logistic regression); anything else (pipelines included) gets
    the permutation explainer on predict_proba (the positive class of a binary classifier), else
    decision_function, else predict. Values are interventional against `settings.background_size` rows of
    `background` (else of `frame`): pass the same background to the baseline and every window, as Clarify
    keeps one SHAP baseline, so that rankings stay comparable.

    Labels: one ("label0") for a regressor or a binary classifier, one per class otherwise; `label_names`
    renames them (for a binary classifier one name, or the two class names, of which the positive is used).
    """
    settings = settings or ExplainSettings()
    if not features:
        raise UserError("no features to explain: expected the model's feature columns")
    _require_columns(frame, features, "the data to explain")
    if background is not None:
        _require_columns(background, features, "the background data")
    columns = _model_columns(model, features)
    source = frame if background is None else background
    found, skipped = _shap_values(model, frame[columns], source[columns], settings)
    values, base = _positive_class(model, found.values, found.base)
    keys = _label_keys(model, values.shape[2], label_names)
    aggregated = _aggregate(values, settings.agg_method)
    position = {name: columns.index(name) for name in features}
    explanations = {
        key: LabelAttribution(
            global_shap_values={name: float(aggregated[i, k]) for name, i in position.items()},
            expected_value=float(base[k]),
        )
        for k, key in enumerate(keys)
    }
    info = ExplainInfo(
        explainer=found.explainer, output=found.output, feature_perturbation=found.perturbation,
        records_explained=len(values), records_available=len(frame), records_skipped=skipped,
        background_records=found.background_records, seed=settings.seed, agg_method=settings.agg_method,
        permutations=found.permutations, shap_version=shap.__version__,
    )
    return AttributionAnalysis(explanations={METHOD: explanations}, modelwatch=info)


def _shap_values(
    model: Any, frame: pd.DataFrame, source: pd.DataFrame, settings: ExplainSettings,
) -> tuple[_Shap, int]:
    """The exact explainer when one applies (numeric, complete rows), else the permutation explainer;
    with the number of rows skipped for a missing value."""
    family = _native_family(model)
    if family is not None:
        rows, skipped = _complete_rows(frame)
        sample = _sample(rows, settings.sample_size, settings.seed, stream=0)
        reference = _sample(_complete_rows(source)[0], settings.background_size, settings.seed, stream=1)
        _require_rows(sample, reference)
        found = _linear(model, sample, reference) if family == "linear" else _tree(model, sample, reference)
        if found is not None:
            return found, skipped
    size = min(settings.sample_size, settings.agnostic_sample_size)
    sample = _sample(frame, size, settings.seed, stream=0)
    reference = _sample(source, settings.background_size, settings.seed, stream=1)
    _require_rows(sample, reference)
    return _permutation(model, sample, reference, settings), 0


def _require_columns(frame: pd.DataFrame, features: list[str], what: str) -> None:
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise UserError(f"{what} has no column {', '.join(map(repr, missing))}: expected every feature "
                        f"{features}; columns present: {[str(c) for c in frame.columns]}")


def _require_rows(sample: pd.DataFrame, reference: pd.DataFrame) -> None:
    if sample.empty or reference.empty:
        what = "the data to explain" if sample.empty else "the background data"
        raise UserError(f"{what} has no rows to explain (tree and linear models skip rows missing a value)")


def _model_columns(model: Any, features: list[str]) -> list[str]:
    """The features in the order the model was fitted on (sklearn checks names and order)."""
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None:
        return list(features)
    names = [str(name) for name in fitted]
    if sorted(names) != sorted(features):
        raise UserError(f"the model was fitted on the columns {names}, but the features given are {features}")
    return names


def _native_family(model: Any) -> Literal["linear", "tree"] | None:
    """Which exact explainer may apply; None: model-agnostic (pipelines, and anything shap cannot read)."""
    if isinstance(model, Pipeline):
        return None
    module = type(model).__module__
    linear = module.startswith("sklearn.linear_model") or isinstance(model, LinearSVC | LinearSVR)
    if linear and hasattr(model, "coef_") and not isinstance(model, _GLMS):
        return "linear"
    if module.startswith(_TREE_MODULES):
        return "tree"
    return None


def _complete_rows(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Numeric copy of `frame` without rows missing a value (linear SHAP cannot attribute a missing value)."""
    numeric = {}
    for name in frame.columns:
        try:
            numeric[name] = pd.to_numeric(frame[name]).astype(float)
        except (ValueError, TypeError) as error:
            raise UserError(f"feature {name!r} is not numeric (dtype {frame[name].dtype}): tree and linear "
                            f"models need numbers; wrap encoding in a sklearn Pipeline ({error})") from None
    converted = pd.DataFrame(numeric, index=frame.index)
    complete = converted.dropna()
    return complete, len(converted) - len(complete)


def _sample(frame: pd.DataFrame, size: int, seed: int, stream: int) -> pd.DataFrame:
    """At most `size` rows, uniformly without replacement; one random stream per use, so the background
    drawn from the same data is the same whatever the size of the data explained."""
    if len(frame) <= size:
        return frame
    rng = np.random.default_rng([seed, stream])
    return frame.iloc[np.sort(rng.choice(len(frame), size=size, replace=False))]


def _model_input(model: Any, frame: pd.DataFrame) -> pd.DataFrame | np.ndarray:
    return frame if hasattr(model, "feature_names_in_") else frame.to_numpy()


def _tree(model: Any, sample: pd.DataFrame, reference: pd.DataFrame) -> _Shap | None:
    interventional = type(model).__name__ not in _PATH_DEPENDENT
    perturbation = "interventional" if interventional else "tree_path_dependent"
    data = _model_input(model, reference) if interventional else None
    try:
        explainer = shap.TreeExplainer(model, data=data, feature_perturbation=perturbation)
    except InvalidModelError:  # e.g. a multiclass GradientBoostingClassifier
        return None
    # shap compares each row's SHAP sum with the model's output and raises on any mismatch. A value just
    # above a split threshold that rounds to the same float32 goes right in scikit-learn and left in
    # shap (9 of 100,000 benchmark rows), which failed whole executions. One such row barely moves a
    # mean |SHAP|.
    explained = explainer(_model_input(model, sample), check_additivity=False)
    values, base = _shaped(explained.values, explained.base_values)
    tree_output = str(getattr(explainer.model, "tree_output", "raw_value"))
    output = {"probability": "probability", "raw_value": "prediction"}.get(
        tree_output, "log-odds" if base.size == 1 else "logits")
    return _Shap(values, base, "tree", output, perturbation, len(reference) if interventional else 0)


def _linear(model: Any, sample: pd.DataFrame, reference: pd.DataFrame) -> _Shap:
    masker = shap.maskers.Independent(reference.to_numpy(), max_samples=len(reference))
    explained = shap.LinearExplainer(model, masker)(sample.to_numpy())
    values, base = _shaped(explained.values, explained.base_values)
    if not is_classifier(model):
        output = "prediction"
    elif hasattr(model, "predict_proba"):
        output = "log-odds" if base.size == 1 else "logits"
    else:
        output = "decision-function"
    return _Shap(values, base, "linear", output, "interventional", len(reference))


def _permutation(
    model: Any, sample: pd.DataFrame, reference: pd.DataFrame, settings: ExplainSettings,
) -> _Shap:
    encode, decode = _codec(model, pd.concat([sample, reference]))
    predict, output = _prediction(model)
    masker = shap.maskers.Independent(encode(reference), max_samples=len(reference))
    evaluations = settings.permutations * (2 * sample.shape[1] + 1)
    state = np.random.get_state()  # shap seeds numpy's global generator: leave it as we found it
    try:
        explainer = shap.PermutationExplainer(lambda x: predict(decode(x)), masker, seed=settings.seed)
        explained = explainer(encode(sample), max_evals=evaluations, silent=True)
    finally:
        np.random.set_state(state)
    values, base = _shaped(explained.values, explained.base_values)
    return _Shap(values, base, "permutation", output, "interventional", len(reference), settings.permutations)


def _codec(model: Any, frame: pd.DataFrame) -> tuple[Callable[[pd.DataFrame], np.ndarray],
                                                      Callable[[np.ndarray], Any]]:
    """shap's masker needs floats: non-numeric columns travel as category codes and are decoded back to
    their values (missing values as NaN codes) before the model sees them."""
    columns = list(frame.columns)
    categories = {
        name: pd.unique(frame[name].dropna())
        for name in columns if not pd.api.types.is_numeric_dtype(frame[name])
    }

    def encode(part: pd.DataFrame) -> np.ndarray:
        out = np.empty(part.shape, dtype=float)
        for j, name in enumerate(columns):
            if name in categories:
                codes = pd.Categorical(part[name], categories=categories[name]).codes.astype(float)
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = part[name].to_numpy(dtype=float, na_value=np.nan)
        return out

    def decode(codes: np.ndarray) -> Any:
        decoded = {}
        for j, name in enumerate(columns):
            if name in categories:
                present = ~np.isnan(codes[:, j])
                values = np.full(len(codes), None, dtype=object)
                values[present] = categories[name][codes[present, j].astype(int)]
                decoded[name] = values
            else:
                decoded[name] = codes[:, j]
        table = pd.DataFrame(decoded, columns=columns)
        return table if hasattr(model, "feature_names_in_") or categories else table.to_numpy()

    return encode, decode


def _prediction(model: Any) -> tuple[Callable[[Any], np.ndarray], str]:
    """What is explained: probabilities (only the positive class when binary), else margins, else predict."""
    binary = _is_binary(model)
    if hasattr(model, "predict_proba"):
        if binary:
            return (lambda x: model.predict_proba(x)[:, 1]), "probability"
        return model.predict_proba, "probability"
    if is_classifier(model) and hasattr(model, "decision_function"):
        return model.decision_function, "decision-function"
    return (lambda x: np.asarray(model.predict(x), dtype=float)), "prediction"


def _is_binary(model: Any) -> bool:
    return is_classifier(model) and len(getattr(model, "classes_", ())) == 2


def _shaped(values: Any, base: Any) -> tuple[np.ndarray, np.ndarray]:
    """(rows, features, outputs) values and one base value per output."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 2:
        values = values[:, :, np.newaxis]
    return values, np.asarray(base, dtype=float).reshape(-1, values.shape[2]).mean(axis=0)


def _positive_class(model: Any, values: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A binary classifier explained per class (random forests) keeps only the positive class."""
    if _is_binary(model) and values.shape[2] == 2:
        return values[:, :, 1:], base[1:]
    return values, base


def _label_keys(model: Any, outputs: int, label_names: list[str] | None) -> list[str]:
    if label_names is None:
        return [f"label{k}" for k in range(outputs)]
    names = [str(name) for name in label_names]
    if outputs == 1 and _is_binary(model) and len(names) == 2:
        return names[1:]
    if len(names) != outputs:
        raise UserError(f"label names {names} do not match the model's {outputs} explained output(s): "
                        "expected one name per class for a multiclass model, else one name")
    return names


def _aggregate(values: np.ndarray, method: AggMethod) -> np.ndarray:
    """(features, outputs) global values; "median" is of |SHAP| (a signed median ranks nothing)."""
    if method == "mean_abs":
        return np.abs(values).mean(axis=0)
    if method == "median":
        return np.median(np.abs(values), axis=0)
    return np.square(values).mean(axis=0)


# ---- drift -------------------------------------------------------------------------------------

def ndcg(baseline: dict[str, float], current: dict[str, float]) -> float:
    """nDCG of the current ranking with the baseline values as gains (formats doc §7.2).

    A feature missing on one side counts as 0 there; tied current values share their positions' discounts
    (as sklearn's ndcg_score does), so the result does not depend on key order. No gain at all: 1.0.
    """
    names = list(dict.fromkeys([*baseline, *current]))
    gains = np.array([baseline.get(name, 0.0) for name in names], dtype=float)
    scores = np.array([current.get(name, 0.0) for name in names], dtype=float)
    ideal = _dcg(gains, gains)
    return 1.0 if ideal == 0 else min(1.0, _dcg(gains, scores) / ideal)


def _dcg(gains: np.ndarray, scores: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    ranked_gains, ranked_scores = gains[order], scores[order]
    discounts = 1.0 / np.log2(np.arange(2, len(gains) + 2))
    _, starts = np.unique(-ranked_scores, return_index=True)
    bounds = [*starts.tolist(), len(gains)]
    return float(sum(ranked_gains[a:b].mean() * discounts[a:b].sum() for a, b in pairwise(bounds)))


def moved_features(baseline: dict[str, float], current: dict[str, float], top: int = 3) -> list[str]:
    """The `top` features whose share of the total attribution changed most, e.g.
    "x2: rank 1 -> 5, 0.812 -> 0.003" ("absent" for a feature missing on one side)."""
    names = list(dict.fromkeys([*baseline, *current]))
    before, after = _shares(baseline), _shares(current)
    change = {name: abs(after.get(name, 0.0) - before.get(name, 0.0)) for name in names}
    ranked = sorted((name for name in names if change[name] > 0), key=lambda name: (-change[name], name))
    ranks_before, ranks_after = _ranks(baseline), _ranks(current)
    return [
        f"{name}: rank {ranks_before.get(name, 'absent')} -> {ranks_after.get(name, 'absent')}, "
        f"{_value(baseline.get(name))} -> {_value(current.get(name))}"
        for name in ranked[:top]
    ]


def _shares(values: dict[str, float]) -> dict[str, float]:
    total = sum(values.values())
    return {name: value / total for name, value in values.items()} if total else {}


def _ranks(values: dict[str, float]) -> dict[str, int]:
    """1 = largest; ties share the best rank."""
    return {name: 1 + sum(other > value for other in values.values()) for name, value in values.items()}


def _value(value: float | None) -> str:
    return "absent" if value is None else f"{value:.3g}"


def check_attribution(
    baseline: AttributionAnalysis,
    current: AttributionAnalysis,
    threshold: float = DEFAULT_THRESHOLD,
    top: int = 3,
) -> tuple[AttributionViolations, dict[str, float]]:
    """One violation per label whose nDCG is below `threshold`, and the nDCG of every label in both documents.

    Labels on one side only are neither scored nor violations: the caller finds them by comparing
    `baseline.labels()` and `current.labels()` with the keys of the returned scores.
    """
    now = current.labels()
    scores: dict[str, float] = {}
    result = AttributionViolations()
    for label, before in baseline.labels().items():
        if label not in now:
            continue
        after = now[label].global_shap_values
        score = scores[label] = ndcg(before.global_shap_values, after)
        passed = score >= threshold
        description = ""
        if not passed:
            # SageMaker's documented wording, "exceeds" included, kept for compatibility.
            description = f"Feature attribution drift {score} exceeds threshold {threshold}"
            moved = moved_features(before.global_shap_values, after, top)
            if moved:
                description += "; features that moved most: " + "; ".join(moved)
            result.violations.append(AttributionViolation(label=label, description=description))
        result.checks.append(Check(subject=label, check="feature_attribution_drift_check",
                                   value=score, threshold=threshold, passes="at least",
                                   passed=passed, description=description))
    return result, scores
