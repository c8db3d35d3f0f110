"""Baseline suggestion flow: profile a training dataset and write SageMaker-shaped statistics.json and
constraints.json (plus a reference sample for reports) under baselines/<model>/<version>/<type>/."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from modelwatch.tasks import progress
from modelwatch.tasks.baselines import baseline_prefix
from modelwatch.tasks.capture import PREDICTION, read_dataset
from modelwatch.tasks.constraints import suggest_constraints
from modelwatch.tasks.documents import Constraints, Statistics
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.profile import profile_table, to_statistics
from modelwatch.tasks.reports import sample_frame
from modelwatch.tasks.store import Store, check_slug, default_store_uri

REFERENCE_SAMPLE_ROWS = 5000
# Fewer training rows than this give statistics that cannot tell drift from noise: warned about.
MIN_BASELINE_ROWS = 100


@task(name="read-dataset", cache_policy=NO_CACHE)
def read_dataset_task(dataset: str) -> pa.Table:
    return read_dataset(dataset)


@task(name="profile-dataset", cache_policy=NO_CACHE)
def profile_dataset_task(table: pa.Table, label: str | None) -> Statistics:
    exclude = {label} if label else set()
    return to_statistics(profile_table(table, exclude=exclude, seed=17),
                         order=[c for c in table.column_names if c not in exclude])


@task(name="suggest-constraints", cache_policy=NO_CACHE)
def suggest_constraints_task(statistics: Statistics, categorical_drift_method: str) -> Constraints:
    return suggest_constraints(statistics, categorical_drift_method=categorical_drift_method)


@task(name="write-baseline", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def write_baseline_task(store_uri: str, prefix: str, statistics: Statistics,
                        constraints: Constraints, table: pa.Table, manifest: dict) -> dict[str, str]:
    store = Store(store_uri)
    features = manifest["features"]
    sample = sample_frame(table.select(features).to_pandas(), REFERENCE_SAMPLE_ROWS, seed=17)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(sample, preserve_index=False), buffer)
    return {
        "sample": store.write_bytes(f"{prefix}/sample.parquet", buffer.getvalue()),
        "statistics": store.write_json(f"{prefix}/statistics.json", statistics.dump()),
        "constraints": store.write_json(f"{prefix}/constraints.json", constraints.dump()),
        "baseline": store.write_json(f"{prefix}/baseline.json", manifest),
    }


def baseline_warnings(statistics: Statistics, rows: int) -> list[str]:
    """What makes a baseline weak, said when it is suggested rather than found out later."""
    warnings = []
    if rows < MIN_BASELINE_ROWS:
        warnings.append(f"the baseline has {rows} row(s): statistics from fewer than "
                        f"{MIN_BASELINE_ROWS} rows cannot tell drift from noise")
    empty = [f.name for f in statistics.features if f.inferred_type == "Unknown"]
    if empty:
        warnings.append(f"feature(s) {', '.join(empty)} have no values in the baseline: their type "
                        "is Unknown and is not checked")
    return warnings


@flow(name="baseline-suggest", log_prints=True)
def suggest_baseline(
    model: str,
    dataset: str,
    monitor_type: str = "data-quality",
    label: str | None = None,
    version: str = "1",
    store: str | None = None,
    categorical_drift_method: str = "ShareDistance",
) -> dict[str, Any]:
    """Suggest a data-quality baseline for a model version from its training dataset.

    Returns the URIs written (statistics, constraints, baseline (manifest) and sample) and the
    baseline's warnings (too few rows, features without values).
    """
    check_slug(model, "model name")
    check_slug(version, "model version")
    if monitor_type != "data-quality":
        raise UserError(f"monitor type {monitor_type!r} is not supported yet: expected data-quality")
    store_uri = store or default_store_uri()
    progress.step(f"reading {dataset}")
    table = read_dataset_task(dataset)
    if label is not None and label not in table.column_names:
        raise UserError(
            f"dataset {dataset}: label column {label!r} not found; columns are "
            f"{', '.join(table.column_names)}"
        )
    if table.num_rows == 0:
        raise UserError(f"dataset {dataset}: no rows")
    features = [c for c in table.column_names if c != label]
    if not features:
        raise UserError(f"dataset {dataset}: no feature columns besides the label {label!r}")
    progress.step(f"profiling {table.num_rows:,} rows")
    statistics = profile_dataset_task(table, label)
    # quote(): Prefect would otherwise walk the nested documents looking for futures.
    constraints = suggest_constraints_task(quote(statistics), categorical_drift_method)
    warnings = baseline_warnings(statistics, table.num_rows)
    for warning in warnings:
        print(f"warning: {warning}")
    manifest = {
        "model": model, "version": version, "monitor_type": monitor_type, "dataset": dataset,
        "label": label, "features": features,
        # CSV captures carry inputs only; a `prediction` feature comes from the endpoint output.
        "input_features": [f for f in features if f != PREDICTION],
        "item_count": table.num_rows, "created_at": datetime.now(UTC).isoformat(),
        "warnings": warnings,
    }
    progress.step("writing the baseline")
    uris = write_baseline_task(store_uri, baseline_prefix(model, version, monitor_type),
                               quote(statistics), quote(constraints), table, manifest)
    return {**uris, "warnings": warnings}
