"""Data capture at the endpoint, for any serving stack: ASGI and WSGI middleware and a plain writer
that record sampled requests as SageMaker data-capture JSONL and per-minute endpoint telemetry.

Importing this module loads neither Prefect nor pandas: it is meant for the model server's process.

Examples
--------
>>> from fastapi import FastAPI  # doctest: +SKIP
>>> from modelwatch.capture import CaptureMiddleware  # doctest: +SKIP
>>> app = FastAPI()  # doctest: +SKIP
>>> app.add_middleware(CaptureMiddleware, store="s3://bucket/mw", endpoint="churn",
...                    sampling_percentage=20)  # doctest: +SKIP
"""

from modelwatch.tasks.capture_middleware import CaptureMiddleware, WSGICaptureMiddleware
from modelwatch.tasks.capture_writer import (
    INFERENCE_ID_HEADER,
    TARGET_MODEL_HEADER,
    CaptureConfig,
    CaptureStats,
    CaptureWriter,
    Exchange,
)

__all__ = ["CaptureConfig", "CaptureMiddleware", "CaptureStats", "CaptureWriter", "Exchange",
           "INFERENCE_ID_HEADER", "TARGET_MODEL_HEADER", "WSGICaptureMiddleware"]
