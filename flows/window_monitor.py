"""A base for monitor types written as two plain functions: `suggest` (a baseline from the training
frame) and `check` (a window's frame against it). The flows here do the rest, as for the built-in
types: reading the window's capture or merged records, the execution's life cycle (index, heartbeat,
alert, events), its documents and the quarantine of malformed records.

A type built on it writes, under baselines/<model>/<version>/<type>/, the statistics.json and
constraints.json its `suggest` returns and a baseline.json manifest; a reviewed constraints.json in
the project's baselines/ folder wins, as for every type. Each execution writes statistics.json,
constraint_violations.json (SageMaker's violation shape) and quarantine.jsonl.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd
from prefect import flow

from modelwatch.flows.lifecycle import (
    begin_execution,
    count_violations,
    finish_execution,
    note_skipped,
    outcome_recorded,
    summary_head,
    write_outputs_task,
    write_report,
)
from modelwatch.flows.monitor_types import Monitor, get_monitor, parse_options
from modelwatch.tasks import progress
from modelwatch.tasks.baselines import baseline_prefix, latest_version, load_document, require_document
from modelwatch.tasks.documents import Check, Violation
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.markdown import escape_markdown
from modelwatch.tasks.store import Store, check_slug, default_store_uri, json_bytes
from modelwatch.tasks.windows import utc_window

if TYPE_CHECKING:
    from modelwatch.tasks.execution_report import Section

LABEL_COLUMN = "label"  # merged records: the ground truth, when the baseline named no label
PREDICTION_COLUMN = "prediction"


@dataclass
class WindowBaseline:
    """A loaded baseline of a WindowMonitor type."""

    version: str
    statistics: dict[str, Any] | None
    constraints: dict[str, Any]
    manifest: dict[str, Any]
    sources: dict[str, str]

    @property
    def features(self) -> list[str]:
        return list(self.manifest.get("features") or [])


@dataclass
class WindowOutcome:
    """What `check` found in a window.

    Parameters
    ----------
    statistics : dict
        The window's statistics (written as statistics.json).
    violations : list of Violation
        Each broken constraint (SageMaker's shape: feature_name, constraint_check_type,
        description); any violation makes the execution CompletedWithViolations.
    metric : float, optional
        The headline metric's value for the trend chart.
    notes : list of str
        Remarks kept on the execution (e.g. a feature left unchecked).
    checks : list of Check, optional
        Every check made, passed or not, for report.html's table (subject, check, value,
        threshold, which side passes). Default: the violations alone, as failed checks.
    """

    statistics: dict[str, Any]
    violations: list[Violation] = field(default_factory=list)
    metric: float | None = None
    notes: list[str] = field(default_factory=list)
    checks: list[Check] | None = None

    def all_checks(self) -> list[Check]:
        if self.checks is not None:
            return self.checks
        return [Check(subject=v.feature_name or "", check=v.constraint_check_type, passed=False,
                      description=v.description) for v in self.violations]


def _json(data: bytes, source: str) -> dict[str, Any]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as problem:
        raise UserError(f"{source}: not valid JSON ({problem})") from None
    if not isinstance(document, dict):
        raise UserError(f"{source}: expected a JSON object")
    return document


class WindowMonitor(Monitor):
    """A monitor type that implements only `suggest` and `check` (see the module's docstring).

    Examples
    --------
    >>> class RowCount(WindowMonitor):  # doctest: +SKIP
    ...     name, label = "row-count", "Row count"
    ...     headline = Headline(name="rows", direction="lower-is-worse")
    ...     def suggest(self, frame, options):
    ...         return {"rows": len(frame)}, {"min_rows": len(frame) // 10}
    ...     def check(self, baseline, frame, options):
    ...         low = len(frame) < baseline.constraints["min_rows"]
    ...         return WindowOutcome({"rows": len(frame)}, [Violation(
    ...             feature_name="-", constraint_check_type="row_count_check",
    ...             description="too few rows")] if low else [], metric=len(frame))
    """

    @abstractmethod
    def suggest(self, frame: pd.DataFrame, options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(statistics, constraints) of the training frame (its features; the label is left out)."""

    @abstractmethod
    def check(self, baseline: WindowBaseline, frame: pd.DataFrame, options: Any) -> WindowOutcome:
        """A window's frame (the baseline's feature columns, as text or typed values; merged records
        add the label and the prediction) against the baseline."""

    def report_sections(self, baseline: WindowBaseline, outcome: WindowOutcome) -> list[Section]:
        """The pictures of report.html after the checks (charts and tables); default none."""
        return []

    def suggest_baseline(self, *, model: str, dataset: str, version: str, label: str | None,
                         store: str | None, options: Any) -> dict[str, Any]:
        suggest = suggest_window_baseline.with_options(name=f"baseline-suggest-{self.name}")
        return suggest(monitor_type=self.name, model=model, dataset=dataset, version=version,
                       label=label, store=store, options=options.model_dump())

    def load_baseline(self, store: Store, model: str, version: str | None) -> WindowBaseline:
        version = version or latest_version(store, model)
        constraints, source = require_document(store, model, version, self.name,
                                               "constraints.json", _json)
        sources = {"constraints": source}
        statistics = None
        found = load_document(store, model, version, self.name, "statistics.json", _json)
        if found is not None:
            statistics, sources["statistics"] = found
        key = f"{baseline_prefix(model, version, self.name)}/baseline.json"
        manifest = store.read_json(key) if store.exists(key) else {}
        if not manifest.get("features"):
            raise UserError(f"model {model!r} version {version}: the {self.name} baseline has no "
                            f"{store.uri(key)} naming its features (suggest it with `modelwatch "
                            f"baseline suggest --type {self.name} ...`)")
        return WindowBaseline(version, statistics, constraints, manifest, sources)

    def run(self, *, model: str, start: datetime, end: datetime, source: list[str] | None,
            store: str | None, version: str | None, options: Any,
            return_state: bool = False) -> Any:
        execute = run_window_monitor.with_options(name=f"monitor-{self.name}")
        return execute(monitor_type=self.name, model=model, start=start, end=end, source=source,
                       store=store, version=version, options=options.model_dump(),
                       return_state=return_state)


def _window_monitor(monitor_type: str) -> WindowMonitor:
    monitor = get_monitor(monitor_type)
    if not isinstance(monitor, WindowMonitor):
        raise UserError(f"monitor type {monitor_type!r} is not a WindowMonitor")
    return monitor


@flow(name="baseline-suggest-window-monitor", log_prints=True)
def suggest_window_baseline(monitor_type: str, model: str, dataset: str, version: str = "1",
                            label: str | None = None, store: str | None = None,
                            options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Suggest and write a WindowMonitor type's baseline from a CSV/Parquet dataset."""
    from modelwatch.tasks.capture import read_dataset

    monitor = _window_monitor(monitor_type)
    parsed = parse_options(monitor.baseline_options, options or {}, monitor_type, "baseline")
    check_slug(model, "model name")
    check_slug(version, "model version")
    the_store = Store(store or default_store_uri())
    frame = read_dataset(dataset).to_pandas()
    if label is not None and label not in frame.columns:
        raise UserError(f"dataset {dataset}: label column {label!r} not found; columns are "
                        f"{', '.join(frame.columns)}")
    if frame.empty:
        raise UserError(f"dataset {dataset}: no rows")
    features = [c for c in frame.columns if c != label]
    statistics, constraints = monitor.suggest(frame[features], parsed)
    prefix = baseline_prefix(model, version, monitor_type)
    manifest = {"model": model, "version": version, "monitor_type": monitor_type,
                "dataset": dataset, "label": label, "features": features,
                "options": parsed.model_dump(), "item_count": len(frame),
                "created_at": datetime.now(UTC).isoformat()}
    return {
        "statistics": the_store.write_json(f"{prefix}/statistics.json", statistics),
        "constraints": the_store.write_json(f"{prefix}/constraints.json", constraints),
        "baseline": the_store.write_json(f"{prefix}/baseline.json", manifest),
    }


@dataclass
class _Window:
    frame: pd.DataFrame
    files: int
    quarantine: list[dict[str, Any]]


def _read_capture(execution: Any, roots: list[str], features: list[str], start: datetime,
                  end: datetime, untimed: str) -> _Window:
    from modelwatch.flows.window_records import list_files_task, read_inputs_task

    files, skipped = list_files_task(roots, start, end)
    progress.step("reading capture records")
    progress.expect("files read", len(files))
    found = read_inputs_task(files, features, (start, end), untimed)
    note_skipped(execution, skipped + found.skipped)
    execution.records_read = found.records_read
    execution.records_outside_window = found.records_outside_window
    execution.records_without_time = found.records_without_time
    execution.blank_lines = found.blank_lines
    return _Window(found.frame, len(files) - len(found.skipped), found.quarantine)


def _read_merged(execution: Any, store: Store, model: str, source: list[str] | None,
                 roots: list[str], baseline: WindowBaseline, start: datetime,
                 end: datetime) -> _Window:
    from modelwatch.flows.window_records import check_merges_finished, merged_files, read_merged_task

    check_merges_finished(store, model, source, start, end)
    files = merged_files(roots, start, end)
    progress.step("reading merged records (capture with ground truth)")
    progress.expect("merged files read", len(files))
    batch = read_merged_task(files, baseline.features)
    frame = batch.input_frame(baseline.features)
    frame[baseline.manifest.get("label") or LABEL_COLUMN] = batch.labels
    frame[PREDICTION_COLUMN] = batch.predictions
    execution.records_read = batch.records_read
    execution.blank_lines = batch.blank_lines
    return _Window(frame, len(files), batch.quarantine)


@flow(name="monitor-window-monitor", log_prints=True)
def run_window_monitor(monitor_type: str, model: str, start: datetime, end: datetime,
                       source: list[str] | None = None, store: str | None = None,
                       version: str | None = None,
                       options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One execution of a WindowMonitor type over [start, end); returns execution.json."""
    from modelwatch.flows.window_records import capture_roots, merged_roots

    monitor = _window_monitor(monitor_type)
    parsed = parse_options(monitor.run_options, options or {}, monitor_type, "run")
    check_slug(model, "model name")
    start, end = utc_window(start, end)
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    baseline = monitor.load_baseline(the_store, model, version)
    roots = (capture_roots(the_store, model, source) if monitor.reads == "capture"
             else merged_roots(the_store, model, source))
    run = begin_execution(store_uri, model, monitor_type, baseline.version, start, end,
                          ", ".join(roots), baseline.sources)
    execution = run.execution
    outcome: WindowOutcome | None = None
    with outcome_recorded(run):
        if monitor.reads == "capture":
            window = _read_capture(execution, roots, baseline.features, start, end,
                                   getattr(parsed, "untimed", "quarantine"))
        else:
            window = _read_merged(execution, the_store, model, source, roots, baseline, start,
                                  end)
        execution.files_read = window.files
        execution.records_malformed = len(window.quarantine)
        execution.rows_profiled = len(window.frame)
        documents = {"quarantine.jsonl": b"".join(orjson.dumps(q) + b"\n" for q in window.quarantine)}
        if window.frame.empty:
            execution.status = "NoData"
            execution.notes.append(f"the window held no usable {monitor.reads} records")
        else:
            progress.step(f"computing {monitor.label} on {len(window.frame):,} records")
            outcome = monitor.check(baseline, window.frame, parsed)
            execution.notes += outcome.notes
            documents["statistics.json"] = json_bytes(outcome.statistics)
            documents["constraint_violations.json"] = json_bytes(
                {"violations": [v.dump() for v in outcome.violations]})
            count_violations(execution, [v.constraint_check_type for v in outcome.violations])
        execution.outputs = write_outputs_task(store_uri, run.prefix, documents)
        write_report(execution, store_uri, run.prefix,
                     outcome.all_checks() if outcome is not None else [],
                     lambda: monitor.report_sections(baseline, outcome) if outcome is not None
                     else [], what=monitor.label)
    lines = summary_head(execution, f"{execution.rows_profiled} {monitor.reads} records")
    if outcome is not None:
        lines += [f"- {escape_markdown(v.description)}" for v in outcome.violations]
    return finish_execution(run, outcome.metric if outcome else None, "\n".join(lines),
                            metric_name=monitor.headline.name)
