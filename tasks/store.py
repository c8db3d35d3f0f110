"""The store: every artifact lives under one root URI (a local folder or s3://bucket/prefix).

A thin layer over fsspec: key joining with slug-checked names, atomic writes (readers never see
half a document), JSON and bytes helpers, and listing. S3 endpoints come from the standard
AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from modelwatch.errors import UserError

SLUG = re.compile(r"^[a-z0-9][a-z0-9\-_.]{0,62}$")
# Local atomic writes go through "<target>.tmp-<uuid hex>" files; listings never show them.
TEMP_SUFFIX = re.compile(r"\.tmp-[0-9a-f]{32}$")
DEFAULT_STORE = "./modelwatch-store"


def check_slug(name: str, what: str = "name") -> str:
    """Return name if it is a slug ([a-z0-9][a-z0-9-_.]{0,62}, not '.'-only); else UserError."""
    # fullmatch, not match: '$' also matches before a trailing newline ("model\n" must fail).
    if not isinstance(name, str) or not SLUG.fullmatch(name) or set(name) <= {"."}:
        raise UserError(
            f"invalid {what} {name!r}: expected a slug of 1-63 characters, lowercase letters, "
            "digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name


def default_store_uri() -> str:
    """The store named by MODELWATCH_STORE, else ./modelwatch-store."""
    return os.environ.get("MODELWATCH_STORE") or DEFAULT_STORE


def filesystem_for(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """fsspec filesystem and protocol-less path for a URI; s3 honours AWS_ENDPOINT_URL."""
    if uri.startswith("s3://"):
        import s3fs

        client_kwargs: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            client_kwargs["endpoint_url"] = endpoint
        # No cached listings, and a fresh instance per store: a cached listing would hide files
        # written by another Store or process (s3fs even answers exists()/info() from it).
        fs = s3fs.S3FileSystem(
            client_kwargs=client_kwargs, skip_instance_cache=True, use_listings_cache=False
        )
        return fs, uri[len("s3://") :].rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        fs, path = fsspec.core.url_to_fs(uri)
        return fs, path.rstrip("/")
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return fsspec.filesystem("file"), str(Path(path).expanduser().resolve())


@dataclass
class Store:
    """Artifacts under one root URI. Keys are '/'-joined relative paths."""

    root: str
    fs: fsspec.AbstractFileSystem = field(init=False, repr=False)
    base: str = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.rstrip("/") or self.root
        self.fs, self.base = filesystem_for(self.root)

    @property
    def is_local(self) -> bool:
        return self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol

    def path(self, key: str) -> str:
        """Filesystem path (no protocol) of a key."""
        key = key.strip("/")
        if ".." in key.split("/"):
            raise UserError(f"store key {key!r} may not contain '..'")
        return f"{self.base}/{key}" if key else self.base

    def uri(self, key: str) -> str:
        """Full URI of a key, as printed to users and stored in documents."""
        if self.root.startswith("s3://"):
            return f"s3://{self.path(key)}"
        return self.path(key)

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        try:
            with self.fs.open(self.path(key), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from None

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_bytes(self, key: str, data: bytes) -> str:
        """Write atomically: a local temp file renamed into place; an S3 PUT is atomic already."""
        target = self.path(key)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        else:
            with self.fs.open(target, "wb") as handle:
                handle.write(data)
        return self.uri(key)

    def write_text(self, key: str, text: str) -> str:
        return self.write_bytes(key, text.encode("utf-8"))

    def write_json(self, key: str, document: Any, indent: int | None = 2) -> str:
        return self.write_bytes(key, json_dumps(document, indent=indent).encode("utf-8"))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm(self.path(key))
        except FileNotFoundError:
            pass

    def list(self, prefix: str) -> list[str]:
        """Keys of the files directly under a prefix, sorted (empty when the prefix is absent)."""
        try:
            entries = self.fs.ls(self.path(prefix), detail=True)
        except FileNotFoundError:
            return []
        keys = [
            self._key(e["name"])
            for e in entries
            if e.get("type") == "file" and not TEMP_SUFFIX.search(e["name"])
        ]
        return sorted(keys)

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the sub-folders directly under a prefix, sorted."""
        try:
            entries = self.fs.ls(self.path(prefix), detail=True)
        except FileNotFoundError:
            return []
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries
                      if e.get("type") == "directory")

    def _key(self, path: str) -> str:
        path = path.rstrip("/")
        return path[len(self.base) + 1 :] if path.startswith(self.base + "/") else path


def json_dumps(document: Any, indent: int | None = 2) -> str:
    """Strict JSON; non-finite floats become the strings "NaN"/"Infinity" (as SageMaker writes)."""
    return json.dumps(_finite(document), indent=indent, default=_default, allow_nan=False)


def _finite(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="python", by_alias=True, exclude_none=True)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):
        return _finite(value.item())
    return value


def _default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat().replace("+00:00", "Z")
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def read_uri_bytes(uri: str) -> bytes:
    """Read a whole file given by URI or local path."""
    fs, path = filesystem_for(uri)
    try:
        with fs.open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UserError(f"{uri}: no such file") from None
