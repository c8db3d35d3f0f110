"""Read merged records (capture + groundTruthData, SageMaker's merge output) into the columns the
model-quality and bias-drift monitors need: the label, the predicted label, a score when the model output
one, and (for bias drift, given the model's features) the captured inputs.

A record whose labels and predictions do not pair up (different counts, unreadable payloads) is
quarantined with its reason, like a malformed capture line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pandas as pd

from modelwatch.tasks.capture import (
    MalformedRecord,
    csv_table,
    decode_payload,
    decompressed,
    input_rows,
    json_line,
    quarantine_entry,
    simple_csv_row,
)

_LABEL_KEYS = ("predicted_label", "label", "prediction", "class")
_SCORE_KEYS = ("score", "probability", "probabilities")


@dataclass
class MergedBatch:
    labels: list[Any] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    # Captured inputs, aligned with the labels by position: one-row CSV requests as their text (Arrow
    # parses them all at once), anything else as dicts keyed by feature.
    csv_rows: list[str] = field(default_factory=list)
    csv_positions: list[int] = field(default_factory=list)
    dict_rows: list[dict[str, Any]] = field(default_factory=list)
    dict_positions: list[int] = field(default_factory=list)
    records_read: int = 0
    blank_lines: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    # (variant, first row, row after the last) of the rows read from each file, when known
    variant_runs: list[tuple[str | None, int, int]] = field(default_factory=list)

    def extend(self, other: MergedBatch) -> None:
        offset = len(self.labels)
        self.variant_runs += [(v, offset + a, offset + b) for v, a, b in other.variant_runs]
        self.labels += other.labels
        self.predictions += other.predictions
        self.scores += other.scores
        self.csv_rows += other.csv_rows
        self.csv_positions += [offset + p for p in other.csv_positions]
        self.dict_rows += other.dict_rows
        self.dict_positions += [offset + p for p in other.dict_positions]
        self.records_read += other.records_read
        self.blank_lines += other.blank_lines
        self.quarantine += other.quarantine

    def tag(self, variant: str | None, start: int) -> None:
        """Say that the rows from position `start` on came from `variant` (one file's rows)."""
        if len(self.labels) > start:
            self.variant_runs.append((variant, start, len(self.labels)))

    def by_variant(self) -> dict[str, MergedBatch]:
        """Labels, predictions and scores of each production variant's rows (rows of no known
        variant under "-"), in the order the variants were first read."""
        parts: dict[str, MergedBatch] = {}
        for variant, start, stop in self.variant_runs:
            part = parts.setdefault(variant or "-", MergedBatch())
            part.labels += self.labels[start:stop]
            part.predictions += self.predictions[start:stop]
            part.scores += self.scores[start:stop]
        return parts

    def input_frame(self, features: list[str]) -> pd.DataFrame:
        """The captured inputs as a frame in label order (CSV columns typed by Arrow; JSON values
        as they came)."""
        parts = []
        if self.csv_rows:
            parts.append(csv_table(self.csv_rows, features).to_pandas().set_index(
                pd.Index(self.csv_positions)))
        if self.dict_rows:
            parts.append(pd.DataFrame.from_records(self.dict_rows, index=self.dict_positions))
        if not parts:
            return pd.DataFrame(index=pd.RangeIndex(len(self.labels)))
        frame = parts[0] if len(parts) == 1 else pd.concat(parts)
        return frame.sort_index().reset_index(drop=True)


def _values(encoding: str, text: str, what: str, list_key: str) -> list[Any]:
    if encoding == "json":
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise MalformedRecord(f"{what}.data is not valid JSON") from None
        if isinstance(body, dict) and list_key in body:
            body = body[list_key]
        elif isinstance(body, dict) and "instances" in body:
            body = body["instances"]
        return body if isinstance(body, list) else [body]
    rows = [r for r in text.replace("\r\n", "\n").strip("\n").split("\n")]
    # One row per record; a CSV ground truth may also carry several labels on one line.
    if len(rows) == 1 and "," in rows[0] and list_key == "labels":
        return rows[0].split(",")
    return rows


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def _split_output(value: Any, scored: bool = True) -> tuple[Any, float | None]:
    """(predicted label or None, score or None) of one model output. A bare number in (0, 1) is a
    score only for a model that scores (binary classification): a regression's prediction of 0.37
    is its prediction."""
    if isinstance(value, dict):
        label = next((value[k] for k in _LABEL_KEYS if k in value), None)
        score = next((value[k] for k in _SCORE_KEYS if k in value), None)
        if isinstance(score, list):  # class probabilities: the positive class is the last
            score = score[-1] if score else None
        return label, _number(score)
    if isinstance(value, str) and "," in value:  # "label,score" CSV output
        head, _, tail = value.partition(",")
        return head, _number(tail)
    number = _number(value)
    if scored and number is not None and 0.0 <= number <= 1.0 and not float(number).is_integer():
        return None, number
    return value, None


def _label_value(value: Any) -> Any:
    if isinstance(value, dict):
        return next((value[k] for k in ("label", *_LABEL_KEYS) if k in value), None)
    return value


def read_merged(data: bytes, source: str, features: list[str] | None = None,
                scored: bool = True) -> MergedBatch:
    """Labels, predictions and scores of one merged JSONL file (gzip or not); with `features`, the
    inputs too (one dict per labelled row, aligned with the labels). `scored` False: outputs are
    never read as scores (regression, multiclass)."""
    batch = MergedBatch()
    for line_no, raw in enumerate(decompressed(data, source).splitlines(), start=1):
        if not raw.strip():
            batch.blank_lines += 1
            continue
        batch.records_read += 1
        try:
            record = json_line(raw)
            if not isinstance(record, dict):
                raise MalformedRecord("line is not a JSON object")
            truth = record.get("groundTruthData")
            capture = record.get("captureData") or {}
            if "endpointOutput" not in capture:
                raise MalformedRecord("record has no captureData.endpointOutput (the prediction)")
            labels = _values(*decode_payload(truth, "groundTruthData"), "groundTruthData", "labels")
            outputs = _values(*decode_payload(capture["endpointOutput"], "captureData.endpointOutput"),
                              "captureData.endpointOutput", "predictions")
            if len(labels) != len(outputs):
                raise MalformedRecord(f"{len(labels)} labels for {len(outputs)} predictions")
            if features is not None:
                if "endpointInput" not in capture:
                    raise MalformedRecord("record has no captureData.endpointInput (the inputs)")
                row = simple_csv_row(capture["endpointInput"], len(features) - 1)
                if row is not None and len(labels) == 1:
                    batch.csv_positions.append(len(batch.labels))
                    batch.csv_rows.append(row)
                else:
                    rows = input_rows(capture["endpointInput"], features)
                    if len(rows) != len(labels):
                        raise MalformedRecord(f"{len(rows)} input rows for {len(labels)} labels")
                    batch.dict_positions += range(len(batch.labels), len(batch.labels) + len(rows))
                    batch.dict_rows += rows
            for label, output in zip(labels, outputs, strict=True):
                predicted, score = _split_output(output, scored)
                batch.labels.append(_label_value(label))
                batch.predictions.append(predicted)
                batch.scores.append(score)
        except MalformedRecord as problem:
            batch.quarantine.append(quarantine_entry(source, line_no, str(problem), raw))
    return batch


def read_merged_files(files: list[str], variants: list[str | None] | None = None,
                      features: list[str] | None = None, scored: bool = True) -> MergedBatch:
    """The merged records of several files, each file's rows tagged with its variant (from
    `variants`, aligned with `files`); a file that cannot be read at all is one quarantine entry."""
    from modelwatch.tasks import progress
    from modelwatch.tasks.capture import UnreadableFile
    from modelwatch.tasks.store import read_uri_bytes

    total = MergedBatch()
    for number, uri in enumerate(files):
        start = len(total.labels)
        try:
            total.extend(read_merged(read_uri_bytes(uri), uri, features, scored))
            progress.advance("merged files read")
        except UnreadableFile as problem:
            total.quarantine.append({"file": uri, "line": 0, "reason": str(problem), "record": ""})
        total.tag(variants[number] if variants else None, start)
    return total


def merged_metrics(batch: MergedBatch, problem_type: str, threshold: float,
                   bootstrap: int | None = None) -> tuple[Any, dict[str, int]]:
    """Model-quality statistics of merged records and the records left out of them, by reason.

    Parameters
    ----------
    batch : MergedBatch
        Labels, predictions and scores as read (text or JSON values: numbers are compared as
        numbers, "1" == 1).
    problem_type : str
        BinaryClassification, MulticlassClassification or Regression.
    threshold : float
        The score at or above which a binary model that outputs only a score predicts 1.
    bootstrap : int, optional
        Resamples behind each metric's standard deviation (default: compute_metrics's, 200).

    Returns
    -------
    (ModelQualityStatistics, dict)
        The statistics, and the count of rows left out per reason (keys of LEFT_OUT).
    """
    from modelwatch.tasks.quality import compute_metrics, normalise_problem_type

    problem = normalise_problem_type(problem_type)
    binary = problem == "BinaryClassification"
    scores = list(batch.scores) if binary and any(s is not None for s in batch.scores) else None
    predictions = [_as_number(p) for p in batch.predictions]
    if scores is not None:
        # A bare 0 or 1 among scores is a score too (a model that outputs probabilities).
        for i, (p, s) in enumerate(zip(predictions, scores, strict=True)):
            if s is None and isinstance(p, int | float) and 0 <= p <= 1:
                predictions[i], scores[i] = None, float(p)
    if scores is not None:
        # Outputs that carry only a score are thresholded; those with a label keep it.
        predictions = [p if p is not None else (None if s is None else int(s >= threshold))
                       for p, s in zip(predictions, scores, strict=True)]
    labels = [_as_number(v) for v in batch.labels]
    left_out = {"without_label": 0, "without_prediction": 0, "not_a_number": 0}
    for i, (label, predicted) in enumerate(zip(labels, predictions, strict=True)):
        if _missing(label):
            left_out["without_label"] += 1
        elif _missing(predicted) and (scores is None or scores[i] is None):
            left_out["without_prediction"] += 1
        elif problem == "Regression" and not (_finite(label) and _finite(predicted)):
            left_out["not_a_number"] += 1
    options = {} if bootstrap is None else {"bootstrap": bootstrap}
    statistics = compute_metrics(problem_type, labels, predictions, scores, threshold=threshold,
                                 **options)
    # With scores, compute_metrics also needs every row's score: the rest had a label only.
    left_out["without_score"] = len(labels) - statistics.dataset.item_count - sum(left_out.values())
    return statistics, left_out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value == ""


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        value == value and abs(value) != float("inf")


LEFT_OUT = {"without_label": "had no label", "without_prediction": "had no prediction",
            "not_a_number": "had a label or prediction that is not a finite number",
            "without_score": "had a predicted label but no score (the scores' AUC needs one)"}



def _as_number(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number
