"""Batch transform flow: score a dataset with a registered model version, write the predictions, and
capture inputs and outputs in SageMaker's data-capture format so the monitors read a batch job the
way they read an endpoint (`--capture <store>/capture/batch-<job-id>`).

The job's record (registry/batch-jobs/<job-id>.json) is written InProgress before scoring starts and
rewritten Completed or Failed at the end, so a crashed job is visible rather than missing.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from modelwatch.flows.retries import STORE_RETRY
from modelwatch.tasks.capture import PREDICTION, read_dataset
from modelwatch.tasks.capture_records import capture_record
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.registry import (
    BatchJob,
    ModelRecord,
    batch_job_key,
    default_batch_job_id,
    get_model,
    save_batch_job,
    verified_artifact,
)
from modelwatch.tasks.store import Store, check_slug, default_store_uri, filesystem_for
from modelwatch.tasks.windows import iso_z

VARIANT = "AllTraffic"
RECORDS_PER_CAPTURE_FILE = 10_000


def capture_prefix(job_id: str) -> str:
    """Store key of a batch job's capture root (what `monitor run --capture` takes)."""
    return f"capture/batch-{check_slug(job_id, 'batch job id')}"


def absolute_uri(uri: str) -> str:
    """A local path made absolute (a relative one means nothing once recorded); URIs unchanged."""
    if "://" in uri and not uri.startswith("file://"):
        return uri
    return filesystem_for(uri)[1]


def write_uri_bytes(uri: str, data: bytes) -> str:
    """Write a whole file at a path or URI (creating local folders); returns where it went."""
    fs, path = filesystem_for(uri)
    if "://" not in uri or uri.startswith("file://"):
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(data)
    return uri if uri.startswith("s3://") else path


def _null_nan(values: pa.ChunkedArray) -> pa.ChunkedArray:
    # pandas writers spell "missing" as NaN; capture and output both want an empty field.
    if pa.types.is_floating(values.type):
        return pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
    return values


def csv_fields(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """One column as CSV field text: numbers in shortest round-trip form, missing as null, and
    text quoted where it holds a comma or a quote. Newlines become spaces, since a capture's CSV
    payload is split into rows at every newline, quoted or not."""
    values = _null_nan(values)
    text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return text
    text = pc.replace_substring_regex(text, pattern=r"[\r\n]", replacement=" ")
    quoted = pc.binary_join_element_wise(
        '"', pc.replace_substring(text, pattern='"', replacement='""'), '"', "")
    return pc.if_else(pc.match_substring_regex(text, pattern='[,"]'), quoted, text)


def prediction_texts(predictions: np.ndarray) -> list[str]:
    """Predictions as the text an endpoint would answer with."""
    if np.issubdtype(predictions.dtype, np.floating):
        return ["" if v != v else repr(float(v)) for v in predictions.tolist()]
    return [str(v) for v in predictions.tolist()]


def capture_lines(inputs: pa.Table, predictions: np.ndarray, when: datetime) -> list[bytes]:
    """One CSV-encoded capture record per row: inputs in the table's column order, output the
    prediction, a fresh eventId, and the job's start as inferenceTime."""
    rows = pc.binary_join_element_wise(
        *[csv_fields(inputs.column(n)) for n in inputs.column_names], ",",
        null_handling="replace", null_replacement="",
    ).to_pylist() if inputs.num_columns else [""] * inputs.num_rows
    moment = iso_z(when)
    return [
        orjson.dumps(capture_record(row, out, encoding="CSV", event_id=str(uuid4()),
                                    inference_time=moment)) + b"\n"
        for row, out in zip(rows, prediction_texts(predictions), strict=True)
    ]


# ---- tasks ----

# No retries on reading: what fails there is the file itself (a UserError), not the network.
@task(name="read-input", cache_policy=NO_CACHE)
def read_input_task(uri: str) -> pa.Table:
    return read_dataset(uri)


@task(name="load-model", cache_policy=NO_CACHE, **STORE_RETRY)
def load_model_task(artifact_uri: str, sha256: str | None, what: str = "model") -> Any:
    """Unpickle an artifact whose bytes have the SHA-256 recorded at registration (artifacts are
    code: a swapped file is refused, never run)."""
    import io

    import joblib

    from modelwatch.tasks.registry import verified_artifact

    return joblib.load(io.BytesIO(verified_artifact(artifact_uri, sha256, what)))


@task(name="score", cache_policy=NO_CACHE)
def score_task(estimator: Any, frame: pd.DataFrame, problem_type: str) -> np.ndarray:
    """Binary models answer the positive class's probability when they can, as a scoring endpoint
    usually does; other models answer predict()."""
    if problem_type == "binary" and hasattr(estimator, "predict_proba"):
        scores = np.asarray(estimator.predict_proba(frame))
        # A model fitted on one class only has a single probability column.
        predictions = scores[:, 1] if scores.ndim == 2 and scores.shape[1] > 1 else scores.ravel()
    else:
        predictions = np.asarray(estimator.predict(frame))
    if predictions.ndim == 2 and predictions.shape[1] == 1:
        predictions = predictions.ravel()
    if predictions.ndim != 1:
        raise ValueError(f"the model returned predictions of shape {predictions.shape}: one value "
                         "per row was expected")
    if len(predictions) != len(frame):
        raise ValueError(f"the model returned {len(predictions)} predictions for {len(frame)} rows")
    return predictions


@task(name="write-outputs", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def write_outputs_task(table: pa.Table, predictions: np.ndarray, output_uri: str) -> str:
    columns = {n: _null_nan(table.column(n)) for n in table.column_names if n != PREDICTION}
    columns[PREDICTION] = pa.array(predictions)
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(columns), buffer)
    return write_uri_bytes(output_uri, buffer.getvalue())


@task(name="write-capture", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[1, 5])
def write_capture_task(store_uri: str, prefix: str, inputs: pa.Table, predictions: np.ndarray,
                       when: datetime) -> str:
    store = Store(store_uri)
    hour = f"{prefix}/{VARIANT}/{when.astimezone(UTC):%Y/%m/%d/%H}"
    for part, first in enumerate(range(0, inputs.num_rows, RECORDS_PER_CAPTURE_FILE)):
        rows = inputs.slice(first, RECORDS_PER_CAPTURE_FILE)
        lines = capture_lines(rows, predictions[first : first + rows.num_rows], when)
        store.write_bytes(f"{hour}/part-{part:05d}.jsonl", b"".join(lines))
    return store.uri(prefix)


# ---- the flow ----

def plan_job(the_store: Store, model: str, input_uri: str, version: str | None = None,
             job_id: str | None = None, at: datetime | None = None) -> tuple[ModelRecord, str, str, str]:
    """Check everything a user can get wrong before a job is recorded (the CLI calls this before
    Prefect starts): returns the model record, version, artifact URI and job id."""
    check_slug(model, "model name")
    if version is not None:
        check_slug(version, "model version")
    job_id = job_id or default_batch_job_id(model, at or datetime.now(UTC))
    check_slug(job_id, "batch job id")
    record = get_model(the_store, model)
    chosen = record.resolve(version)
    if not chosen.artifact_uri:
        raise UserError(f"model {model!r} version {chosen.version!r} has no artifact: add a version "
                        "with --artifact")
    if not record.features:
        raise UserError(f"model {model!r} has no features registered: the batch job cannot tell "
                        "which input columns to score")
    for what, uri in (("model artifact", chosen.artifact_uri), ("--input", input_uri)):
        fs, path = filesystem_for(uri)
        if not fs.isfile(path):
            raise UserError(f"{what} {uri}: no such file")
    if the_store.exists(batch_job_key(job_id)):
        raise UserError(f"batch job {job_id!r} already exists in {the_store.root}: choose another "
                        "--job-id")
    if not chosen.artifact_sha256:
        verified_artifact(chosen.artifact_uri, None, f"model {model!r} version {chosen.version!r}")
    return record, chosen.version, chosen.artifact_uri, job_id


@flow(name="batch", log_prints=True)
def batch_transform(
    model: str,
    input: str,  # the name users see in the CLI and in Prefect's UI, builtin or not
    version: str | None = None,
    output: str | None = None,
    job_id: str | None = None,
    store: str | None = None,
) -> dict[str, Any]:
    """Score a CSV/Parquet dataset with a model version (default: the latest) and return the job's
    record. Writes <output> (default <store>/batch/<job-id>/output.csv: input columns plus
    `prediction`) and a capture under <store>/capture/batch-<job-id>/AllTraffic/YYYY/MM/DD/HH/.
    User errors (unknown model, missing file or columns, a job id in use) are raised before the job
    is recorded; any failure after that marks the job Failed with its reason and fails the run.
    """
    started = datetime.now(UTC)
    store_uri = store or default_store_uri()
    the_store = Store(store_uri)
    record, version, artifact_uri, job_id = plan_job(the_store, model, input, version, job_id,
                                                     started)
    table = read_input_task(input)
    features = [f.name for f in record.features]
    missing = [name for name in features if name not in table.column_names]
    if missing:
        raise UserError(f"input {input}: missing feature column(s) {', '.join(missing)} of model "
                        f"{model!r} (columns are {', '.join(table.column_names)})")
    if table.num_rows == 0:
        raise UserError(f"input {input}: no rows to score")

    from prefect.runtime import flow_run

    prefix = capture_prefix(job_id)
    job = BatchJob(
        job_id=job_id, model=model, model_version=version, input_uri=absolute_uri(input),
        output_uri=absolute_uri(output) if output else the_store.uri(f"batch/{job_id}/output.csv"),
        capture_uri=the_store.uri(prefix), started_at=started, rows_in=table.num_rows,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
    )
    save_batch_job(the_store, job)
    try:
        estimator = load_model_task(artifact_uri, record.version(version).artifact_sha256,
                                    f"model {model!r} version {version!r}")
        inputs = table.select(features)
        predictions = score_task(estimator, inputs.to_pandas(), record.problem_type)
        job.output_uri = write_outputs_task(table, predictions, job.output_uri)
        job.capture_uri = write_capture_task(store_uri, prefix, inputs, predictions, started)
        job.rows_out = len(predictions)
        job.status = "Completed"
    except Exception as problem:  # noqa: BLE001 - any failure here is the job's outcome
        job.status = "Failed"
        job.failure_reason = f"{type(problem).__name__}: {problem}"[:1024]
        refused = problem if isinstance(problem, UserError) else None
    else:
        refused = None
    job.finished_at = datetime.now(UTC)
    save_batch_job(the_store, job)
    print(f"batch job {job_id}: {job.status}, {job.rows_in} rows in, {job.rows_out} out")
    if refused is not None:  # recorded as the job's outcome, and the user's error to fix (exit 2)
        raise refused
    if job.status == "Failed":
        raise RuntimeError(f"batch job {job_id} failed: {job.failure_reason}")
    return job.dump()
