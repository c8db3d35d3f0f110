"""The bias-drift monitor's documents (Clarify's analysis.json, our constraints and violations), the
metric names and fair values, and parsing what users type (facets, label values, bounds). Numbers: inf
is written "Infinity", as smclarify's report does."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, model_serializer

from modelwatch.tasks.documents import Check, Document
from modelwatch.tasks.errors import UserError

DESCRIPTIONS: dict[str, str] = {
    "AD": "Accuracy Difference (AD)",
    "CDDPL": "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DCA": "Difference in Conditional Acceptance (DCA)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "DI": "Disparate Impact (DI)",
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "FT": "Flip Test (FT)",
    "GE": "Generalized Entropy (GE)",
    "RD": "Recall Difference (RD)",
    "SD": "Specificity Difference (SD)",
    "TE": "Treatment Equality (TE)",
}
POST_TRAINING_METRICS: tuple[str, ...] = tuple(sorted(DESCRIPTIONS))
FAIR_VALUES: dict[str, float] = {"DI": 1.0}  # every other metric: 0
ALIASES: dict[str, str] = {"DCACC": "DCA"}  # the name for DCA
GROUP_VARIABLE_ERROR = "Group variable is empty or not provided"
NO_FEATURES_ERROR = "Flip test needs numeric features: none given (besides the facet, label and prediction)"
MIN_MEMBERS = 30
FLIP_TEST_ROWS = 20_000
MAX_FACET_VALUES = 50
TRUE_WORDS = {"true": "1", "false": "0"}

RangeSource = Literal["baseline", "absolute", "sagemaker"]
Bounds = dict[str, tuple[float | None, float | None]]


# ---- numbers in documents: inf is written as "Infinity" (smclarify's report.inf_as_str) ----

def _float_in(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value.strip())  # "Infinity", "-Infinity", "NaN"
        except ValueError:
            raise ValueError(f"expected a number or 'Infinity', got {value!r}") from None
    return value


def _float_out(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


JsonFloat = Annotated[float, BeforeValidator(_float_in), PlainSerializer(_float_out)]


def format_number(value: float) -> str:
    """A metric value as SageMaker's violation descriptions print it (Python repr; inf as "Infinity")."""
    shown = _float_out(float(value))
    return shown if isinstance(shown, str) else repr(shown)


# ---- documents ---------------------------------------------------------------------------------

class FacetSpec(Document):
    """A facet: a column, and which of its values make group d (values=None: each value in turn)."""

    name: str
    values: list[str] | None = None
    threshold: float | None = None


class BiasMetric(Document):
    name: str
    description: str
    value: JsonFloat | None = None
    error: str | None = None

    @model_serializer(mode="wrap")
    def _keep_null_value(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        # Clarify writes "value": null beside an error; dump() drops None, so put it back.
        data = handler(self)
        if "value" not in data:
            data = {"name": data.pop("name"), "description": data.pop("description"), "value": None, **data}
        return data


class FacetResult(Document):
    value_or_threshold: str
    metrics: list[BiasMetric]
    # Ours: the sizes of group d (the facet's members) and group a, and the rows the flip test used
    # per group when it sampled them.
    members: int | None = None
    non_members: int | None = None
    flip_test_sampled: dict[str, int] | None = None

    def metric(self, name: str) -> BiasMetric | None:
        return next((m for m in self.metrics if m.name == name), None)


class BiasMetricsSection(Document):
    label: str
    facets: dict[str, list[FacetResult]]
    label_value_or_threshold: str


class BiasAnalysis(Document):
    version: str = "1.0"
    post_training_bias_metrics: BiasMetricsSection | None = None
    pre_training_bias_metrics: BiasMetricsSection | None = None


class MetricRange(Document):
    """Allowed values lower <= value <= upper (None: unbounded side).

    source "baseline": centred on the fair value from the baseline value and the tolerance; "absolute": a
    user's bound; "sagemaker": SageMaker's rule, |value - fair| <= |baseline - fair|.
    """

    lower: JsonFloat | None = None
    upper: JsonFloat | None = None
    source: RangeSource = "baseline"
    baseline: JsonFloat | None = None


class FacetRanges(Document):
    value_or_threshold: str
    metrics: dict[str, MetricRange]


class BiasConstraints(Document):
    version: str = "1.0"
    label: str
    label_value_or_threshold: str
    tolerance: float
    facets: dict[str, list[FacetRanges]]


class BiasViolation(Document):
    facet: str
    facet_value: str
    metric_name: str
    constraint_check_type: str = "bias_drift_check"
    description: str


class BiasViolations(Document):
    version: str = "1.0"
    violations: list[BiasViolation] = Field(default_factory=list)
    # What check_bias could not compare (facets, values or metrics missing from the current analysis);
    # excluded so the file keeps SageMaker's shape.
    notes: list[str] = Field(default_factory=list, exclude=True)
    # Every metric compared, within its range or not (the report's table); excluded likewise.
    checks: list[Check] = Field(default_factory=list, exclude=True)

    @property
    def status(self) -> Literal["Completed", "CompletedWithViolations"]:
        return "CompletedWithViolations" if self.violations else "Completed"


# ---- parsing user text -------------------------------------------------------------------------

def parse_facet(text: str) -> FacetSpec:
    """"Sex" (each value its own group), "Sex=0" / "Sex=0,1" (those values are group d), "Age>40"."""
    stripped = (text or "").strip()
    expected = "expected COLUMN, COLUMN=VALUE[,VALUE...] or COLUMN>NUMBER (e.g. Sex, Sex=0, Age>40)"
    cut = min((i for i in (stripped.find("="), stripped.find(">")) if i >= 0), default=-1)
    if cut < 0:
        if not stripped:
            raise UserError(f"facet {text!r} is empty: {expected}")
        return FacetSpec(name=stripped)
    name, sign, rest = stripped[:cut].strip(), stripped[cut], stripped[cut + 1:].strip()
    if not name:
        raise UserError(f"facet {text!r} names no column: {expected}")
    if sign == ">":
        threshold = finite_number(rest)
        if threshold is None:
            raise UserError(f"facet {text!r}: threshold {rest!r} is not a number; {expected}")
        return FacetSpec(name=name, threshold=threshold)
    values = [v.strip() for v in rest.split(",")]
    if not all(values):
        raise UserError(f"facet {text!r} has an empty value: {expected}")
    return FacetSpec(name=name, values=values)


def parse_label_values(text: str | None) -> list[str] | float | None:
    """The positive label: "1", "1,yes" (any of these values) or ">0.5" (above a threshold)."""
    if text is None:
        return None
    stripped = text.strip()
    expected = "expected VALUE[,VALUE...] or >NUMBER (e.g. 1, yes,y or >0.5)"
    if stripped.startswith(">"):
        threshold = finite_number(stripped[1:].strip())
        if threshold is None:
            raise UserError(f"label values {text!r}: threshold is not a number; {expected}")
        return threshold
    values = [v.strip() for v in stripped.split(",")]
    if not all(values):
        raise UserError(f"label values {text!r} have an empty value: {expected}")
    return values


def parse_bounds(texts: list[str]) -> Bounds:
    """Absolute bounds "DI=0.8:1.25", "DPPL=:0.1", "DPPL=-0.1:" -> {metric: (lower, upper)}."""
    bounds: Bounds = {}
    expected = "expected METRIC=LOWER:UPPER with either side optional (e.g. DI=0.8:1.25, DPPL=:0.1)"
    for text in texts:
        name, eq, rest = text.partition("=")
        lower_text, colon, upper_text = rest.partition(":")
        if not eq or not colon:
            raise UserError(f"bound {text!r}: {expected}")
        metric = canonical_metric(name, f"bound {text!r}")
        lower, upper = (_optional_number(side, text, expected) for side in (lower_text, upper_text))
        if lower is None and upper is None:
            raise UserError(f"bound {text!r} has neither a lower nor an upper value: {expected}")
        if lower is not None and upper is not None and lower > upper:
            raise UserError(f"bound {text!r}: lower {lower} is above upper {upper}")
        if metric in bounds:
            raise UserError(f"bound {text!r}: {metric} is bounded twice")
        bounds[metric] = (lower, upper)
    return bounds


def canonical_metric(name: str, where: str) -> str:
    key = name.strip().upper()
    key = ALIASES.get(key, key)
    if key not in DESCRIPTIONS:
        raise UserError(f"{where}: unknown metric {name.strip()!r}; expected one of "
                        f"{', '.join(POST_TRAINING_METRICS)} (or DCAcc for DCA)")
    return key


def _optional_number(text: str, whole: str, expected: str) -> float | None:
    if not text.strip():
        return None
    number = finite_number(text.strip())
    if number is None:
        raise UserError(f"bound {whole!r}: {text.strip()!r} is not a number; {expected}")
    return number


def finite_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


