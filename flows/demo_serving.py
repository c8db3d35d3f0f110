"""The demo's live endpoint: a registered model served by a real uvicorn on 127.0.0.1 behind the capture
middleware, and a bounded load sent to it, so the dashboard's endpoint page shows real telemetry."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from typing import Any

from modelwatch.flows.child_processes import (
    HOST,
    die_with_parent,
    free_port,
    stop_child,
    wait_until_answers,
)
from modelwatch.flows.invocation_load import post_each

APP_ENV = "MODELWATCH_DEMO_SERVING"  # the app's configuration, JSON, for the server process
START_SECONDS = 60.0
REQUEST_SECONDS = 10.0


def create_app() -> Any:
    """The ASGI app (a uvicorn ``--factory``): POST /invocations takes headerless CSV rows of the
    model's features and answers one probability per row; the model's artifact is loaded only after
    its SHA-256 matched the registry's."""
    import joblib
    import pandas as pd
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from modelwatch.capture import CaptureMiddleware
    from modelwatch.tasks.registry import get_model, verified_artifact
    from modelwatch.tasks.store import Store

    config = json.loads(os.environ[APP_ENV])
    model = get_model(Store(config["store"]), config["model"])
    version = model.version(config.get("version", "1"))
    estimator = joblib.load(io.BytesIO(verified_artifact(
        version.artifact_uri, version.artifact_sha256, f"model {model.name!r} version {version.version}")))
    features = [f.name for f in model.features]

    async def invocations(request: Request) -> PlainTextResponse:
        frame = pd.read_csv(io.BytesIO(await request.body()), header=None, names=features)
        scores = estimator.predict_proba(frame)[:, 1]
        return PlainTextResponse("".join(f"{s:.6f}\n" for s in scores), media_type="text/csv")

    async def ping(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
    return CaptureMiddleware(app, store=config["store"], endpoint=config["endpoint"], flush_seconds=1.0,
                             paths=("/invocations",))


def serve_live_traffic(store: str, model: str, endpoint: str, rows: list[str], threads: int = 4,
                       ) -> dict[str, int]:
    """Start the app under uvicorn, send each CSV row as one request (with an inference id), stop the
    server gracefully (which flushes its capture) and say how many requests were answered.

    Parameters
    ----------
    store : str
        The store's root URI; capture goes to ``<store>/capture/<endpoint>/``.
    model, endpoint : str
        The registered model served and the endpoint's name.
    rows : list of str
        Headerless CSV rows of the model's features, one request each.
    threads : int, default 4
        Keep-alive connections the load uses.
    """
    port = free_port()
    environment = {**os.environ, APP_ENV: json.dumps({"store": store, "model": model,
                                                      "endpoint": endpoint})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "modelwatch.flows.demo_serving:create_app", "--factory",
         "--host", HOST, "--port", str(port), "--log-level", "warning"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent)
    answered = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def count(ident: str, status: int | None, answer: str, seconds: float) -> None:
        with lock:
            answered["ok" if status == 200 else "failed"] += 1

    try:
        _wait_until_up(proc, port)
        post_each(HOST, port, ((f"live-{i}", row + "\n") for i, row in enumerate(rows)), count,
                  threads=threads, timeout=REQUEST_SECONDS)
    finally:
        stop_child(proc, grace=60.0)
    return {"sent": len(rows), "answered": answered["ok"], "failed": answered["failed"]}


def _wait_until_up(proc: subprocess.Popen[bytes], port: int) -> None:
    try:
        wait_until_answers(proc, f"http://{HOST}:{port}/ping", START_SECONDS, "the demo's model server")
    except RuntimeError as problem:
        if proc.poll() is None:
            raise
        raise RuntimeError(f"{problem}: {proc.stderr.read().decode()[-1000:]}") from None
