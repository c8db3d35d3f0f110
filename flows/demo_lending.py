"""Synthetic loan-approval demo: a gradient-boosted model on numeric features with a sensitive
attribute (`gender`), its validation set with scores, two days of CSV capture and their labels (a day
late). On day two an upstream change replaces `credit_history_years` by a default and cuts the income
reported for one group, so the model's attributions and its approval rates by group both move."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier

from modelwatch.flows.demo_data import (
    LABEL_DELAY,
    capture_file_name,
    capture_hour_dir,
    format_inference_time,
    random_uuid,
    write_csv_capture_file,
)

FEATURES: list[str] = ["age", "income", "credit_history_years", "debt_ratio", "late_payments",
                       "branch", "gender"]
LABEL = "repaid"
SCORE = "score"
FACET = "gender=1"  # the group whose approval rate the bias monitor follows
GROUP = "branch"  # CDDPL's group variable
ENDPOINT = "loan-approval-prod"
HISTORY_FILL = 8.0  # what the upstream system sends once it loses the credit history: a default


@dataclass(frozen=True)
class LendingCase:
    training_csv: Path
    validation_csv: Path
    model_path: Path
    capture_root: Path
    labels_csv: Path
    days: list[tuple[datetime, datetime]]


def applicants(n: int, rng: np.random.Generator, *, upstream_change: bool = False
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(what the endpoint receives, the true applicants) for ``n`` draws with the label. With
    ``upstream_change`` the received copy has credit history replaced by a default and gender-1
    income cut by 40%; the outcome still follows the true values."""
    gender = (rng.random(n) < 0.45).astype(np.int64)
    age = np.clip(np.rint(rng.normal(41, 12, n)), 18, 85).astype(np.int64)
    income = np.round(rng.lognormal(np.log(48_000), 0.45, n), 2)
    history = np.round(np.clip(rng.gamma(3.0, 3.0, n), 0, 40), 1)
    debt = np.round(np.clip(rng.beta(2, 5, n), 0, 1), 4)
    late = rng.poisson(0.8, n).astype(np.int64)
    branch = rng.integers(0, 4, n).astype(np.int64)
    logit = (0.9 + 0.3 * (history - 9) + 1.1 * (np.log(income) - np.log(48_000))
             - 3.0 * (debt - 0.28) - 0.55 * (late - 0.8) + 0.01 * (age - 41)
             + rng.normal(0, 0.5, n))
    repaid = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    truth = pd.DataFrame({"age": age, "income": income, "credit_history_years": history,
                          "debt_ratio": debt, "late_payments": late, "branch": branch,
                          "gender": gender, LABEL: repaid})
    received = truth.copy()
    if upstream_change:
        received["credit_history_years"] = HISTORY_FILL
        received.loc[received["gender"] == 1, "income"] = np.round(
            received.loc[received["gender"] == 1, "income"] * 0.6, 2)
    return received, truth


def train(frame: pd.DataFrame) -> GradientBoostingClassifier:
    """The loan model's training entry point (`modelwatch.flows.demo_lending:train`)."""
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0)
    model.fit(frame[FEATURES], frame[LABEL])
    return model


def _csv(frame: pd.DataFrame) -> list[str]:
    return [",".join(repr(v) if isinstance(v, float) else str(v) for v in row)
            for row in frame[FEATURES].itertuples(index=False, name=None)]


def generate_lending(out_dir: Path, *, start: datetime, rows_per_hour: int = 150, seed: int = 11,
                     training_rows: int = 8_000) -> LendingCase:
    """Write the loan model's data, model, capture (CSV, one file an hour) and labels."""
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    training, _ = applicants(training_rows, rng)
    training_csv = out_dir / "training.csv"
    training.to_csv(training_csv, index=False)
    model = train(training)
    model_path = out_dir / "model.joblib"
    joblib.dump(model, model_path)
    validation, _ = applicants(4_000, rng)
    validation[SCORE] = np.round(model.predict_proba(validation[FEATURES])[:, 1], 4)
    validation_csv = out_dir / "validation.csv"
    validation.to_csv(validation_csv, index=False)

    capture_root = out_dir / "capture" / ENDPOINT
    if capture_root.exists():  # a re-run replaces the capture instead of adding to it
        shutil.rmtree(capture_root)
    labels: list[tuple[str, str, str]] = []
    days = []
    for d in range(2):
        day_start = (start + timedelta(days=d)).astimezone(UTC)
        days.append((day_start, day_start + timedelta(days=1)))
        received, truth = applicants(24 * rows_per_hour, rng, upstream_change=d == 1)
        scores = [repr(float(s)) for s in np.round(model.predict_proba(received[FEATURES])[:, 1], 4)]
        rows = _csv(received)
        for hour in range(24):
            hour_start = day_start + timedelta(hours=hour)
            span = slice(hour * rows_per_hour, (hour + 1) * rows_per_hour)
            offsets = np.sort(rng.integers(0, 3600, rows_per_hour))
            moments = [hour_start + timedelta(seconds=int(o)) for o in offsets]
            ids = [random_uuid(rng) for _ in moments]
            path = capture_hour_dir(capture_root, hour_start) / capture_file_name(
                moments[0], int(rng.integers(1000)), random_uuid(rng))
            write_csv_capture_file(path, rows[span], scores[span],
                                   [format_inference_time(m) for m in moments], ids)
            labels += [(i, str(int(v)), format_inference_time(m + LABEL_DELAY))
                       for i, v, m in zip(ids, truth[LABEL].to_numpy()[span], moments, strict=True)]
    labels_csv = out_dir / "labels.csv"
    pd.DataFrame(labels, columns=["event_id", LABEL, "labelled_at"]).to_csv(labels_csv, index=False)
    return LendingCase(training_csv, validation_csv, model_path, capture_root, labels_csv, days)
