"""Great Expectations (GX 1.x) Expectation Suites beside the built-in data-quality checks: a suite
exported from a baseline's constraints, and a committed suite run on a window's rows, each expectation
becoming a Check (`gx_expectation_check`) like the built-in ones.

GX is imported only inside the functions that build or run a suite, since importing it takes seconds:
a model without a suite never imports it.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from modelwatch.tasks.constraints import completeness_floor
from modelwatch.tasks.documents import Check, Constraints, FeatureConstraints, Statistics
from modelwatch.tasks.errors import UserError

if TYPE_CHECKING:
    from modelwatch.tasks.store import Store

SUITE_FILE = "gx_suite.json"  # beside constraints.json: store baseline folder or project baselines/
GX_CHECK = "gx_expectation_check"
# A window larger than this is validated on a uniform sample of this many rows: GX holds its input in
# memory as a pandas frame (about 1 s, tens of MB, for a 32-expectation suite on 100,000 rows).
GX_ROWS = 100_000

_INTEGRAL_TYPES = ["int", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8",
                   "Int64Dtype", "Int32Dtype", "Int16Dtype", "Int8Dtype"]
# Integral values count as Fractional, as in data_type_check.
_FRACTIONAL_TYPES = _INTEGRAL_TYPES + ["float", "float64", "float32", "Float64Dtype", "Float32Dtype"]
_STRING_TYPES = ["str", "StringDtype"]
TYPE_LISTS = {"Integral": _INTEGRAL_TYPES, "Fractional": _FRACTIONAL_TYPES, "String": _STRING_TYPES}
# The keys of a serialized expectation that GX's ExpectationConfiguration takes back ("id" is left
# out: GX refuses an expectation that already belongs to another suite).
_CONFIG_KEYS = ("type", "kwargs", "meta", "notes", "description", "severity")
# GX keeps its current context in module state and says nothing of threads: flows running side by side
# in one process (thread-pool task runners, `modelwatch serve`) validate one at a time.
_GX_LOCK = threading.Lock()
# kwargs a description leaves out of the expectation's parameters: how to run it, and the column(s)
# and `mostly` that it states otherwise.
_RUN_KWARGS = {"batch_id", "result_format", "include_config", "catch_exceptions", "column", "mostly",
               "column_A", "column_B", "column_list"}


@dataclass
class GxSuite:
    """A committed suite: its JSON document (GX 1.x shape), checked to build, and where it came from."""

    document: dict[str, Any]
    source: str = ""

    @property
    def name(self) -> str:
        return str(self.document.get("name") or "modelwatch")


@dataclass
class GxOutcome:
    """One suite's run over a window: a Check per expectation (in the suite's order), GX's validation
    result as JSON, the rows it ran on and a note saying which."""

    checks: list[Check] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    window_rows: int = 0
    note: str = ""
    # One row per expectation for the report: type, column(s), what was found, verdict.
    table: list[list[Any]] = field(default_factory=list)


# ---- export -------------------------------------------------------------------------------------


def _floor(value: float, digits: int = 4) -> float:
    return math.floor(value * 10**digits) / 10**digits


def _setting(feature: FeatureConstraints, constraints: Constraints, key: str) -> float:
    return float(feature.overrides().get(key, getattr(constraints.monitoring_config, key)))


def _with_mostly(kwargs: dict[str, Any], mostly: float) -> dict[str, Any]:
    return kwargs | {"mostly": mostly} if mostly < 1.0 else kwargs


def expectation_configs(constraints: Constraints, statistics: Statistics | None = None,
                        order: list[str] | None = None) -> list[dict[str, Any]]:
    """The expectations a baseline's constraints imply, as GX configurations (type, kwargs, meta).

    Per feature of a known type: the column exists; its values are of the baseline type
    (`mostly` = datatype_check_threshold); completeness (not null; below 1 the `mostly` is the
    baseline completeness less the completeness check's sampling allowance of 3 standard errors for
    a window as large as the baseline); non-negativity (values at least 0); a String domain (values
    in the set, `mostly` = domain_content_threshold). SageMaker constraints carry no other bounds,
    so no other range is written (drift is baseline_drift_check's job).

    Parameters
    ----------
    constraints : Constraints
        The baseline's constraints.json (suggested or reviewed).
    statistics : Statistics, optional
        The baseline's statistics.json: its row count sizes the completeness allowance.
    order : list of str, optional
        Feature order (the baseline's); the constraints' order otherwise.
    """
    by_name = {f.name: f for f in constraints.features}
    names = [n for n in (order or []) if n in by_name]
    names += [f.name for f in constraints.features if f.name not in set(names)]
    baseline_rows = statistics.dataset.item_count if statistics is not None else 0
    configs: list[dict[str, Any]] = []

    def add(kind: str, mirrors: str, **kwargs: Any) -> None:
        configs.append({"type": kind, "kwargs": kwargs, "meta": {"modelwatch": mirrors}})

    for name in names:
        feature = by_name[name]
        if feature.inferred_type not in TYPE_LISTS:
            continue  # Unknown: an all-null baseline column promises nothing
        add("expect_column_to_exist", "missing_column_check", column=name)
        add("expect_column_values_to_be_in_type_list", "data_type_check",
            **_with_mostly({"column": name, "type_list": TYPE_LISTS[feature.inferred_type]},
                           _setting(feature, constraints, "datatype_check_threshold")))
        completeness = feature.completeness
        if completeness is not None and completeness > 0:
            mostly = float(completeness)
            if mostly < 1.0 and baseline_rows:
                mostly = completeness_floor(mostly, baseline_rows, baseline_rows)
            add("expect_column_values_to_not_be_null", "completeness_check",
                **_with_mostly({"column": name}, max(_floor(mostly), 0.0)))
        if feature.num_constraints is not None and feature.num_constraints.is_non_negative:
            add("expect_column_values_to_be_between", "num_constraints.is_non_negative",
                column=name, min_value=0)
        domains = feature.string_constraints.domains if feature.string_constraints else None
        if feature.inferred_type == "String" and domains:
            add("expect_column_values_to_be_in_set", "categorical_values_check",
                **_with_mostly({"column": name, "value_set": list(domains)},
                               _setting(feature, constraints, "domain_content_threshold")))
    return configs


def export_suite(constraints: Constraints, statistics: Statistics | None = None, *,
                 name: str = "modelwatch", order: list[str] | None = None,
                 meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A GX 1.x Expectation Suite (its JSON document) of what the constraints imply.

    The expectations are built with GX itself, so the document is one GX loads
    (`gx.ExpectationSuite(**document)`); see `expectation_configs` for what is exported.

    Parameters
    ----------
    constraints, statistics, order
        As for `expectation_configs`.
    name : str
        The suite's name.
    meta : dict, optional
        Added to the suite's meta (where it was exported from).
    """
    suite = build_suite({"name": name, "expectations": expectation_configs(constraints, statistics,
                                                                             order)}, "export")
    suite.meta.update(meta or {})
    document = suite.to_json_dict()
    for key in ("id", "notes"):
        if document.get(key) is None:
            document.pop(key, None)
    for expectation in document.get("expectations", []):
        if expectation.get("id") is None:
            expectation.pop("id", None)
    return document


# ---- loading ------------------------------------------------------------------------------------


def _one_line(problem: BaseException, limit: int = 300) -> str:
    text = " ".join(str(problem).split()) or type(problem).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _upgraded(raw: dict[str, Any]) -> dict[str, Any]:
    """GX 0.x suites spell `type` and `name` `expectation_type` and `expectation_suite_name`."""
    document = dict(raw)
    if "name" not in document and "expectation_suite_name" in document:
        document["name"] = document.pop("expectation_suite_name")
    expectations = []
    for item in raw["expectations"]:
        if isinstance(item, dict) and "type" not in item and "expectation_type" in item:
            item = {"type": item["expectation_type"],
                    **{k: v for k, v in item.items() if k != "expectation_type"}}
        expectations.append(item)
    document["expectations"] = expectations
    return document


def build_suite(document: dict[str, Any], source: str):
    """The GX ExpectationSuite of a suite document; an expectation GX cannot build is a UserError
    naming the file, its index and its type (GX itself would only log it and drop it)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    expectations = []
    for i, item in enumerate(document.get("expectations") or []):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) \
                or not isinstance(item.get("kwargs", {}), dict):
            raise UserError(f"{source}: expectations[{i}] is not an expectation (an object with "
                            f"\"type\" and \"kwargs\")")
        config = {k: item[k] for k in _CONFIG_KEYS if k in item}
        config.setdefault("kwargs", {})
        try:
            expectations.append(ExpectationConfiguration(**config).to_domain_obj())
        except Exception as problem:  # noqa: BLE001 - GX raises pydantic and its own errors alike
            raise UserError(f"{source}: expectations[{i}] ({item['type']}): "
                            f"{_one_line(problem)}") from None
    meta = document.get("meta") if isinstance(document.get("meta"), dict) else None
    return gx.ExpectationSuite(name=str(document.get("name") or "modelwatch"),
                               expectations=expectations, meta=dict(meta) if meta else None)


def parse_suite(data: bytes | str, source: str) -> GxSuite:
    """A suite file (GX 1.x JSON; 0.x key names are read too), checked to build with GX.

    Parameters
    ----------
    data : bytes or str
        The file's content.
    source : str
        Its path or URI, named in errors.

    Raises
    ------
    UserError
        The file is not JSON, not a suite, or an expectation GX cannot build (unknown type, bad or
        missing kwargs).
    """
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as problem:
        raise UserError(f"{source}: not valid JSON ({problem})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
        raise UserError(f"{source}: not a GX Expectation Suite (an object with an \"expectations\" "
                        f"list)")
    document = _upgraded(raw)
    build_suite(document, source)
    return GxSuite(document=document, source=source)


def load_gx_suite(store: Store, model: str, version: str,
                  monitor_type: str = "data-quality") -> GxSuite | None:
    """The model's committed suite, found as constraints.json is: `gx_suite.json` in the project's
    baselines/<model>/<version>/<type>/ or baselines/<model>/<type>/ (MODELWATCH_BASELINES), else in
    the store's baselines/<model>/<version>/<type>/. None when there is none (GX is then not
    imported)."""
    from modelwatch.tasks.baselines import load_document

    found = load_document(store, model, version, monitor_type, SUITE_FILE, parse_suite)
    if found is None:
        return None
    suite, source = found
    suite.source = source
    return suite


# ---- the window as GX sees it -------------------------------------------------------------------


def _numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values parsed as numbers (NaN where missing or not a number), and where present text did not
    parse."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        parsed = values.astype("float64")
        return parsed, pd.Series(False, index=values.index)
    parsed = pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype("float64")
    return parsed, values.notna() & parsed.isna()


def _whole(parsed: pd.Series) -> bool:
    present = parsed.dropna().to_numpy()
    return bool(np.all(np.isfinite(present) & (present == np.floor(present))
                       & (np.abs(present) < 2.0**53)))


def _as_numbers(parsed: pd.Series, whole: bool) -> pd.Series:
    return parsed.astype("Int64") if whole else parsed


def _as_text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(values.dtype):
        text = values.map(lambda v: None if pd.isna(v) else repr(float(v)))
    else:
        text = values.map(lambda v: None if v is None or v is pd.NA or
                          (isinstance(v, float) and math.isnan(v)) else str(v))
    return text.astype(object)


def _typed(values: pd.Series, inferred_type: str | None) -> pd.Series:
    if inferred_type == "String":
        return _as_text(values)
    parsed, text = _numbers(values)
    if inferred_type in ("Integral", "Fractional"):
        if text.any():
            # Keep the text where it is, the numbers as numbers: GX's type checks see each value.
            mixed = parsed.map(lambda v: None if math.isnan(v) else
                               int(v) if math.isfinite(v) and v == math.floor(v) and abs(v) < 2.0**53
                               else v).astype(object)
            mixed[text] = values[text].astype(str)
            return mixed
        return _as_numbers(parsed, inferred_type == "Integral" and _whole(parsed))
    # Columns the baseline does not type (the prediction, extras): numbers when all are numbers.
    if text.any() or parsed.isna().all():
        return values if values.dtype != object else _as_text(values)
    return _as_numbers(parsed, _whole(parsed))


def gx_frame(frame: pd.DataFrame | None, constraints: Constraints) -> pd.DataFrame:
    """A window's rows typed as the baseline types them, the frame a suite runs on.

    Integral features are pandas `Int64` when every value is whole (`float64` otherwise), Fractional
    ones `float64`, String ones `object` holding str; a value that does not parse as the baseline's
    number leaves its column `object` with the text in place, so type expectations see it. Other
    columns (the prediction, extra ones) are numbers when every value is, text otherwise. Missing
    values are None/NaN/NA.
    """
    if frame is None:
        return pd.DataFrame()
    types = {f.name: f.inferred_type for f in constraints.features}
    return pd.DataFrame({name: _typed(frame[name].reset_index(drop=True), types.get(name))
                         for name in frame.columns})


# ---- running a suite ----------------------------------------------------------------------------


def _subject(kwargs: dict[str, Any]) -> str:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}, {kwargs.get('column_B')}"
    if isinstance(kwargs.get("column_list"), list):
        return ", ".join(str(c) for c in kwargs["column_list"])
    return ""


def _short(value: Any, limit: int = 40) -> str:
    if isinstance(value, float | np.floating):
        text = f"{float(value):.6g}"
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _expected(kwargs: dict[str, Any]) -> str:
    shown = [f"{k}={_short(v, 60)}" for k, v in kwargs.items() if k not in _RUN_KWARGS]
    return f" ({', '.join(shown)})" if shown else ""


def _exception(info: dict[str, Any]) -> str | None:
    """GX's exception message for an expectation it could not evaluate, else None. It keeps one per
    failed metric (keyed by the metric) or, for its own errors, one at the top."""
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "error")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "error")
    return None


def _assess(item: dict[str, Any], columns: set[str] | None) -> tuple[dict[str, Any], str]:
    """What a validation result found: the Check's value, threshold and rule, and a phrase."""
    config = item.get("expectation_config") or {}
    kwargs = config.get("kwargs") or {}
    result = item.get("result") or {}
    named = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    named += kwargs.get("column_list") if isinstance(kwargs.get("column_list"), list) else []
    absent = [str(c) for c in named if columns is not None and c not in columns]
    if absent and not item.get("success"):
        return {}, f"the window has no column {', '.join(map(repr, absent))}"
    failure = _exception(item.get("exception_info") or {})
    if failure is not None:
        return {}, f"could not be evaluated: {_one_line(Exception(failure))}"
    if "unexpected_count" in result and "element_count" in result:
        mostly = float(kwargs.get("mostly") or 1.0)
        unexpected = int(result["unexpected_count"] or 0)
        share = float(result.get("unexpected_percent") or 0.0) / 100
        # Missing values count for not-null expectations only; the others leave them out.
        considered = int(result["element_count"]) - int(result.get("missing_count") or 0)
        # GX lists (up to 20) unexpected values; a missing value is all a not-null one can show.
        shown = {_short(v): None for v in result.get("partial_unexpected_list") or []
                 if v is not None and not (isinstance(v, float) and math.isnan(v))}
        examples = ", ".join(list(shown)[:3])
        return ({"value": 1.0 - share, "threshold": mostly, "passes": "at least"},
                f"{unexpected} of {considered} values unexpected ({share * 100:.4g}%)"
                f"{', e.g. ' + examples if examples else ''}; at least {mostly * 100:.4g}% must "
                f"meet it")
    observed = result.get("observed_value")
    value = _number(observed)
    low, high = _number(kwargs.get("min_value")), _number(kwargs.get("max_value"))
    fields: dict[str, Any] = {"value": value}
    if value is not None and (low is not None or high is not None):
        fields |= {"threshold": low, "upper": high, "passes": "within"}
    return fields, f"observed {'nothing' if observed is None else _short(observed, 120)}"


def check_of(item: dict[str, Any], sampled: str = "", columns: set[str] | None = None) -> Check:
    """One expectation's validation result (GX's JSON) as a Check: subject its column(s), value the
    share of values that met it (map expectations) or the observed value (aggregates); the
    description names the expectation, its column and what was found. `columns`, the frame's, lets
    an expectation on a column the window lacks say so."""
    config = item.get("expectation_config") or {}
    kwargs = config.get("kwargs") or {}
    subject = _subject(kwargs)
    head = f"{config.get('type') or 'expectation'}" + (f" on '{subject}'" if subject else "")
    fields, finding = _assess(item, columns)
    return Check(subject=subject, check=GX_CHECK, passed=bool(item.get("success")), **fields,
                 description=f"{head}{_expected(kwargs)}: {finding}{sampled}.")


def _key(kind: Any, kwargs: dict[str, Any]) -> str:
    return json.dumps([kind, {k: v for k, v in kwargs.items() if k != "batch_id"}], sort_keys=True,
                      default=str)


def _in_suite_order(suite_configs: list[dict[str, Any]],
                    results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GX lists results in its own order; the report lists them as the suite does."""
    slots: dict[str, list[int]] = {}
    for i, config in enumerate(suite_configs):
        slots.setdefault(_key(config.get("type"), config.get("kwargs") or {}), []).append(i)

    def position(item: dict[str, Any]) -> int:
        config = item.get("expectation_config") or {}
        free = slots.get(_key(config.get("type"), config.get("kwargs") or {}))
        return free.pop(0) if free else len(suite_configs)

    return [item for _, item in sorted(((position(r), i), r) for i, r in enumerate(results))]


def validate_frame(suite: GxSuite, frame: pd.DataFrame) -> dict[str, Any]:
    """GX's validation result (JSON) of a suite on a frame as it is, through an ephemeral context
    (nothing written, no progress bars)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    expectation_suite = build_suite(suite.document, suite.source or "suite")
    with _GX_LOCK:
        # In memory only: no docs site, no progress bars on stderr, no analytics.
        context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            progress_bars=ProgressBarsConfig(globally=False), analytics_enabled=False))
        batch = (context.data_sources.add_pandas("modelwatch").add_dataframe_asset("window")
                 .add_batch_definition_whole_dataframe("rows")
                 .get_batch(batch_parameters={"dataframe": frame}))
        result = batch.validate(expectation_suite, result_format="SUMMARY").to_json_dict()
    built = [e.configuration.to_json_dict() for e in expectation_suite.expectations]
    result["results"] = _in_suite_order(built, list(result.get("results") or []))
    return result


def run_suite(suite: GxSuite, frame: pd.DataFrame | None, constraints: Constraints, *,
              window_rows: int | None = None) -> GxOutcome:
    """Run a committed suite on a window's rows (typed by `gx_frame`): a Check per expectation.

    Parameters
    ----------
    suite : GxSuite
        The suite (`load_gx_suite`).
    frame : pandas.DataFrame or None
        The window's rows, or a uniform sample of them.
    constraints : Constraints
        The baseline's constraints: they type the frame.
    window_rows : int, optional
        Rows in the whole window; when more than the frame holds, descriptions and the note say the
        suite ran on a sample (expectations on aggregates are then estimates).
    """
    typed = gx_frame(frame, constraints)
    rows = len(typed)
    total = max(window_rows or rows, rows)
    result = validate_frame(suite, typed)
    sampled = f" (on a uniform sample of {rows} of {total} rows)" if total > rows else ""
    columns = set(typed.columns)
    checks = [check_of(item, sampled, columns) for item in result["results"]]
    table = [[str((item.get("expectation_config") or {}).get("type")), check.subject or "(window)",
              _assess(item, columns)[1], "Pass" if check.passed else "Violation"]
             for item, check in zip(result["results"], checks, strict=True)]
    failed = sum(not c.passed for c in checks)
    where = (f"a uniform sample of {rows:,} of the window's {total:,} rows; expectations on "
             f"aggregates (means, sums, quantiles, counts of values or rows) are estimates from "
             f"the sample" if sampled else f"all {rows:,} rows of the window")
    note = (f"Great Expectations suite {suite.name!r} ({suite.source}): {len(checks)} expectations, "
            f"{failed} failed, run on {where}")
    return GxOutcome(checks=checks, result=result, rows=rows, window_rows=total, note=note,
                     table=table)


def report_sections(outcome: GxOutcome | None) -> list:
    """report.html's Great Expectations section: every expectation of the suite, what GX found and
    its verdict, and on which rows it ran (nothing when no suite ran)."""
    from modelwatch.tasks.execution_report import Section, Table

    if outcome is None:
        return []
    return [Section(title="Great Expectations", note=outcome.note, tables=[Table(
        title="Expectations", columns=["expectation", "column", "found", "verdict"],
        rows=outcome.table, caption="GX's full results are in gx_validation.json.")])]
