"""The model-card content schema (SageMaker's model card JSON schema, 2023 variant) as pydantic models,
and its validation: every error names the field's path (``evaluation_details[0].name``) and what was
expected, and the content comes back normalised (empty fields dropped, numeric model versions as
strings)."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from modelwatch.tasks.errors import UserError

RISK_RATINGS: tuple[str, ...] = ("High", "Medium", "Low", "Unknown")
SIMPLE_METRIC_TYPES = ("number", "string", "boolean")
METRIC_TYPES = (*SIMPLE_METRIC_TYPES, "linear_graph", "bar_chart", "matrix")
MAX_CONTENT_CHARS = 100_000  # SageMaker's limit on the Content JSON string


class CardContentError(UserError):
    """Card content that breaks the schema; `path` locates the field (the CLI maps it to a line)."""

    def __init__(self, path: tuple[str | int, ...], reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{format_path(path) or 'card content'}: {reason}")


def format_path(path: tuple[str | int, ...]) -> str:
    """("evaluation_details", 0, "name") -> "evaluation_details[0].name"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def kind_of(value: Any) -> str:
    """A value's JSON kind in words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if hasattr(value, "isoformat"):  # YAML reads 2024-01-31 as a date
        return "a date or time (quote it to make it a string)"
    return type(value).__name__


# ---- field types -----------------------------------------------------------------------------------

def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _number(value: Any) -> Any:
    """A JSON number, kept as given (an int stays an int); never a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {kind_of(value)}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value}")
    return value


def _one_of(*values: str) -> Any:
    def check(value: str) -> str:
        if value not in values:
            raise ValueError(f"{value!r} is not one of {', '.join(values)}")
        return value

    return AfterValidator(check)


def _version(value: Any) -> Any:
    """A model version: our registry's slug ("2"), or SageMaker's number (2), kept as a string."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return str(value)
    if isinstance(value, float) and value.is_integer() and value >= 1:
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError(f"expected a model version (a registered version such as '2'), got "
                     f"{kind_of(value)} {value!r}")


def check_version(value: Any, path: tuple[str | int, ...]) -> str:
    """A model version given in a card, as a string; a CardContentError at `path` otherwise."""
    try:
        return _version(value)
    except ValueError as problem:
        raise CardContentError(path, str(problem)) from None


def _named(value: Any) -> Any:
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not key:
                raise ValueError(f"names must be non-empty strings, got {key!r}")
    return value


# The schema's name "patterns" (".{1,63}") are unanchored, so they only forbid empty names; the SDK
# itself writes 75-character metric group names, so no upper bound is read into them.
Name = Annotated[str, AfterValidator(_non_empty)]
Text = str
T63 = Annotated[str, Field(max_length=63)]
T256 = Annotated[str, Field(max_length=256)]
T1024 = Annotated[str, Field(max_length=1024)]
T2048 = Annotated[str, Field(max_length=2048)]
T2096 = Annotated[str, Field(max_length=2096)]
Number = Annotated[Any, BeforeValidator(_number)]
Version = Annotated[str, BeforeValidator(_version)]
Images = Annotated[list[T1024], Field(max_length=15)]
NamedTexts = Annotated[dict[str, T1024], BeforeValidator(_named)]


class Section(BaseModel):
    """A schema object: unknown fields are errors, and an empty field ("model_owner:" in YAML) is
    the same as leaving it out."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_empty(cls, value: Any) -> Any:
        return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value


# ---- sections ------------------------------------------------------------------------------------

class InferenceEnvironment(Section):
    container_image: Images | None = None


class ModelOverview(Section):
    model_description: T1024 | None = None
    model_creator: T1024 | None = None
    model_artifact: Annotated[list[T1024], Field(max_length=15)] | None = None
    algorithm_type: T1024 | None = None
    problem_type: Text | None = None
    model_owner: T1024 | None = None
    # In the 2023 variant (and written by the SDK), not in the sagemaker-core copy.
    model_id: T1024 | None = None
    model_name: T1024 | None = None
    model_version: Version | None = None
    inference_environment: InferenceEnvironment | None = None


class IntendedUses(Section):
    purpose_of_model: T2048 | None = None
    intended_uses: T2048 | None = None
    factors_affecting_model_efficiency: T2048 | None = None
    risk_rating: Annotated[str, _one_of(*RISK_RATINGS)] | None = None
    explanations_for_risk_rating: T2048 | None = None


class BusinessDetails(Section):
    business_problem: T2048 | None = None
    business_stakeholders: T2048 | None = None
    line_of_business: T2048 | None = None


class Function(Section):
    function: Annotated[str, _one_of("Maximize", "Minimize")] | None = None
    facet: T63 | None = None
    condition: T63 | None = None


class ObjectiveFunction(Section):
    # Both schemas misplace function/notes outside "properties"; this is the SDK's shape.
    function: Function | None = None
    notes: T1024 | None = None


class TrainingMetric(Section):
    name: Name
    notes: T1024 | None = None
    value: Number


class HyperParameter(Section):
    name: Name
    value: Text | None = None


class TrainingEnvironment(Section):
    container_image: Images | None = None


class TrainingJobDetails(Section):
    training_arn: T1024 | None = None
    training_datasets: Annotated[list[T1024], Field(max_length=15)] | None = None
    training_environment: TrainingEnvironment | None = None
    training_metrics: Annotated[list[TrainingMetric], Field(max_length=50)] | None = None
    user_provided_training_metrics: Annotated[list[TrainingMetric], Field(max_length=50)] | None = None
    hyper_parameters: Annotated[list[HyperParameter], Field(max_length=100)] | None = None
    user_provided_hyper_parameters: Annotated[list[HyperParameter], Field(max_length=100)] | None = None


class TrainingDetails(Section):
    objective_function: ObjectiveFunction | None = None
    training_observations: T1024 | None = None
    training_job_details: TrainingJobDetails | None = None


class _Metric(Section):
    name: Name
    notes: T1024 | None = None


class NumberMetric(_Metric):
    type: Literal["number"]
    value: Number
    x_axis_name: T63 | None = None
    y_axis_name: T63 | None = None


class StringMetric(_Metric):
    type: Literal["string"]
    value: T63
    x_axis_name: T63 | None = None
    y_axis_name: T63 | None = None


class BooleanMetric(_Metric):
    type: Literal["boolean"]
    value: bool
    x_axis_name: T63 | None = None
    y_axis_name: T63 | None = None


Point = Annotated[list[Number], Field(min_length=2, max_length=2)]


class LinearGraphMetric(_Metric):
    type: Literal["linear_graph"]
    value: Annotated[list[Point], Field(min_length=1)]
    x_axis_name: T63 | None = None
    y_axis_name: T63 | None = None


class BarChartMetric(_Metric):
    type: Literal["bar_chart"]
    value: Annotated[list[Number], Field(min_length=1)]
    x_axis_name: list[T63] | None = None
    y_axis_name: T63 | None = None


class MatrixMetric(_Metric):
    type: Literal["matrix"]
    value: Annotated[list[Annotated[list[Number], Field(min_length=1, max_length=20)]],
                     Field(min_length=1, max_length=20)]
    x_axis_name: list[T63] | None = None
    y_axis_name: list[T63] | None = None


def _metric_type(value: Any) -> str | None:
    """The union's tag: a metric's type, in the input (a dict) or a parsed metric."""
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


Metric = Annotated[Union[  # noqa: UP007 - a tagged union needs the Union form
    Annotated[NumberMetric, Tag("number")], Annotated[StringMetric, Tag("string")],
    Annotated[BooleanMetric, Tag("boolean")], Annotated[LinearGraphMetric, Tag("linear_graph")],
    Annotated[BarChartMetric, Tag("bar_chart")], Annotated[MatrixMetric, Tag("matrix")],
], Discriminator(_metric_type)]


class MetricGroup(Section):
    name: Name
    metric_data: list[Metric]


class Evaluation(Section):
    name: Name
    evaluation_observation: T2096 | None = None
    evaluation_job_arn: T256 | None = None
    datasets: Annotated[list[T1024], Field(max_length=10)] | None = None
    metadata: NamedTexts | None = None
    metric_groups: list[MetricGroup] | None = None


class AdditionalInformation(Section):
    ethical_considerations: T2048 | None = None
    caveats_and_recommendations: T2048 | None = None
    custom_details: NamedTexts | None = None


class CardContent(Section):
    model_overview: ModelOverview | None = None
    intended_uses: IntendedUses | None = None
    business_details: BusinessDetails | None = None
    training_details: TrainingDetails | None = None
    evaluation_details: list[Evaluation] | None = None
    additional_information: AdditionalInformation | None = None


_MODELS: dict[str, type[BaseModel]] = {
    cls.__name__: cls for cls in (
        CardContent, ModelOverview, InferenceEnvironment, IntendedUses, BusinessDetails,
        TrainingDetails, ObjectiveFunction, Function, TrainingJobDetails, TrainingEnvironment,
        TrainingMetric, HyperParameter, MetricGroup, Evaluation, AdditionalInformation,
        NumberMetric, StringMetric, BooleanMetric, LinearGraphMetric, BarChartMetric, MatrixMetric)}


# ---- errors as the user reads them ---------------------------------------------------------------

def _model_at(path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The schema object at a path of the content (None where the path leaves the schema)."""
    model: Any = CardContent
    for part in path:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = next((t for t in _types(field.annotation) if isinstance(t, type)
                      and issubclass(t, BaseModel)), None)
    return model


def _types(annotation: Any) -> list[Any]:
    from typing import get_args

    found, stack = [], [annotation]
    while stack:
        current = stack.pop()
        args = get_args(current)
        if args:
            stack.extend(args)
        else:
            found.append(current)
    return found


def _reason(error: dict[str, Any], path: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str]:
    """(path, message) of one pydantic error, in the words the hand-made checker used."""
    kind, given, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(path[:-1])
        fields = ", ".join(parent.model_fields) if parent else "?"
        return path, f"unknown field; expected one of: {fields}"
    if kind == "missing":
        return path[:-1], f"missing required field {path[-1]!r}"
    if kind == "string_type":
        return path, f"expected a string, got {kind_of(given)}"
    if kind in ("float_type", "int_type"):
        return path, f"expected a number, got {kind_of(given)}"
    if kind == "bool_type":
        return path, f"expected true or false for a boolean metric, got {kind_of(given)}"
    if kind == "list_type":
        return path, f"expected a list, got {kind_of(given)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        model = _model_at(path)
        if model is None:
            return path, f"expected an object of named values, got {kind_of(given)}"
        return path, f"expected an object with fields ({', '.join(model.model_fields)}), got " \
                     f"{kind_of(given)}"
    if kind == "string_too_long":
        return path, f"is {len(given)} characters long; at most {ctx['max_length']} are allowed"
    if kind in ("too_long", "too_short"):
        low, high = _length_bounds(path)
        count = len(given) if isinstance(given, list | tuple) else ctx.get("actual_length")
        if low is not None and low == high:
            return path, f"needs exactly {low} items, has {count}"
        if kind == "too_short":
            return path, f"needs at least {ctx.get('min_length')} item(s), has {count}"
        return path, f"has {count} items; at most {ctx.get('max_length')} are allowed"
    if kind == "union_tag_invalid":
        return (*path, "type"), f"{ctx.get('tag')!r} is not one of {', '.join(METRIC_TYPES)}"
    if kind == "union_tag_not_found":
        return path, f"missing required field 'type' (one of {', '.join(METRIC_TYPES)})"
    if kind == "value_error":
        return path, str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    return path, str(error["msg"])


def _length_bounds(path: tuple[str | int, ...]) -> tuple[int | None, int | None]:
    """A linear graph's points are pairs: the only list whose length is fixed."""
    return (2, 2) if len(path) >= 2 and isinstance(path[-1], int) and path[-2] == "value" else \
        (None, None)


def _content_path(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """A pydantic location without the tag of the metric union (metric_data, <i>, <tag>, ...)."""
    parts = list(loc)
    return tuple(part for i, part in enumerate(parts)
                 if not (i >= 2 and parts[i - 2] == "metric_data" and isinstance(parts[i - 1], int)
                         and part in METRIC_TYPES))


def validate_content(content: Any) -> dict[str, Any]:
    """Check card content against SageMaker's schema; return it normalised (empty fields dropped,
    numeric model versions as strings). Raises CardContentError naming the field."""
    if not isinstance(content, dict):
        raise CardContentError((), f"expected an object with fields "
                                   f"({', '.join(CardContent.model_fields)}), got {kind_of(content)}")
    try:
        parsed = CardContent.model_validate(content)
    except ValidationError as problem:
        first = problem.errors(include_url=False)[0]
        path, reason = _reason(first, _content_path(tuple(first["loc"])))
        raise CardContentError(path, reason) from None
    checked = parsed.model_dump(exclude_none=True, exclude_unset=True)
    size = len(json.dumps(checked, ensure_ascii=False))
    if size > MAX_CONTENT_CHARS:
        raise CardContentError((), f"is {size} characters as JSON; SageMaker allows at most "
                                   f"{MAX_CONTENT_CHARS}")
    return checked
