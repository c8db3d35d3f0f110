"""Capture middleware for any ASGI app (FastAPI, Starlette, BentoML) and any WSGI app (Flask): each
inference request is timed and counted; a sampled one is handed, bytes as they were, to the endpoint's
CaptureWriter, whose background thread does all encoding and writing.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from modelwatch.tasks.capture_writer import (
    CUSTOM_ATTRIBUTES_HEADER,
    CaptureConfig,
    CaptureWriter,
    Exchange,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _writer_of(config: CaptureConfig | None, writer: CaptureWriter | None,
               options: dict[str, Any]) -> CaptureWriter:
    if writer is not None:
        return writer
    return CaptureWriter(config or CaptureConfig(**options), start=False)


def _names(config: CaptureConfig) -> tuple[str, str, str, str]:
    """The header names the capture reads, lower case: content type, inference id, target model,
    custom attributes ('' when a header is not read)."""
    return ("content-type", config.inference_id_header.lower(),
            (config.target_model_header or "").lower(), CUSTOM_ATTRIBUTES_HEADER)


class _Headers:
    """The request headers the capture reads, found in one pass; `names` are of the same type as the
    pairs' names (bytes for ASGI, so only the values read are decoded)."""

    __slots__ = ("content_type", "inference_id", "target", "attributes")

    def __init__(self, pairs: Iterable[tuple[Any, Any]], names: tuple[Any, Any, Any, Any],
                 decode: Callable[[Any], str | None]) -> None:
        self.content_type = self.inference_id = self.target = self.attributes = None
        content_type, inference_id, target, attributes = names
        for name, value in pairs:
            if name == content_type:
                self.content_type = decode(value)
            elif name == inference_id:
                self.inference_id = decode(value)
            elif name == target and target:
                self.target = decode(value)
            elif name == attributes:
                self.attributes = decode(value)


def _latin1(value: bytes) -> str:
    return value.decode("latin-1")


def _same(value: str) -> str:
    return value


class CaptureMiddleware:
    """ASGI middleware that captures an endpoint's inference traffic.

    Parameters
    ----------
    app : ASGI application
        The model server (FastAPI, Starlette, BentoML's ASGI app, ...).
    config : CaptureConfig, optional
        What to capture and where; or pass its fields as keywords.
    writer : CaptureWriter, optional
        A writer to share (one per process and endpoint); made from `config` when absent.

    Examples
    --------
    >>> app = FastAPI()  # doctest: +SKIP
    >>> app.add_middleware(CaptureMiddleware, store="s3://bucket/mw", endpoint="churn",
    ...                    sampling_percentage=20, paths=("/invocations",))  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, config: CaptureConfig | None = None, *,
                 writer: CaptureWriter | None = None, **options: Any) -> None:
        self.app = app
        self.writer = _writer_of(config, writer, options)
        self.config = self.writer.config
        self._names = tuple(n.encode("latin-1") for n in _names(self.config))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await self.app(scope, self._lifespan_receive(receive), send)
        if kind != "http" or not self.config.inference(scope["method"], scope["path"]):
            return await self.app(scope, receive, send)
        at = time.time()
        began = time.perf_counter()
        headers = _Headers(scope["headers"], self._names, _latin1)
        keep = self.writer.decide(at, headers.content_type, headers.target)
        response: dict[str, Any] = {"status": 500, "type": None}
        request_body: list[bytes] = []
        response_body: list[bytes] = []

        async def observed_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.append(message.get("body", b""))
            return message

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                for name, value in message.get("headers", ()) if keep else ():
                    if name.lower() == b"content-type":
                        response["type"] = value.decode("latin-1")
            elif message["type"] == "http.response.body" and keep:
                response_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, observed_receive if keep else receive, observed_send)
        finally:
            self.writer.answered(at, headers.target, response["status"], time.perf_counter() - began)
        if keep:
            self.writer.submit(Exchange(at, headers.content_type, b"".join(request_body),
                                        response["type"], b"".join(response_body),
                                        headers.inference_id, headers.target, headers.attributes))

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":  # flush before the server lets the process go
                await asyncio.get_running_loop().run_in_executor(None, self.writer.close)
            return message

        return lifespan_receive


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WSGICaptureMiddleware:
    """WSGI middleware that captures an endpoint's inference traffic (Flask, any WSGI app).

    Parameters
    ----------
    app : WSGI application
        The model server, e.g. ``flask_app.wsgi_app``.
    config : CaptureConfig, optional
        What to capture and where; or pass its fields as keywords.
    writer : CaptureWriter, optional
        A writer to share (one per process and endpoint); made from `config` when absent.

    Examples
    --------
    >>> flask_app.wsgi_app = WSGICaptureMiddleware(flask_app.wsgi_app, store="./store",
    ...                                            endpoint="churn")  # doctest: +SKIP
    """

    def __init__(self, app: WSGIApp, config: CaptureConfig | None = None, *,
                 writer: CaptureWriter | None = None, **options: Any) -> None:
        self.app = app
        self.writer = _writer_of(config, writer, options)
        self.config = self.writer.config
        self._names = _names(self.config)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.config.inference(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        at = time.time()
        began = time.perf_counter()
        headers = _Headers(_wsgi_headers(environ), self._names, _same)
        keep = self.writer.decide(at, headers.content_type, headers.target)
        request = _read_body(environ) if keep else None
        response: dict[str, Any] = {"status": 500, "type": None}

        def observed_start_response(status: str, response_headers: list[tuple[str, str]],
                                    exc_info: Any = None) -> Any:
            response["status"] = int(status.split(" ", 1)[0])
            for name, value in response_headers:
                if name.lower() == "content-type":
                    response["type"] = value
            return start_response(status, response_headers, exc_info)

        try:
            result = self.app(environ, observed_start_response)
        except BaseException:
            self.writer.answered(at, headers.target, 500, time.perf_counter() - began)
            raise
        seconds = time.perf_counter() - began

        def done(body: bytes | None) -> None:
            self.writer.answered(at, headers.target, response["status"], seconds)
            if keep:
                self.writer.submit(Exchange(at, headers.content_type, request, response["type"], body,
                                            headers.inference_id, headers.target, headers.attributes))

        return _Observed(result, keep, done)


class _Observed:
    """The app's response iterable, passed through chunk by chunk; kept chunks are handed on when the
    server closes it (PEP 3333: close() is always called)."""

    def __init__(self, result: Iterable[bytes], keep: bool, done: Callable[[bytes | None], None]) -> None:
        self._result = result
        self._keep = keep
        self._chunks: list[bytes] = []
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._result:
            if self._keep:
                self._chunks.append(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._done(b"".join(self._chunks) if self._keep else None)


def _wsgi_headers(environ: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if "CONTENT_TYPE" in environ:
        yield "content-type", environ["CONTENT_TYPE"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").lower(), value


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read whole and put back for the app as a fresh stream."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    body = stream.read(int(length)) if length.isdigit() else stream.read()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body
