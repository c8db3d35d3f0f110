"""The model-card form: SageMaker's card sections as form fields (text, a choice, one item per line,
or JSON for the nested parts), a card's content as the form's values, and a submitted form back as
card content. Every schema field has a place in the form, so an edit never loses a field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from modelwatch.tasks.card_schema import RISK_RATINGS, CardContentError
from modelwatch.tasks.cards import SECTION_TITLES

Kind = Literal["text", "long", "choice", "lines", "json"]


@dataclass(frozen=True)
class FormField:
    """One input: ``name`` is ``section.field`` (or the section alone, for evaluation_details)."""

    section: str
    field: str | None
    kind: Kind
    hint: str = ""
    choices: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.section if self.field is None else f"{self.section}.{self.field}"

    @property
    def label(self) -> str:
        text = (self.field or self.section).replace("_", " ")
        return text[:1].upper() + text[1:]


_LIST = "one per line"
# In SageMaker's section order. model_overview.model_version is not here: it is chosen when a card is
# created and kept by every later version.
FIELDS: tuple[FormField, ...] = (
    FormField("model_overview", "model_description", "long"),
    FormField("model_overview", "model_owner", "text"),
    FormField("model_overview", "model_creator", "text"),
    FormField("model_overview", "model_name", "text", "default: the model's name"),
    FormField("model_overview", "model_id", "text"),
    FormField("model_overview", "algorithm_type", "text"),
    FormField("model_overview", "problem_type", "text"),
    FormField("model_overview", "model_artifact", "lines", _LIST),
    FormField("model_overview", "inference_environment", "json", 'JSON, e.g. {"container_image": ["..."]}'),
    FormField("intended_uses", "purpose_of_model", "long"),
    FormField("intended_uses", "intended_uses", "long"),
    FormField("intended_uses", "factors_affecting_model_efficiency", "long"),
    FormField("intended_uses", "risk_rating", "choice", choices=RISK_RATINGS),
    FormField("intended_uses", "explanations_for_risk_rating", "long"),
    FormField("business_details", "business_problem", "long"),
    FormField("business_details", "business_stakeholders", "long"),
    FormField("business_details", "line_of_business", "text"),
    FormField("training_details", "objective_function", "json",
              'JSON, e.g. {"function": {"function": "Minimize", "facet": "loss"}, "notes": "..."}'),
    FormField("training_details", "training_observations", "long"),
    FormField("training_details", "training_job_details", "json",
              "JSON: training_arn, training_datasets, training_environment, training_metrics, "
              "hyper_parameters, ..."),
    FormField("evaluation_details", None, "json",
              'JSON list of evaluations: [{"name": "...", "metric_groups": [{"name": "...", "metric_data": '
              '[{"name": "auc", "type": "number", "value": 0.9}]}]}]'),
    FormField("additional_information", "ethical_considerations", "long"),
    FormField("additional_information", "caveats_and_recommendations", "long"),
    FormField("additional_information", "custom_details", "json",
              'JSON object of texts, e.g. {"reviewer": "..."}'),
)
FIXED = ("model_overview", "model_version")  # shown, never edited


def sections() -> list[dict[str, Any]]:
    """The form's fields grouped under their section titles, in SageMaker's order."""
    return [{"key": key, "title": title, "fields": [f for f in FIELDS if f.section == key]}
            for key, title in SECTION_TITLES.items()]


def form_values(content: dict[str, Any] | None) -> dict[str, str]:
    """What each input shows for a card's content (an empty form for None)."""
    values: dict[str, str] = {}
    content = content or {}
    for f in FIELDS:
        section = content.get(f.section)
        value = section if f.field is None else section.get(f.field) if isinstance(section, dict) else None
        if value is None:
            values[f.name] = ""
        elif f.kind == "lines" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            values[f.name] = "\n".join(value)
        elif f.kind in ("json", "lines"):
            values[f.name] = json.dumps(value, indent=2, ensure_ascii=False)
        else:
            values[f.name] = str(value)
    return values


def _text(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n")


def content_from_form(form: dict[str, str],
                      fixed: dict[tuple[str, str], Any] | None = None) -> dict[str, Any]:
    """Card content from a submitted form: empty inputs leave their field out, JSON inputs are parsed
    (an error names the field and the place), `fixed` holds the model version the card keeps. The
    result still has to pass the schema (modelwatch.tasks.cards validates it when it is written)."""
    content: dict[str, Any] = {}
    for f in FIELDS:
        raw = _text(form.get(f.name, ""))
        if not raw.strip():
            continue
        if f.kind == "lines":
            value: Any = [line.strip() for line in raw.split("\n") if line.strip()]
        elif f.kind == "json":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as problem:
                raise CardContentError((f.section,) if f.field is None else (f.section, f.field),
                                       f"not valid JSON ({problem.msg} at line {problem.lineno}, "
                                       f"column {problem.colno})") from None
        elif f.kind == "choice":
            value = raw.strip()
        else:
            value = raw
        if f.field is None:
            content[f.section] = value
        else:
            content.setdefault(f.section, {})[f.field] = value
    for (section, field), value in (fixed or {}).items():
        if value is not None:
            content.setdefault(section, {})[field] = value
    return content
