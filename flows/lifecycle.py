"""The life cycle every monitoring execution goes through, whatever its monitor type: begin (withdraw
the window's previous outcome, index it as Running, start a heartbeat), record the outcome of the work
(a failure becomes the execution's outcome), finish (execution.json last, then the index, the alert and
its event, the summary artifact). A run that dies midway leaves a Running entry whose heartbeat stops;
the next execution of the model or the next summary turns it into Failed and tells Prefect it crashed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from modelwatch.flows.retries import STORE_RETRY, retry_unless_user_error
from modelwatch.tasks import progress
from modelwatch.tasks.capture import SkippedFile
from modelwatch.tasks.documents import Check, Execution
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.executions import (
    STALE_HEARTBEATS,
    Attempt,
    attempt_key,
    execution_prefix,
    is_stale,
    read_attempt,
    reconcile,
    record_execution,
    record_running,
)
from modelwatch.tasks.markdown import escape_markdown
from modelwatch.tasks.store import Store, json_bytes

if TYPE_CHECKING:
    from modelwatch.tasks.execution_report import Section

logger = logging.getLogger("modelwatch.lifecycle")
HEARTBEAT_SECONDS = 30.0


def heartbeat_seconds() -> float:
    """Seconds between heartbeats ($MODELWATCH_HEARTBEAT_SECONDS, default 30)."""
    try:
        return max(0.1, float(os.environ.get("MODELWATCH_HEARTBEAT_SECONDS") or HEARTBEAT_SECONDS))
    except ValueError:
        return HEARTBEAT_SECONDS


def stale_after() -> timedelta:
    """How long a running execution may stay silent before it counts as interrupted."""
    return timedelta(seconds=heartbeat_seconds() * STALE_HEARTBEATS)


class Heartbeat:
    """Refreshes attempt.json while an execution runs, from a daemon thread (the work holds no lock
    that could stop it); a store hiccup costs one beat, never the execution."""

    def __init__(self, store_uri: str, key: str, attempt: Attempt) -> None:
        self.store_uri, self.key, self.attempt = store_uri, key, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="modelwatch-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def _beat(self) -> None:
        store = Store(self.store_uri)
        while not self._stop.wait(heartbeat_seconds()):
            self.attempt.heartbeat_at = datetime.now(UTC)
            try:
                store.write_json(self.key, self.attempt.dump())
            except Exception as problem:  # noqa: BLE001 - the next beat tries again
                logger.warning("heartbeat of %s not written: %s", self.key, problem)


@dataclass
class ExecutionRun:
    """An execution in progress: where it is written and its document so far."""

    store_uri: str
    prefix: str
    execution: Execution
    heartbeat: Heartbeat
    documents: dict[str, str] = field(default_factory=dict)

    @property
    def cause(self) -> str:
        return f"execution {self.prefix} (flow run {self.execution.flow_run_id})"


def begin_execution(store_uri: str, model: str, monitor_type: str, version: str, start: datetime,
                    end: datetime, source: str, baseline_sources: dict[str, str]) -> ExecutionRun:
    """Open one window's execution: its previous outcome is withdrawn (a crash midway never leaves a
    stale "done"), the index says Running, and a heartbeat says the run is alive. Interrupted runs of
    the model's earlier executions are settled first."""
    from prefect.runtime import flow_run

    prefix = execution_prefix(model, monitor_type, start, end)
    now = datetime.now(UTC)
    run_id = str(flow_run.id) if flow_run.id else None
    execution = Execution(model=model, model_version=version, monitor_type=monitor_type,
                          window_start=start, window_end=end, status="Completed", capture=source,
                          baseline=baseline_sources, started_at=now, flow_run_id=run_id)
    progress.step(f"opening the {monitor_type} execution of {model}")
    try:
        open_execution_task(store_uri, execution, prefix)
    except Exception as problem:
        # The index may already say Running (the withdrawal or the attempt failed after it): it must
        # say this run failed, not wait for the heartbeat allowance to call it interrupted.
        mark_failed(execution, problem)
        with contextlib.suppress(Exception):  # the store may be down: then the next run settles it
            record_outcome(store_uri, execution, None, f"begin {prefix} ({run_id}) failed")
        raise
    attempt = Attempt(flow_run_id=run_id, started_at=now, heartbeat_at=now, host=socket.gethostname(),
                      pid=os.getpid(), heartbeat_seconds=heartbeat_seconds())
    return ExecutionRun(store_uri, prefix, execution,
                        Heartbeat(store_uri, attempt_key(prefix), attempt).start())


@task(name="begin-execution", cache_policy=NO_CACHE, **STORE_RETRY)
def open_execution_task(store_uri: str, execution: Execution, prefix: str) -> None:
    """Settle the model's interrupted runs, withdraw the window's previous outcome, say who runs it
    and index it as Running (each step may be repeated: a retry after a store fault is harmless)."""
    from modelwatch.tasks.alerts import reevaluate_alert

    store = Store(store_uri)
    now, run_id = execution.started_at or datetime.now(UTC), execution.flow_run_id
    model, monitor_type = execution.model, execution.monitor_type
    settle_interrupted(store_uri, model, monitor_type)
    previous = read_attempt(store, prefix)
    if previous is not None and previous.flow_run_id not in (None, run_id) and \
            is_stale(previous, previous.started_at, now, stale_after()):
        mark_crashed([previous.flow_run_id], f"a later run ({run_id}) of {prefix} found it dead")
    # The index says Running before anything is withdrawn or claimed, so a kill between any two of
    # these steps leaves no entry pointing at a deleted document and no attempt the index lacks.
    record_running(store, execution)
    store.delete(f"{prefix}/execution.json")
    store.write_json(attempt_key(prefix), Attempt(
        flow_run_id=run_id, started_at=now, heartbeat_at=now, host=socket.gethostname(),
        pid=os.getpid(), heartbeat_seconds=heartbeat_seconds()).dump())
    reevaluate_alert(store, model, monitor_type, cause=f"begin {prefix} ({run_id})",
                     evaluate_state=False)


@contextlib.contextmanager
def outcome_recorded(run: ExecutionRun) -> Iterator[None]:
    """Any failure of the work becomes the execution's outcome (Failed, with the reason). A user's
    error is recorded too, then propagates (exit code 2); a kill stops the heartbeat and leaves the
    Running entry for the next run to settle."""
    try:
        yield
    except UserError as problem:
        mark_failed(run.execution, problem)
        with contextlib.suppress(Exception):  # the user's error is what must reach the user
            finish_execution(run, None, "\n".join(
                [*summary_head(run.execution, "not run"),
                 f"Failure: {escape_markdown(run.execution.failure_reason or '')}"]))
        raise
    except Exception as problem:  # noqa: BLE001 - recorded, then finish_execution fails the run
        mark_failed(run.execution, problem)
    except BaseException:
        run.heartbeat.stop()
        raise


def mark_failed(execution: Execution, problem: Exception) -> None:
    execution.status = "Failed"
    execution.failure_reason = f"{type(problem).__name__}: {problem}"[:1024]


def count_violations(execution: Execution, kinds: list[str]) -> None:
    """Violation count and per-kind tally of an execution (check type, or metric name); any violation
    makes it CompletedWithViolations."""
    execution.violation_count = len(kinds)
    for kind in kinds:
        execution.violation_types[kind] = execution.violation_types.get(kind, 0) + 1
    if kinds:
        execution.status = "CompletedWithViolations"


def note_skipped(execution: Execution, skipped: list[SkippedFile]) -> None:
    """Count the files of the window that were not read and say which and why (the first ten)."""
    execution.files_skipped = len(skipped)
    if skipped:
        shown = "; ".join(f"{s.uri}: {s.reason}" for s in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        execution.notes.append(f"{len(skipped)} file(s) in the window were not read: {shown}{more}")


def summary_head(execution: Execution, what: str) -> list[str]:
    """The first lines of an execution's markdown artifact."""
    return [f"### {escape_markdown(execution.model)} · {execution.monitor_type} · {execution.status}",
            f"{escape_markdown(what)}, window {execution.window_start:%Y-%m-%d %H:%M} to "
            f"{execution.window_end:%Y-%m-%d %H:%M} UTC."]


def artifact_key(model: str, monitor_type: str) -> str:
    return f"{model}-{monitor_type}".replace("_", "-").replace(".", "-")


@task(name="write-execution", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=retry_unless_user_error)
def write_outputs_task(store_uri: str, prefix: str, documents: dict[str, bytes]) -> dict[str, str]:
    store = Store(store_uri)
    return {name: store.write_bytes(f"{prefix}/{name}", data) for name, data in documents.items()}


def write_page(execution: Execution, store_uri: str, prefix: str, name: str,
               make: Callable[[], str]) -> None:
    """Render and write one HTML output; a page that could not be rendered is noted, not fatal (the
    verdict's documents are written before it)."""
    progress.step(f"rendering {name}")
    try:
        page = make()
        execution.outputs |= write_outputs_task(store_uri, prefix, {name: page.encode("utf-8")})
    except Exception as problem:  # noqa: BLE001 - noted on the execution
        execution.notes.append(f"{name} not rendered: {type(problem).__name__}: "
                               f"{str(problem)[:300]}")


@task(name="render-report", cache_policy=NO_CACHE)
def render_report_task(execution: Execution, title: str, checks: list[Check],
                       sections: Callable[[], list[Section]]) -> str:
    """report.html of an execution: its status, facts and checks, then the type's `sections()`."""
    from modelwatch.tasks.execution_report import ExecutionReport, render_report, window_facts

    return render_report(ExecutionReport(
        title=title, monitor_type=execution.monitor_type, status=execution.status,
        facts=window_facts(execution), checks=checks, notes=list(execution.notes),
        sections=sections()))


def write_report(execution: Execution, store_uri: str, prefix: str, checks: list[Check],
                 sections: Callable[[], list[Section]] = list, what: str | None = None) -> None:
    """Write the execution's report.html, led by its verdict (see `render_report_task`)."""
    title = (f"{execution.model} {what or execution.monitor_type.replace('-', ' ')}, "
             f"{execution.window_start:%Y-%m-%d %H:%M} to {execution.window_end:%Y-%m-%d %H:%M} UTC")
    write_page(execution, store_uri, prefix, "report.html",
               lambda: render_report_task(execution, title, quote(checks), sections))


@task(name="update-alert", cache_policy=NO_CACHE, **STORE_RETRY)
def update_alert_task(store_uri: str, execution: Execution, metric: float | None,
                      cause: str) -> str | None:
    """Index the execution, re-evaluate the alert; emit an event only on a transition."""
    return record_outcome(store_uri, execution, metric, cause)


def record_outcome(store_uri: str, execution: Execution, metric: float | None,
                   cause: str) -> str | None:
    """Index an outcome and re-evaluate the alert against it; the event id of a transition."""
    from modelwatch.flows.events import emit_transition
    from modelwatch.tasks.alerts import reevaluate_alert

    store = Store(store_uri)
    record_execution(store, execution, metric)
    _, transition = reevaluate_alert(store, execution.model, execution.monitor_type, cause=cause,
                                     model_version=execution.model_version)
    if transition is None:
        return None
    print(f"alert {transition.state} for {execution.model} {execution.monitor_type}: "
          f"{transition.reason}")
    return emit_transition(transition)


def finish_execution(run: ExecutionRun, metric: float | None, markdown: str,
                     metric_name: str | None = None) -> Any:
    """Write execution.json last, index it and re-evaluate the alert, publish the summary artifact;
    a Failed execution then fails the flow run, with everything about it recorded; any other ends it
    in a Completed state named by its status (`verdict_state`), whose result is execution.json.
    When execution.json cannot be written, the index says Failed (never the old outcome), and the
    run fails."""
    store = Store(run.store_uri)
    execution = run.execution
    execution.finished_at = datetime.now(UTC)
    if metric is not None:
        execution.metric, execution.metric_name = metric, metric_name
    key = f"{run.prefix}/execution.json"
    execution.outputs["execution"] = store.uri(key)
    try:
        try:
            write_outputs_task(run.store_uri, run.prefix,
                               {"execution.json": json_bytes(execution.dump())})
        except Exception as problem:
            execution.outputs.pop("execution", None)
            mark_failed(execution, RuntimeError(f"execution.json could not be written: {problem}"))
            with contextlib.suppress(Exception):  # the store may be down: then the heartbeat stops
                record_outcome(run.store_uri, execution, metric, run.cause)
            raise
        progress.step("recording the outcome and re-evaluating the alert")
        update_alert_task(run.store_uri, execution, metric, run.cause)
    finally:
        run.heartbeat.stop()
    with contextlib.suppress(Exception):
        store.delete(attempt_key(run.prefix))
    create_markdown_artifact(
        key=artifact_key(execution.model, execution.monitor_type), markdown=markdown,
        description=f"{execution.model} {execution.monitor_type} execution {execution.status}",
    )
    progress.step("refreshing the model's dashboard row")
    refresh_row_task(run.store_uri, execution.model)
    if execution.status == "Failed":
        raise RuntimeError(f"{execution.monitor_type} execution failed: {execution.failure_reason}")
    return verdict_state(execution)


@task(name="refresh-dashboard-row", cache_policy=NO_CACHE)
def refresh_row_task(store_uri: str, model: str) -> bool:
    """The model's dashboard row and page, brought up to date with this execution. The execution
    is already recorded: a refresh that fails is logged, and the next summary or execution redoes it."""
    from modelwatch.flows.summary import refresh_model_row

    try:
        return refresh_model_row(store_uri, model)
    except Exception as problem:  # noqa: BLE001 - logged; the outcome is already written
        logger.warning("dashboard row of %s not refreshed: %s: %s", model, type(problem).__name__,
                       problem)
        return False


def verdict_state(execution: Execution) -> Any:
    """The flow run's final state, named as SageMaker names the execution's status (Completed,
    CompletedWithViolations, NoData), so Prefect's run list shows which windows drifted; its result
    is execution.json's document."""
    from prefect.states import Completed

    if execution.status == "CompletedWithViolations":
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(execution.violation_types.items()))
        message = f"{execution.violation_count} violation(s): {kinds}"
    elif execution.status == "NoData":
        message = "; ".join(execution.notes) or "no usable records in the window"
    else:
        message = f"no violation in {execution.rows_profiled} rows"
    return Completed(name=execution.status, message=message[:500], data=execution.dump())


def settle_interrupted(store_uri: str, model: str, monitor_type: str) -> list[str]:
    """Turn the model's Running entries whose runs died into Failed, re-evaluate its alert (and emit
    what changes), and tell Prefect those flow runs crashed. Returns the interrupted windows."""
    from modelwatch.flows.events import emit_transition
    from modelwatch.tasks.alerts import reevaluate_alert

    store = Store(store_uri)
    _, interrupted = reconcile(store, model, monitor_type, datetime.now(UTC), stale_after())
    if not interrupted:
        return []
    cause = "interrupted " + ", ".join(f"{e.window_start:%Y%m%dT%H%M%SZ} ({e.flow_run_id})"
                                       for e in interrupted)
    _, transition = reevaluate_alert(store, model, monitor_type, cause=cause)
    if transition is not None:
        emit_transition(transition)
    mark_crashed([e.flow_run_id for e in interrupted if e.flow_run_id],
                 f"{model} {monitor_type}: the run stopped without an outcome (no heartbeat)")
    return [f"{e.window_start.isoformat()}/{e.window_end.isoformat()}" for e in interrupted]


def mark_crashed(flow_run_ids: list[str], reason: str) -> None:
    """Set flow runs Prefect still thinks are running (the process was killed) to Crashed. Never fails
    the caller: Prefect's view is a courtesy, the store is the record."""
    if not flow_run_ids:
        return
    try:
        from uuid import UUID

        from prefect import get_client
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            for run_id in flow_run_ids:
                found = client.read_flow_run(UUID(run_id))
                if found.state is not None and not found.state.is_final():
                    client.set_flow_run_state(found.id, Crashed(message=reason), force=True)
    except Exception as problem:  # noqa: BLE001
        logger.warning("could not mark flow run(s) %s crashed: %s", ", ".join(flow_run_ids), problem)
