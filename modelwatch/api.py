"""The public Python API: what the CLI does, as functions (importable from ``modelwatch``). Each one
checks its inputs before any Prefect work starts and raises UserError for what the caller got wrong.
Flows run against ``PREFECT_API_URL`` when set, else the local background Prefect server
(:mod:`modelwatch.flows.local_server`), started on first need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelwatch.tasks.errors import UserError

__all__ = ["ExecutionDocuments", "ExecutionFailed", "check_dataset", "compare_variants",
           "merge_ground_truth", "read_execution", "run_monitor", "suggest_baseline",
           "summarize_fleet", "window"]


class ExecutionFailed(RuntimeError):
    """A monitoring execution ended Failed. ``execution`` is the run's execution document (status
    Failed and its failure_reason), ``reason`` why it failed."""

    def __init__(self, execution: dict[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.execution, self.reason = execution, reason


def _store(store: str | None, writable: bool = False) -> Any:
    from modelwatch.tasks.store import Store, default_store_uri

    return Store(store or default_store_uri()).check(writable=writable)


def _api() -> None:
    """Before the first flow: the configured Prefect API, else the local background server (checks of
    the user's input come first, so a mistake is reported without waiting for a server)."""
    from modelwatch.flows.local_server import ensure_api

    ensure_api()


def _moment(value: datetime | str, what: str) -> datetime:
    from datetime import UTC

    from modelwatch.tasks.windows import parse_time

    if isinstance(value, str):
        return parse_time(value, what)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def window(start: datetime | str, end: datetime | str) -> tuple[datetime, datetime]:
    """A window [start, end) in UTC from ISO-8601 texts or datetimes (no zone means UTC); an end
    not after the start, or a window longer than MODELWATCH_MAX_WINDOW, is a UserError."""
    from modelwatch.tasks.windows import utc_window

    begin, finish = _moment(start, "--start"), _moment(end, "--end")
    if finish <= begin:
        raise UserError(f"--end {end} must be after --start {start}")
    return utc_window(begin, finish, "--start/--end window")


def suggest_baseline(model: str, dataset: str, *, monitor_type: str = "data-quality",
                     label: str | None = None, version: str = "1", store: str | None = None,
                     **options: Any) -> dict[str, Any]:
    """Suggest a monitor type's baseline for a model version from a dataset.

    Parameters
    ----------
    model : str
        The model's name (a slug: lower-case letters, digits and dashes).
    dataset : str
        A CSV or Parquet file, a path or a URI (``s3://...``).
    monitor_type : str, default "data-quality"
        A registered monitor type (``modelwatch.monitor_types()``).
    label : str, optional
        The label column, left out of the features (model-quality and bias-drift need it).
    version : str, default "1"
        The model version the baseline belongs to.
    store : str, optional
        The store root: a folder or ``s3://bucket/prefix``. Default ``$MODELWATCH_STORE``, else
        ``./modelwatch-store``.
    **options
        The type's own baseline options, e.g. ``categorical_drift_method="ChiSquared"`` for
        data-quality, ``prediction=..., facet=[...]`` for bias-drift (``modelwatch baseline suggest
        --help`` lists them per type).

    Returns
    -------
    dict
        The URIs of the documents written (statistics, constraints, baseline manifest, ...) and,
        for data-quality, the baseline's warnings.

    Examples
    --------
    >>> import modelwatch
    >>> modelwatch.suggest_baseline("churn", "data/train.csv", label="churned")  # doctest: +SKIP
    {'statistics': '.../baselines/churn/1/data-quality/statistics.json', ...}
    """
    from modelwatch.flows.monitor_types import get_monitor, parse_options
    from modelwatch.tasks.capture import dataset_columns
    from modelwatch.tasks.store import check_slug, filesystem_for

    monitor = get_monitor(monitor_type)
    parsed = parse_options(monitor.baseline_options, options, monitor_type, "baseline")
    check_slug(model, "model name")
    check_slug(version, "model version")
    _store(store, writable=True)
    fs, path = filesystem_for(dataset)
    if not fs.isfile(path):
        raise UserError(f"--dataset {dataset}: no such file (expected a CSV or Parquet dataset)")
    columns = dataset_columns(dataset)
    if label and columns and label not in columns:
        raise UserError(f"--label {label!r} is not a column of {dataset}; columns are "
                        f"{', '.join(columns)}")
    monitor.check_baseline_options(parsed, label, dataset, columns)
    _api()
    return monitor.suggest_baseline(model=model, dataset=dataset, version=version, label=label,
                                    store=store, options=parsed)


def run_monitor(model: str, start: datetime | str, end: datetime | str, *,
                monitor_type: str = "data-quality", source: str | list[str] | None = None,
                version: str | None = None, store: str | None = None, allow_empty: bool = False,
                **options: Any) -> dict[str, Any]:
    """Run one monitoring execution over the window [start, end).

    Everything a caller can get wrong is checked before Prefect is contacted or any flow runs: the
    model (an unknown one is named with the models there), its baseline, the window, and the
    records (`Monitor.check_run_inputs`): the roots exist and the window's hour folders hold files.
    An empty window asked for on demand is most likely a wrong window or root, so it is an error
    unless `allow_empty`; scheduled runs do not come through here and record an hour without
    traffic as NoData.

    Parameters
    ----------
    model : str
        The model's name.
    start, end : datetime or str
        The window, ISO-8601 text or datetimes (UTC when they carry no zone); `end` is exclusive.
    monitor_type : str, default "data-quality"
        A registered monitor type.
    source : str or list of str, optional
        What to read: capture roots (``<root>/<variant>/YYYY/MM/DD/HH/*.jsonl``) for types that read
        capture, merged-data roots for model-quality and bias-drift. Default: the model's registered
        endpoints'.
    version : str, optional
        The baseline version; default the latest.
    store : str, optional
        The store root (see `suggest_baseline`).
    allow_empty : bool, default False
        Run (and record a NoData execution) even when no file lies in the window's hour folders.
    **options
        The type's own run options, e.g. ``report=False`` for data-quality, ``min_records=500``.

    Returns
    -------
    dict
        The execution document (execution.json): status Completed, CompletedWithViolations or
        NoData, counts, violation tally, headline metric and the URIs of its outputs.

    Raises
    ------
    ExecutionFailed
        The execution ran and failed (its document, status Failed, is on the exception).
    UserError
        An unknown model, type or option, a missing baseline, a bad window, a root that does not
        exist or (unless `allow_empty`) a window without files: found before any work starts.

    Examples
    --------
    >>> modelwatch.run_monitor("churn", "2026-11-24", "2026-11-25",
    ...                        source="s3://bucket/capture/churn", report=False)  # doctest: +SKIP
    {'model': 'churn', 'monitor_type': 'data-quality', 'status': 'Completed', ...}
    """
    from modelwatch.flows.monitor_types import get_monitor, parse_options
    from modelwatch.tasks.baselines import check_known_model
    from modelwatch.tasks.store import check_slug

    monitor = get_monitor(monitor_type)
    parsed = parse_options(monitor.run_options, options, monitor_type, "run")
    begin, finish = window(start, end)
    check_slug(model, "model name")
    the_store = _store(store, writable=True)
    check_known_model(the_store, model)
    sources = [source] if isinstance(source, str) else list(source) if source else None
    # The records before the baseline: loading one may import its type's flows (Prefect, shap).
    monitor.check_run_inputs(the_store, model, begin, finish, sources, parsed, allow_empty)
    monitor.load_baseline(the_store, model, version)  # a missing or broken baseline, before Prefect
    _api()
    state = monitor.run(model=model, start=begin, end=finish, source=sources, store=store,
                        version=version, options=parsed, return_state=True)
    document, failure = execution_of(state, model, monitor_type, begin, finish, store)
    if failure is not None:
        raise ExecutionFailed(document, failure)
    return document


def execution_of(state: Any, model: str, monitor_type: str, begin: datetime, finish: datetime,
                 store: str | None) -> tuple[dict[str, Any], str | None]:
    """(the execution document of the run this flow state belongs to, why it failed or None). Only
    a document written by that very flow run is reported: an older execution.json of the same window
    is never passed off as this run's outcome."""
    run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    if not state.is_failed() and not state.is_crashed():
        return state.result(), None
    try:
        state.result()
        problem: BaseException = RuntimeError(state.message or f"flow run ended {state.name}")
    except UserError:
        raise
    except BaseException as raised:  # noqa: BLE001 - reported as this run's failure
        problem = raised
    reason = f"{type(problem).__name__}: {problem}"[:2000]
    from modelwatch.tasks.executions import execution_prefix
    from modelwatch.tasks.store import Store, default_store_uri
    from modelwatch.tasks.windows import iso_z

    key = f"{execution_prefix(model, monitor_type, begin, finish)}/execution.json"
    try:
        the_store = Store(store or default_store_uri())
        document = the_store.read_json(key) if the_store.exists(key) else None
    except Exception:  # noqa: BLE001 - the store may be what failed
        document = None
    if document is not None and run_id is not None and document.get("flow_run_id") == run_id:
        if document.get("status") == "Failed":
            return document, document.get("failure_reason") or reason
        return document, f"the execution finished {document.get('status')} but recording its " \
                         f"outcome failed: {reason}"
    return {"model": model, "monitor_type": monitor_type, "window_start": iso_z(begin),
            "window_end": iso_z(finish), "status": "Failed", "failure_reason": reason,
            "flow_run_id": run_id}, reason


def merge_ground_truth(endpoint: str, start: datetime | str, end: datetime | str, *,
                       lookback: str = "P7D", store: str | None = None) -> dict[str, Any]:
    """Merge an endpoint's captured records of [start, end) with their ground-truth labels.

    Parameters
    ----------
    endpoint : str
        A registered endpoint.
    start, end : datetime or str
        The window (whole hours).
    lookback : str, default "P7D"
        ISO-8601 duration: labels labelled this long before or after the window are joined.
    store : str, optional
        The store root.

    Returns
    -------
    dict
        The merge report (captures read and matched, labels pending, unknown or duplicated) also
        written under merged/<endpoint>/reports/.

    Examples
    --------
    >>> modelwatch.merge_ground_truth("churn-live", "2026-11-24", "2026-11-25")  # doctest: +SKIP
    """
    from modelwatch.flows.merge import merge_ground_truth as merge
    from modelwatch.flows.scale_out import on_cluster

    the_store, begin, finish = check_merge_inputs(endpoint, start, end, lookback, store)
    _api()
    return on_cluster(merge)(endpoint=endpoint, start=begin, end=finish, lookback=lookback,
                             store=the_store.root)


def check_merge_inputs(endpoint: str, start: datetime | str, end: datetime | str, lookback: str,
                       store: str | None) -> tuple[Any, datetime, datetime]:
    """(the store, window start, window end) of a ground-truth merge, once the endpoint's name and
    registration, the window (whole hours) and the lookback are checked (UserError otherwise)."""
    from modelwatch.tasks.registry import get_endpoint
    from modelwatch.tasks.store import check_slug
    from modelwatch.tasks.windows import check_window, parse_duration

    check_slug(endpoint, "endpoint name")
    begin, finish = check_window(*window(start, end))
    parse_duration(lookback, "--lookback")
    the_store = _store(store, writable=True)
    get_endpoint(the_store, endpoint)
    return the_store, begin, finish


def compare_variants(endpoint: str, metric: str, start: datetime | str, end: datetime | str, *,
                     variants: tuple[str, str] | None = None, model: str | None = None,
                     confidence: float = 0.95, threshold: float | None = None,
                     store: str | None = None) -> dict[str, Any]:
    """Compare two production variants' model quality over one window (an A/B test).

    Reads the endpoint's merged records of the window (run the ground-truth merge first), computes
    the metric per variant with its bootstrap standard deviation, and the difference's interval
    and p-value. Needs no Prefect API.

    Parameters
    ----------
    endpoint : str
        A registered endpoint.
    metric : str
        A metric of the model's problem type: ``accuracy``, ``precision``, ``recall``, ``f1``,
        ``auc``... for classification, ``mae``, ``mse``, ``rmse``, ``r2`` for regression.
    start, end : datetime or str
        The window [start, end), ISO-8601 (UTC when no zone is given).
    variants : (str, str), optional
        The control and the treatment; the difference is treatment minus control. Default: the
        window's two variants, in name order (an error when it holds more than two).
    model : str, optional
        The model of a multi-model endpoint (default: the endpoint's model).
    confidence : float, default 0.95
        Confidence level of the intervals; the difference is significant when p < 1 - confidence.
    threshold : float, optional
        Score threshold of a binary model that outputs scores only (default: the baseline's, else
        0.5).
    store : str, optional
        The store root.

    Returns
    -------
    dict
        The VariantComparison: each variant's records, value, standard deviation and interval;
        ``difference``, ``ci_low``, ``ci_high``, ``p_value``, ``significant`` and ``better``.

    Examples
    --------
    >>> compare_variants("churn-ep", "accuracy", "2026-11-23T00:00Z", "2026-11-24T00:00Z",
    ...                  variants=("control", "candidate"))  # doctest: +SKIP
    """
    from modelwatch.tasks import variants as core
    from modelwatch.tasks.store import check_slug

    check_slug(endpoint, "endpoint name")
    begin, finish = window(start, end)
    records = core.endpoint_window(_store(store), endpoint, model, begin, finish)
    cut = threshold if threshold is not None else records.threshold
    statistics = core.variant_statistics(records.batch, records.problem_type, cut)
    statistics.pop(core.UNKNOWN_VARIANT, None)
    if variants is None:
        if len(statistics) != 2:
            raise UserError(f"the window of {endpoint!r} holds {len(statistics)} variant(s) with "
                            f"labelled records ({', '.join(sorted(statistics)) or 'none'}); name the "
                            "two to compare with --variants CONTROL TREATMENT")
        control, treatment = sorted(statistics)
    else:
        control, treatment = variants
    result = core.compare_variants(statistics, control, treatment, metric, confidence=confidence,
                                   endpoint=endpoint, model=records.model, window=(begin, finish))
    return result.dump()


def summarize_fleet(store: str | None = None) -> dict[str, Any]:
    """Build the model dashboard (one row per registered model, a status per monitor type) and
    re-evaluate alerts whose criteria changed.

    Parameters
    ----------
    store : str, optional
        The store root.

    Returns
    -------
    dict
        ``outputs`` (the URIs of dashboard/models.json, .parquet and index.html), ``in_alarm``
        (model -> the monitor types in alarm), ``problems`` (models that could not be fully
        summarised, and why).
    """
    from modelwatch.flows.summary import summarize_fleet as summarize

    _store(store, writable=True)
    _api()
    return summarize(store=store)


@dataclass
class ExecutionDocuments:
    """An execution's documents, read back: execution.json and each JSON output by file name
    (statistics.json, constraint_violations.json, analysis.json); `uris` says where each lies."""

    execution: dict[str, Any]
    documents: dict[str, Any]
    uris: dict[str, str]

    @property
    def violations(self) -> list[dict[str, Any]]:
        return list((self.documents.get("constraint_violations.json") or {}).get("violations", []))


def read_execution(model: str, start: datetime | str, end: datetime | str, *,
                   monitor_type: str = "data-quality", store: str | None = None) -> ExecutionDocuments:
    """Read one execution's documents back from the store.

    Parameters
    ----------
    model : str
        The model's name.
    start, end : datetime or str
        The execution's window, as it was run.
    monitor_type : str, default "data-quality"
    store : str, optional
        The store root.

    Returns
    -------
    ExecutionDocuments
        execution.json, its JSON outputs by name, and their URIs.

    Examples
    --------
    >>> found = modelwatch.read_execution("churn", "2026-11-24", "2026-11-25")  # doctest: +SKIP
    >>> found.execution["status"], len(found.violations)  # doctest: +SKIP
    ('CompletedWithViolations', 3)
    """
    from modelwatch.flows.monitor_types import get_monitor
    from modelwatch.tasks.executions import execution_prefix

    get_monitor(monitor_type)
    begin, finish = window(start, end)
    the_store = _store(store)
    prefix = execution_prefix(model, monitor_type, begin, finish)
    key = f"{prefix}/execution.json"
    if not the_store.exists(key):
        raise UserError(f"model {model!r} has no {monitor_type} execution of "
                        f"{begin.isoformat()} to {finish.isoformat()} ({the_store.uri(key)})")
    execution = the_store.read_json(key)
    documents, uris = {}, {"execution.json": the_store.uri(key)}
    for found in the_store.list(prefix):
        name = found.rsplit("/", 1)[-1]
        if name.endswith(".json") and name != "execution.json":
            documents[name] = the_store.read_json(found)
            uris[name] = the_store.uri(found)
    return ExecutionDocuments(execution, documents, uris)


def check_dataset(model: str, dataset: str, *, monitor_type: str = "data-quality",
                  version: str | None = None, store: str | None = None) -> Any:
    """Check a whole dataset against the model's baseline of a type (see `modelwatch.prefect` for
    the check steps built on it).

    Returns
    -------
    DatasetCheck
        The baseline version, the documents computed and the violations.
    """
    from modelwatch.flows.monitor_types import get_monitor

    monitor = get_monitor(monitor_type)
    return monitor.check_dataset(_store(store), model, dataset, version)
