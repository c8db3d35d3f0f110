"""Prefect tasks to put in your own flows, like SageMaker Pipelines' QualityCheckStep and
ClarifyCheckStep: check a dataset against a model's baseline before you register the model,
optionally failing the flow on violations and registering the dataset's own baseline for the new
version; and run a monitor or a merge as a step.

Examples
--------
>>> from prefect import flow
>>> from modelwatch.prefect import quality_check
>>> @flow
... def train_and_register(training: str):
...     quality_check("churn", training, label="churned", register_baseline="2")
...     ...  # train, then register version 2 (modelwatch models add-version ...)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

__all__ = ["CheckFailed", "bias_check", "monitor_task", "quality_check", "run_check"]


class CheckFailed(RuntimeError):
    """A check step found violations and was asked to fail on them; ``result`` is what it found."""

    def __init__(self, result: dict[str, Any]) -> None:
        kinds = sorted({v.get("constraint_check_type") or v.get("metric_name") or "?"
                        for v in result["violations"]})
        super().__init__(f"{result['monitor_type']} check of {result['dataset']} against model "
                         f"{result['model']!r} baseline v{result['baseline_version']}: "
                         f"{len(result['violations'])} violation(s) ({', '.join(kinds)})")
        self.result = result


def run_check(monitor_type: str, model: str, dataset: str, *, version: str | None = None,
              fail_on_violations: bool = True, register_baseline: str | None = None,
              label: str | None = None, store: str | None = None,
              **options: Any) -> dict[str, Any]:
    """The check steps' work (`quality_check`, `bias_check`) for any type that offers dataset
    checks, callable outside a Prefect task too."""
    from modelwatch.api import check_dataset, suggest_baseline
    from modelwatch.flows.monitor_types import get_monitor
    from modelwatch.tasks.baselines import baseline_prefix, latest_version
    from modelwatch.tasks.errors import UserError
    from modelwatch.tasks.store import Store, check_slug, default_store_uri

    get_monitor(monitor_type)
    check_slug(model, "model name")
    if register_baseline is not None:
        check_slug(register_baseline, "model version")
    store_uri = store or default_store_uri()
    the_store = Store(store_uri).check(writable=True)
    versions = the_store.list_dirs(f"baselines/{model}")
    chosen = version or (latest_version(the_store, model) if versions else None)
    has_baseline = chosen is not None and the_store.exists(
        f"{baseline_prefix(model, chosen, monitor_type)}/baseline.json")
    result: dict[str, Any] = {"model": model, "monitor_type": monitor_type, "dataset": dataset,
                              "baseline_version": chosen, "violations": [], "outputs": {},
                              "registered": None}
    if not has_baseline:
        if register_baseline is None:
            raise UserError(f"model {model!r} has no {monitor_type} baseline to check {dataset} "
                            "against: pass register_baseline to suggest the first one")
        result["status"] = "NoBaseline"  # SageMaker's first run: nothing to check, just register
    else:
        found = check_dataset(model, dataset, monitor_type=monitor_type, version=chosen,
                              store=store_uri)
        result["baseline_version"] = found.baseline_version
        result["violations"] = found.violations
        result["status"] = "CompletedWithViolations" if found.violations else "Completed"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        prefix = f"checks/{model}/{monitor_type}/{stamp}"
        result["outputs"] = {name: the_store.write_json(f"{prefix}/{name}", document)
                             for name, document in found.documents.items()}
        if found.violations and fail_on_violations:
            raise CheckFailed(result)
    if register_baseline is not None:
        result["registered"] = suggest_baseline(model, dataset, monitor_type=monitor_type,
                                                label=label, version=register_baseline,
                                                store=store_uri, **options)
    return result


_CHECK_PARAMETERS = """

    Parameters
    ----------
    model : str
        The model whose baseline the dataset is checked against.
    dataset : str
        A CSV or Parquet file (path or URI): a new training set, or for bias a labelled, predicted
        validation set.
    version : str, optional
        The baseline version to check against; default the latest.
    fail_on_violations : bool, default True
        Raise CheckFailed (failing the task, and the flow unless it handles it) on any violation.
    register_baseline : str, optional
        A model version: when the check passes (or finds violations and is not failing on them),
        suggest that version's baseline from this dataset. With no baseline yet, the check is
        skipped (status "NoBaseline") and the first baseline is registered.
    label : str, optional
        The label column, for the baseline registered.
    store : str, optional
        The store root; default ``$MODELWATCH_STORE``, else ``./modelwatch-store``.
    **options
        The type's baseline options for the baseline registered (e.g. ``prediction``, ``facet``).

    Returns
    -------
    dict
        ``status`` (Completed, CompletedWithViolations or NoBaseline), ``violations``,
        ``outputs`` (the URIs of the documents written under checks/<model>/<type>/<time>/),
        ``baseline_version`` checked against and ``registered`` (the new baseline's URIs).
    """


def _check_step(monitor_type: str, name: str, summary: str) -> Any:
    """A Prefect task running `run_check` for one monitor type."""

    def step(model: str, dataset: str, *, version: str | None = None,
             fail_on_violations: bool = True, register_baseline: str | None = None,
             label: str | None = None, store: str | None = None, **options: Any) -> dict[str, Any]:
        return run_check(monitor_type, model, dataset, version=version,
                         fail_on_violations=fail_on_violations,
                         register_baseline=register_baseline, label=label, store=store, **options)

    step.__name__ = step.__qualname__ = name.replace("-", "_")
    step.__doc__ = summary + _CHECK_PARAMETERS
    return task(name=name, cache_policy=NO_CACHE)(step)


quality_check = _check_step("data-quality", "quality-check", """A data-quality check of a dataset
    (SageMaker's QualityCheckStep): its features are profiled and checked against the baseline's
    constraints (types, completeness, domains, drift).""")
bias_check = _check_step("bias-drift", "bias-check", """A bias check of a labelled, predicted
    dataset (SageMaker's ClarifyCheckStep for post-training bias): the facets, label and prediction
    columns are the baseline's; registering a baseline takes the bias-drift options (``prediction``,
    ``facet``, ...).""")


@task(name="monitor-window", cache_policy=NO_CACHE)
def monitor_task(model: str, start: datetime | str, end: datetime | str, *,
                 monitor_type: str = "data-quality", source: str | list[str] | None = None,
                 version: str | None = None, store: str | None = None,
                 **options: Any) -> dict[str, Any]:
    """`modelwatch.run_monitor` as a task: one execution over [start, end); a failed execution
    fails the task (ExecutionFailed)."""
    from modelwatch.api import run_monitor

    return run_monitor(model, start, end, monitor_type=monitor_type, source=source,
                       version=version, store=store, **options)
