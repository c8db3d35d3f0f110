"""SageMaker data-capture records as an endpoint writes them: one record per request (input, output,
event metadata) and its line, compact JSON. Batch jobs, the demo and the benchmarks write capture
with these."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any, Literal

Encoding = Literal["CSV", "JSON", "BASE64"]
ENCODINGS: tuple[Encoding, ...] = ("CSV", "JSON", "BASE64")

_CONTENT_TYPES: dict[str, tuple[str, str]] = {
    # (input, output) observedContentType as SageMaker records them for each encoding
    "CSV": ("text/csv", "text/csv; charset=utf-8"),
    "JSON": ("application/json", "application/json"),
    "BASE64": ("text/csv", "text/csv"),
}


def format_inference_time(t: datetime) -> str:
    """ISO-8601 UTC with second precision and a ``Z`` suffix, as SageMaker writes it."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def capture_record(
    input_data: str | bytes | dict[str, Any],
    output_data: str | bytes | dict[str, Any],
    *,
    encoding: Encoding,
    event_id: str,
    inference_time: datetime | str,
    inference_id: str | None = None,
) -> dict[str, Any]:
    """One data-capture record.

    CSV: ``input_data``/``output_data`` are the raw CSV texts. JSON: dicts (serialized here)
    or already-serialized strings. BASE64: raw text or bytes, base64-encoded here.
    """
    if encoding not in _CONTENT_TYPES:
        raise ValueError(f"unknown encoding {encoding!r}")

    def encode(value: str | bytes | dict[str, Any]) -> str:
        if isinstance(value, dict):
            if encoding != "JSON":
                raise TypeError(f"a dict body needs encoding JSON, not {encoding}")
            return json.dumps(value, separators=(",", ":"))
        return value

    in_type, out_type = _CONTENT_TYPES[encoding]
    when = (
        inference_time if isinstance(inference_time, str) else format_inference_time(inference_time)
    )
    return endpoint_record(
        {"endpointInput": capture_side("INPUT", in_type, encode(input_data), encoding),
         "endpointOutput": capture_side("OUTPUT", out_type, encode(output_data), encoding)},
        event_id=event_id, inference_time=when, inference_id=inference_id)


def capture_side(mode: Literal["INPUT", "OUTPUT"], observed: str | None, data: str | bytes,
                 encoding: Encoding) -> dict[str, Any]:
    """One side of ``captureData`` (endpointInput or endpointOutput): BASE64 encodes the raw bytes
    here, CSV and JSON keep the text as it was sent."""
    if encoding == "BASE64":
        raw = data.encode() if isinstance(data, str) else data
        text = base64.b64encode(raw).decode("ascii")
    else:
        text = data.decode() if isinstance(data, bytes) else data
    return {"observedContentType": observed, "mode": mode, "data": text, "encoding": encoding}


def endpoint_record(capture_data: dict[str, Any], *, event_id: str, inference_time: str,
                    inference_id: str | None = None, target_model: str | None = None,
                    custom_attributes: list[str] | None = None) -> dict[str, Any]:
    """A data-capture record around its sides, with SageMaker's key order (captureData,
    eventMetadata, eventVersion; eventId, inferenceId, inferenceTime). ``targetModel`` is ours: the
    model of a multi-model endpoint that answered the request."""
    metadata: dict[str, Any] = {"eventId": event_id}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = inference_time
    if custom_attributes:
        metadata["customAttributes"] = custom_attributes
    if target_model is not None:
        metadata["targetModel"] = target_model
    return {"captureData": capture_data, "eventMetadata": metadata, "eventVersion": "0"}


def capture_line(record: dict[str, Any]) -> str:
    """Serialize a record the way SageMaker does: compact JSON, one line, newline-terminated."""
    return json.dumps(record, separators=(",", ":")) + "\n"
