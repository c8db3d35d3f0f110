"""Synthetic credit-default demo: a training set, a validation set with the model's scores, a fitted
model, two days of SageMaker Model Monitor data-capture files (day two drifted) and their labels,
collected a day after each prediction (day two's defaults follow a new pattern the model never saw),
deterministic for a seed."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelwatch.tasks.capture_records import (
    ENCODINGS,
    Encoding,
    capture_line,
    capture_record,
    format_inference_time,
)

FEATURES: list[str] = [
    "age",
    "income",
    "debt_ratio",
    "num_accounts",
    "utilization",
    "region",
    "employment",
    "has_mortgage",
]
INTEGRAL: list[str] = ["age", "num_accounts", "has_mortgage"]
FRACTIONAL: list[str] = ["income", "debt_ratio", "utilization"]
NUMERIC: list[str] = [f for f in FEATURES if f in INTEGRAL or f in FRACTIONAL]
CATEGORICAL: list[str] = ["region", "employment"]
LABEL = "default"

VARIANT = "AllTraffic"
ENDPOINT_NAME = "credit-default"
DRIFTED_FEATURES: list[str] = ["income", "region", "utilization"]

ENCODING_SHARES: tuple[float, ...] = (0.60, 0.25, 0.15)

REGIONS = ["north", "south", "east", "west"]
REGION_SHARES = [0.38, 0.30, 0.20, 0.12]
EMPLOYMENTS = ["salaried", "self-employed", "unemployed", "retired"]
EMPLOYMENT_SHARES = [0.62, 0.16, 0.07, 0.15]

MALFORMED_KINDS = ("not_json", "no_capture_data", "csv_wrong_count", "json_body_invalid")




LABEL_DELAY = timedelta(days=1)
SCORE = "score"  # the validation set's model score column


@dataclass(frozen=True)
class DemoCase:
    training_csv: Path
    model_path: Path
    capture_root: Path
    days: list[tuple[datetime, datetime]]
    malformed_lines: int
    drifted_features: list[str]
    validation_csv: Path | None = None  # features, label and the model's score
    labels_csv: Path | None = None  # event_id, label, labelled_at (a day after the prediction)


@dataclass(frozen=True)
class LabelledRecord:
    """One capture record's event id, its first row in the day's frame, rows and capture time."""

    event_id: str
    first_row: int
    rows: int
    captured_at: datetime


# --------------------------------------------------------------------------- data


def training_frame(n: int, rng: np.random.Generator, *, drift: bool = False) -> pd.DataFrame:
    """Draw ``n`` applicants (FEATURES + LABEL); ``drift`` applies the day-two shift.

    Values are rounded as they will be written, so the model sees exactly what the
    capture files contain.
    """
    age = np.clip(np.rint(rng.normal(44, 14, n)), 18, 90).astype(np.int64)
    income = rng.lognormal(mean=math.log(52_000), sigma=0.55, size=n)
    if drift:
        income *= 1.6
    income = np.round(income, 2)
    debt_ratio = np.round(np.clip(rng.gamma(2.0, 0.17, n), 0.0, 1.5), 4)
    num_accounts = rng.poisson(4.0, n).astype(np.int64)
    utilization = np.round(rng.beta(2.0, 3.0, n), 4)
    utilization[rng.random(n) < (0.30 if drift else 0.05)] = np.nan

    if drift:
        # "central" takes a quarter of traffic; the old regions keep their relative shares
        region = rng.choice(
            REGIONS + ["central"], size=n, p=[s * 0.75 for s in REGION_SHARES] + [0.25]
        )
    else:
        region = rng.choice(REGIONS, size=n, p=REGION_SHARES)
    employment = rng.choice(EMPLOYMENTS, size=n, p=EMPLOYMENT_SHARES)
    has_mortgage = (rng.random(n) < 0.38).astype(np.int64)

    util_filled = np.where(np.isnan(utilization), 0.5, utilization)
    logit = (
        -1.9
        + 2.2 * (debt_ratio - 0.34)
        + 2.5 * (util_filled - 0.4)
        + 0.4 * np.isnan(utilization)
        - 0.9 * (np.log(income) - math.log(52_000))
        + 0.10 * (num_accounts - 4)
        - 0.02 * (age - 44)
        - 0.3 * has_mortgage
        + np.select(
            [employment == "unemployed", employment == "self-employed", employment == "retired"],
            [1.3, 0.35, -0.2],
            0.0,
        )
        + np.where(region == "south", 0.25, 0.0)
        + rng.normal(0.0, 0.6, n)
    )
    default = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "debt_ratio": debt_ratio,
            "num_accounts": num_accounts,
            "utilization": utilization,
            "region": region,
            "employment": employment,
            "has_mortgage": has_mortgage,
            LABEL: default,
        }
    )


def build_model() -> Pipeline:
    # handle_unknown="ignore" so the unseen day-two region still gets scored
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            (
                "num",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                NUMERIC,
            ),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))])


def train(frame: pd.DataFrame) -> Pipeline:
    """The demo model's training entry point (`modelwatch.flows.demo_data:train`), as retraining calls it."""
    model = build_model()
    model.fit(frame[FEATURES], frame[LABEL])
    return model


# --------------------------------------------------------------------------- formatting


def _fmt_float(v: float) -> str:
    # round-then-repr gives the shortest text with at most 4 decimals ("0.5", "52000.12")
    return "" if math.isnan(v) else repr(round(v, 4))


def csv_rows(frame: pd.DataFrame) -> list[str]:
    """Headerless CSV rows in FEATURES order; a missing value is an empty field."""
    cols: list[list[str]] = []
    for name in FEATURES:
        values = frame[name].tolist()
        if name in INTEGRAL:
            cols.append([str(int(v)) for v in values])
        elif name in FRACTIONAL:
            cols.append([_fmt_float(float(v)) for v in values])
        else:
            cols.append([str(v) for v in values])
    return [",".join(parts) for parts in zip(*cols, strict=True)]


def json_instances(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per row keyed by feature name; missing values stay as keys with None."""
    cols: dict[str, list[Any]] = {}
    for name in FEATURES:
        values = frame[name].tolist()
        if name in INTEGRAL:
            cols[name] = [int(v) for v in values]
        elif name in FRACTIONAL:
            cols[name] = [None if math.isnan(v) else round(float(v), 4) for v in values]
        else:
            cols[name] = [str(v) for v in values]
    return [dict(zip(FEATURES, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


def random_uuid(rng: np.random.Generator) -> str:
    """A uuid4 string drawn from ``rng`` so file names and event ids follow the seed."""
    return str(UUID(bytes=rng.bytes(16), version=4))


CSV_LINE_HEAD = (
    '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":"'
)
CSV_LINE_MID = (
    '","encoding":"CSV"},"endpointOutput":{"observedContentType":"text/csv; charset=utf-8",'
    '"mode":"OUTPUT","data":"'
)
CSV_LINE_EVENT = '","encoding":"CSV"}},"eventMetadata":{"eventId":"'
CSV_LINE_TIME = '","inferenceTime":"'
CSV_LINE_TAIL = '"},"eventVersion":"0"}\n'


def write_csv_capture_file(
    path: Path,
    rows: Sequence[str],
    outputs: Sequence[str],
    times: Sequence[str],
    ids: Sequence[str],
) -> None:
    """Write CSV-encoded capture lines fast (for million-line benchmarks).

    Lines are byte-identical to ``capture_line(capture_record(row, out, encoding="CSV",
    event_id=id, inference_time=time))``. Nothing is JSON-escaped, so every string must be
    free of ``"``, ``\\`` and control characters: fine for numeric CSV, plain category
    names, uuids and formatted timestamps, wrong for arbitrary text.
    """
    if not len(rows) == len(outputs) == len(times) == len(ids):
        raise ValueError("rows, outputs, times and ids must have the same length")
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = 50_000  # bounded memory for huge files, still few write calls
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for i in range(0, len(rows), chunk):
            fh.write(
                "".join(
                    [
                        CSV_LINE_HEAD + r + CSV_LINE_MID + o + CSV_LINE_EVENT + e + CSV_LINE_TIME + t
                        + CSV_LINE_TAIL
                        for r, o, t, e in zip(
                            rows[i : i + chunk],
                            outputs[i : i + chunk],
                            times[i : i + chunk],
                            ids[i : i + chunk],
                            strict=True,
                        )
                    ]
                )
            )


def capture_hour_dir(capture_root: Path, t: datetime, variant: str = VARIANT) -> Path:
    """``<capture_root>/<variant>/YYYY/MM/DD/HH`` for the UTC hour of ``t``."""
    t = t.astimezone(UTC)
    return capture_root / variant / f"{t:%Y}" / f"{t:%m}" / f"{t:%d}" / f"{t:%H}"


def capture_file_name(t: datetime, millis: int, file_uuid: str) -> str:
    """``<MM>-<SS>-<mmm>-<uuid>.jsonl`` (minute, second, millisecond of the file's start)."""
    return f"{t:%M}-{t:%S}-{millis:03d}-{file_uuid}.jsonl"


# --------------------------------------------------------------------------- generation


def _hour_plan(n_rows: int, rng: np.random.Generator) -> list[tuple[Encoding, int]]:
    """(encoding, rows) per record; one record of each encoding is guaranteed per hour."""
    plan: list[tuple[Encoding, int]] = [
        ("CSV", 1),
        ("JSON", int(min(rng.integers(1, 4), n_rows - 2))),
        ("BASE64", 1),
    ]
    left = n_rows - sum(size for _, size in plan)
    while left > 0:
        enc: Encoding = ENCODINGS[int(rng.choice(3, p=ENCODING_SHARES))]
        size = int(min(rng.integers(1, 4), left)) if enc == "JSON" else 1
        plan.append((enc, size))
        left -= size
    return [plan[i] for i in rng.permutation(len(plan))]


def _malformed_line(
    kind: str, when: str, rng: np.random.Generator, sample_csv: str, sample: dict[str, Any]
) -> str:
    """A broken line of the given kind, shaped like the failures seen in real capture data."""
    event_id = random_uuid(rng)
    if kind == "not_json":
        # a partial write: the line stops mid-object
        full = capture_line(
            capture_record("1,2", "0.5", encoding="CSV", event_id=event_id, inference_time=when)
        )
        return full[: len(full) // 2] + "\n"
    if kind == "no_capture_data":
        return capture_line(
            {"eventMetadata": {"eventId": event_id, "inferenceTime": when}, "eventVersion": "0"}
        )
    if kind == "csv_wrong_count":
        row = sample_csv.rsplit(",", 1)[0]  # a client that forgot the last feature
        return capture_line(
            capture_record(row, "0.5", encoding="CSV", event_id=event_id, inference_time=when)
        )
    if kind == "json_body_invalid":
        body = json.dumps({"instances": [sample]}, separators=(",", ":"))
        return capture_line(
            capture_record(
                body[: len(body) // 2],
                '{"error":"bad request"}',
                encoding="JSON",
                event_id=event_id,
                inference_time=when,
            )
        )
    raise ValueError(f"unknown malformed kind {kind!r}")


def _day_files(
    frame: pd.DataFrame,
    scores: np.ndarray,
    day_start: datetime,
    rows_per_hour: int,
    rng: np.random.Generator,
    next_inference_id: int,
    labelled: list[LabelledRecord] | None = None,
) -> tuple[list[tuple[datetime, list[str]]], int]:
    """Capture files (hour start, lines) of one day; returns the next free inference id. Each
    record's id and rows go to `labelled`, so its label can be written later."""
    csv_text = csv_rows(frame)
    instances = json_instances(frame)
    score_list = [float(s) for s in np.round(scores, 4)]
    score_text = [repr(s) for s in score_list]

    files: list[tuple[datetime, list[str]]] = []
    for hour in range(24):
        hour_start = day_start + timedelta(hours=hour)
        plan = _hour_plan(rows_per_hour, rng)
        offsets = np.sort(rng.integers(0, 3600, size=len(plan)))
        base = hour * rows_per_hour
        lines: list[str] = []
        for (enc, size), offset in zip(plan, offsets, strict=True):
            when = format_inference_time(hour_start + timedelta(seconds=int(offset)))
            event_id = random_uuid(rng)
            inference_id: str | None = None
            if rng.random() < 0.5:  # only some clients send an InferenceId
                inference_id = str(next_inference_id)
                next_inference_id += 1
            if labelled is not None:
                # Labels name the record by its inferenceId when it has one, as the merge joins.
                labelled.append(LabelledRecord(inference_id or event_id, base, size,
                                               hour_start + timedelta(seconds=int(offset))))
            if enc == "JSON":
                rows = range(base, base + size)
                body: Any = {"instances": [instances[i] for i in rows]}
                out: Any = {
                    "predictions": [
                        {"score": score_list[i], "predicted_label": int(score_list[i] >= 0.5)}
                        for i in rows
                    ]
                }
            else:
                body, out = csv_text[base], score_text[base]
            base += size
            lines.append(
                capture_line(
                    capture_record(
                        body,
                        out,
                        encoding=enc,
                        event_id=event_id,
                        inference_time=when,
                        inference_id=inference_id,
                    )
                )
            )
        # SageMaker rolls files a few times an hour; one or two keeps the demo small
        cut = int(rng.integers(1, len(lines))) if len(lines) > 1 and rng.random() < 0.5 else 0
        chunks = [lines[:cut], lines[cut:]] if cut else [lines]
        starts = [int(offsets[0]), int(offsets[cut])] if cut else [int(offsets[0])]
        for chunk, first in zip(chunks, starts, strict=True):
            files.append((hour_start + timedelta(seconds=first), chunk))
    return files, next_inference_id


def generate_demo(
    out_dir: Path,
    *,
    start: datetime = datetime(2026, 11, 23, tzinfo=UTC),
    rows_per_hour: int = 150,
    seed: int = 7,
    training_rows: int = 20_000,
    malformed_per_day: int = 10,
    validation_rows: int = 2_000,
) -> DemoCase:
    """Write training and validation CSVs, model, two days of capture files (day two drifted) and
    their labels under ``out_dir``; any earlier capture tree there is replaced."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    start = start.astimezone(UTC)
    if start.minute or start.second or start.microsecond:
        raise ValueError("start must be on an hour boundary")
    if rows_per_hour < 3:
        raise ValueError("rows_per_hour must be at least 3 (one record per encoding)")

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    training = training_frame(training_rows, rng)
    training_csv = out_dir / "training.csv"
    training.to_csv(training_csv, index=False)
    model = train(training)
    model_path = out_dir / "model.joblib"
    joblib.dump(model, model_path)
    validation = training_frame(validation_rows, rng)
    validation[SCORE] = np.round(model.predict_proba(validation[FEATURES])[:, 1], 4)
    validation_csv = out_dir / "validation.csv"
    validation.to_csv(validation_csv, index=False)

    capture_root = out_dir / "capture" / ENDPOINT_NAME
    # files from an earlier run with another seed would otherwise mix into the analysis
    if capture_root.exists():
        shutil.rmtree(capture_root)

    days: list[tuple[datetime, datetime]] = []
    malformed = 0
    next_inference_id = 1
    label_rows: list[tuple[str, str, str]] = []
    for d in range(2):
        day_start = start + timedelta(days=d)
        days.append((day_start, day_start + timedelta(days=1)))
        frame = training_frame(24 * rows_per_hour, rng, drift=d == 1)
        scores = model.predict_proba(frame[FEATURES])[:, 1]
        labelled: list[LabelledRecord] = []
        files, next_inference_id = _day_files(
            frame, scores, day_start, rows_per_hour, rng, next_inference_id, labelled
        )
        outcomes = concept_drift(frame, rng) if d == 1 else frame[LABEL].to_numpy()
        label_rows += label_entries(labelled, outcomes)

        sample_csv, sample = csv_rows(frame.iloc[:1])[0], json_instances(frame.iloc[:1])[0]
        for i in range(malformed_per_day):
            when_dt, lines = files[int(rng.integers(len(files)))]
            when = format_inference_time(when_dt)
            kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
            bad = _malformed_line(kind, when, rng, sample_csv, sample)
            lines.insert(int(rng.integers(len(lines) + 1)), bad)
            malformed += 1

        for when_dt, lines in files:
            name = capture_file_name(when_dt, int(rng.integers(1000)), random_uuid(rng))
            path = capture_hour_dir(capture_root, when_dt) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(lines), encoding="utf-8", newline="\n")

    labels_csv = out_dir / "labels.csv"
    pd.DataFrame(label_rows, columns=["event_id", LABEL, "labelled_at"]).to_csv(labels_csv,
                                                                                index=False)
    return DemoCase(
        training_csv=training_csv,
        model_path=model_path,
        capture_root=capture_root,
        days=days,
        malformed_lines=malformed,
        drifted_features=list(DRIFTED_FEATURES),
        validation_csv=validation_csv,
        labels_csv=labels_csv,
    )


def concept_drift(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Day two's outcomes: half of the mortgage holders default as well, a pattern (rates reset on
    mortgages) that the model, trained when mortgages lowered the risk, cannot see."""
    hit = (frame["has_mortgage"].to_numpy() == 1) & (rng.random(len(frame)) < 0.5)
    return np.where(hit, 1, frame[LABEL].to_numpy())


def label_entries(records: list[LabelledRecord], outcomes: np.ndarray,
                  delay: timedelta = LABEL_DELAY) -> list[tuple[str, str, str]]:
    """(id, label, labelled_at) per capture record, labelled `delay` after its prediction; a
    multi-row request gets its labels as one CSV row ("1,0,1"), as SageMaker expects."""
    return [(r.event_id,
             ",".join(str(int(v)) for v in outcomes[r.first_row:r.first_row + r.rows]),
             format_inference_time(r.captured_at + delay))
            for r in records]


def iter_capture_files(capture_root: Path, variant: str = VARIANT) -> Iterable[Path]:
    """Capture files of a variant in time order (the path sorts chronologically)."""
    return sorted((capture_root / variant).glob("*/*/*/*/*.jsonl"))
