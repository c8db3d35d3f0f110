"""A small scikit-learn model served behind the capture middleware, as an ASGI app (Starlette, for
uvicorn) and a WSGI app (Flask, for waitress). The capture is configured by MODELWATCH_TEST_CAPTURE
(the JSON of CaptureConfig's fields); /invocations takes CSV rows and answers one probability per row.
"""

from __future__ import annotations

import json
import os

import numpy as np
from flask import Flask, Response, request
from sklearn.linear_model import LogisticRegression
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from modelwatch.capture import CaptureMiddleware, WSGICaptureMiddleware

FEATURES = ["f0", "f1", "f2"]


def train() -> LogisticRegression:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.5, size=500) > 0).astype(int)
    return LogisticRegression().fit(x, y)


MODEL = train()


def predict(body: bytes) -> str:
    rows = np.array([[float(v) for v in line.split(",")] for line in body.decode().splitlines() if line])
    return "".join(f"{p:.6f}\n" for p in MODEL.predict_proba(rows)[:, 1])


def _config() -> dict:
    return json.loads(os.environ.get("MODELWATCH_TEST_CAPTURE", "{}"))


async def invocations(req: Request) -> PlainTextResponse:
    return PlainTextResponse(predict(await req.body()), media_type="text/csv")


async def ping(req: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


starlette_app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]),
                                  Route("/ping", ping)])
flask_app = Flask(__name__)


@flask_app.post("/invocations")
def flask_invocations() -> Response:
    return Response(predict(request.get_data()), mimetype="text/csv")


@flask_app.get("/ping")
def flask_ping() -> str:
    return "ok"


asgi_app = CaptureMiddleware(starlette_app, **_config()) if _config() else starlette_app
wsgi_app = WSGICaptureMiddleware(flask_app.wsgi_app, **_config()) if _config() else flask_app.wsgi_app
