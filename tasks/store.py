"""The store: every artifact lives under one root URI (a local folder or s3://bucket/prefix).

A thin layer over fsspec: key joining with slug-checked names, atomic writes (readers never see
half a document), create-only writes, atomic read-modify-write of shared documents (a file lock on a
local folder, conditional PUTs on S3), JSON and bytes helpers, and listing. S3 endpoints come from the
standard AWS_ENDPOINT_URL; S3 requests are retried a bounded number of times (see S3_RETRIES).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

from modelwatch.tasks.errors import UserError

SLUG = re.compile(r"^[a-z0-9][a-z0-9\-_.]{0,62}$")
# Local atomic writes go through "<target>.tmp-<uuid hex>" files; listings never show them.
TEMP_SUFFIX = re.compile(r"\.tmp-[0-9a-f]{32}$")
DEFAULT_STORE = "./modelwatch-store"
# A temp file this old was left by a writer that was killed between writing and renaming it.
TEMP_MAX_AGE_SECONDS = 600.0
LOCKS = ".locks"  # local lock files of read-modify-write updates, under the store root
# botocore's "standard" retry mode (exponential backoff with jitter, capped at 20 s) on 5xx, throttling
# and connection errors: 6 attempts wait at most about 31 s (15 s on average); s3fs repeats a request
# that failed on the connection itself at most twice more.
S3_RETRIES = {"max_attempts": 6, "mode": "standard"}
S3FS_RETRIES = 2
UPDATE_SECONDS = 60.0  # how long a read-modify-write keeps retrying after losing races


class StoreConflict(RuntimeError):
    """A read-modify-write kept losing the race to other writers for longer than UPDATE_SECONDS."""


class StoreUnavailable(RuntimeError):
    """The store kept failing a request after its bounded retries; the message says how long."""


def _transport_error(problem: Exception) -> bool:
    """An error of the network or the service (after botocore's retries), not of our own code."""
    module = type(problem).__module__
    return isinstance(problem, OSError | ConnectionError) or module.startswith(
        ("botocore", "aiobotocore", "aiohttp", "urllib3"))


def _bounded(operation: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Report an S3 request that failed after its retries as StoreUnavailable, saying how long was
    spent; a missing key, an existing one or a refusal keeps its own error."""
    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def bounded(self: Store, key: str, *args: Any, **kwargs: Any) -> Any:
            if self.is_local:
                return method(self, key, *args, **kwargs)
            began = time.monotonic()
            try:
                return method(self, key, *args, **kwargs)
            except (FileNotFoundError, FileExistsError, PermissionError, UserError,
                    StoreConflict):
                raise
            except Exception as problem:
                if not _transport_error(problem):
                    raise
                raise StoreUnavailable(
                    f"store {self.root}: {operation} {key or '/'} failed after "
                    f"{time.monotonic() - began:.0f} s ({S3_RETRIES['max_attempts']} attempts per "
                    f"request, backing off): {problem}") from problem
        return bounded
    return wrap


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


def filesystem_for(uri: str, write_options: dict[str, Any] | None = None,
                   ) -> tuple[fsspec.AbstractFileSystem, str]:
    """fsspec filesystem and protocol-less path for a URI; s3 honours AWS_ENDPOINT_URL and adds
    `write_options` (server-side encryption, say) to the requests that accept them."""
    if uri.startswith("s3://"):
        import s3fs

        client_kwargs: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            client_kwargs["endpoint_url"] = endpoint
        # No cached listings, and a fresh instance per store: a cached listing would hide files
        # written by another Store or process (s3fs even answers exists()/info() from it).
        fs = s3fs.S3FileSystem(
            client_kwargs=client_kwargs, skip_instance_cache=True, use_listings_cache=False,
            config_kwargs={"retries": dict(S3_RETRIES)},
            s3_additional_kwargs=dict(write_options or {}),
        )
        fs.retries = S3FS_RETRIES
        return fs, uri[len("s3://") :].rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        try:
            fs, path = fsspec.core.url_to_fs(uri)
        except (ValueError, ImportError) as problem:
            raise UserError(f"{uri}: unsupported location ({problem}); expected a local path, "
                            "file://... or s3://bucket/prefix") from None
        return fs, path.rstrip("/")
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return fsspec.filesystem("file"), str(Path(path).expanduser().resolve())


@dataclass
class Store:
    """Artifacts under one root URI. Keys are '/'-joined relative paths."""

    root: str
    # S3 request arguments of every write, e.g. {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": ...}
    write_options: dict[str, Any] = field(default_factory=dict)
    fs: fsspec.AbstractFileSystem = field(init=False, repr=False)
    base: str = field(init=False)
    _swept: set[str] = field(init=False, repr=False, default_factory=set)

    def __post_init__(self) -> None:
        self.root = self.root.rstrip("/") or self.root
        self.fs, self.base = filesystem_for(self.root, self.write_options)

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

    @_bounded("exists")
    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    @_bounded("read")
    def read_bytes(self, key: str) -> bytes:
        try:
            if self.is_local:
                with open(self.path(key), "rb") as handle:
                    return handle.read()
            # One GET: opening the object would HEAD it first, and a concurrent writer replacing it
            # between the two requests fails the read (s3fs's FileExpired).
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from None

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    @_bounded("write")
    def write_bytes(self, key: str, data: bytes) -> str:
        """Write atomically: a local temp file renamed into place; an S3 PUT is atomic already."""
        target = self.path(key)
        if self.is_local:
            self._write_local(target, data, os.replace)
        else:
            with self.fs.open(target, "wb") as handle:
                handle.write(data)
        return self.uri(key)

    @_bounded("write")
    def create_bytes(self, key: str, data: bytes) -> str:
        """Write a key that must not exist yet; FileExistsError when it does (another writer won).

        Local: a complete temp file hard-linked into place (link() fails on an existing name, where
        rename would overwrite). S3: a conditional PUT (If-None-Match: *).
        """
        target = self.path(key)
        if self.is_local:
            try:
                self._write_local(target, data, _link_exclusive)
            except FileExistsError:
                raise FileExistsError(self.uri(key)) from None
            return self.uri(key)
        if self.exists(key):
            raise FileExistsError(self.uri(key))
        try:
            self.fs.pipe_file(target, data, mode="create")
        except OSError as problem:
            if isinstance(problem, FileExistsError) or "precondition" in str(problem).lower():
                raise FileExistsError(self.uri(key)) from None
            raise
        return self.uri(key)

    def _write_local(self, target: str, data: bytes, place: Callable[[str, str], None]) -> None:
        directory = os.path.dirname(target)
        os.makedirs(directory, exist_ok=True)
        self._sweep_temp(directory)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
            place(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def _sweep_temp(self, directory: str) -> None:
        """Remove temp files a killed writer left in a folder (once per folder and Store): young ones
        may belong to a writer still at work and are kept."""
        if directory in self._swept:
            return
        self._swept.add(directory)
        cutoff = time.time() - TEMP_MAX_AGE_SECONDS
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                if TEMP_SUFFIX.search(entry.name):
                    with contextlib.suppress(OSError):
                        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                            os.unlink(entry.path)

    @_bounded("update")
    def update_json(self, key: str, mutate: Callable[[Any | None], Any | None],
                    indent: int | None = 2) -> Any:
        """Atomic read-modify-write of one JSON document shared by concurrent writers.

        `mutate` gets the current document (None when absent) and returns the new one (None: leave
        it as it is); it may be called more than once, so it must not act on the world. Local
        folders hold an exclusive file lock meanwhile; S3 writes with If-Match on the ETag read (or
        If-None-Match when creating) and starts again on a lost race. Returns what was written.
        """
        if self.is_local:
            return self._update_local(key, mutate, indent)
        deadline = time.monotonic() + UPDATE_SECONDS
        attempt = 0
        while True:
            found = self._read_with_etag(key)
            document = mutate(json.loads(found[0]) if found else None)
            if document is None:
                return json.loads(found[0]) if found else None
            data = json_dumps(document, indent=indent).encode("utf-8")
            if self._put_if(key, data, found[1] if found else None):
                return json.loads(data)
            attempt += 1
            if time.monotonic() > deadline:
                raise StoreConflict(f"{self.uri(key)}: gave up after {attempt} lost races with other "
                                    f"writers over {UPDATE_SECONDS:.0f} s")
            time.sleep(random.uniform(0, min(1.0, 0.02 * 2**attempt)))

    def _update_local(self, key: str, mutate: Callable[[Any | None], Any | None],
                      indent: int | None) -> Any:
        import fcntl

        lock_dir = os.path.join(self.base, LOCKS)
        os.makedirs(lock_dir, exist_ok=True)
        lock_path = os.path.join(lock_dir, hashlib.sha256(key.encode()).hexdigest()[:40] + ".lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = self.read_json(key) if self.exists(key) else None
                document = mutate(current)
                if document is None:
                    return current
                data = json_dumps(document, indent=indent).encode("utf-8")
                self.write_bytes(key, data)
                return json.loads(data)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """(bytes, ETag) of an S3 object from one GET, so the ETag is that of the bytes; None if absent."""
        from fsspec.asyn import sync

        bucket, name, _ = self.fs.split_path(self.path(key))

        async def get() -> tuple[bytes, str] | None:
            try:
                response = await self.fs._call_s3("get_object", Bucket=bucket, Key=name)
            except FileNotFoundError:
                return None
            async with response["Body"] as body:
                return await body.read(), response["ETag"]

        return sync(self.fs.loop, get)

    def _put_if(self, key: str, data: bytes, etag: str | None) -> bool:
        """PUT only if the object is unchanged since it was read (or still absent): False if not."""
        bucket, name, _ = self.fs.split_path(self.path(key))
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.fs.call_s3("put_object", Bucket=bucket, Key=name, Body=data, **condition)
        except FileExistsError:
            return False
        except OSError as problem:
            text = str(problem).lower()
            # 412 PreconditionFailed (changed), 409 ConditionalRequestConflict (a concurrent write)
            if "precondition" in text or "conditional" in text or problem.errno == errno.EINVAL:
                return False
            raise
        return True

    def write_text(self, key: str, text: str) -> str:
        return self.write_bytes(key, text.encode("utf-8"))

    def write_json(self, key: str, document: Any, indent: int | None = 2) -> str:
        return self.write_bytes(key, json_dumps(document, indent=indent).encode("utf-8"))

    @_bounded("delete")
    def delete(self, key: str) -> None:
        try:
            self.fs.rm(self.path(key))
        except FileNotFoundError:
            pass

    def check(self, writable: bool = False) -> Store:
        """Refuse a store that cannot work before any work starts: a root that is a file or lies
        under one, an unknown scheme, a missing S3 bucket, or (writable) a folder that cannot be
        written. A UserError naming the store and what was expected."""
        if self.is_local:
            _check_local_root(self.base, self.root, writable)
        elif self.root.startswith("s3://"):
            bucket = self.base.split("/", 1)[0]
            began = time.monotonic()
            try:
                self.fs.ls(bucket, detail=False)
            except FileNotFoundError:
                raise UserError(f"store {self.root}: bucket {bucket!r} does not exist "
                                "(create it, or check AWS_ENDPOINT_URL)") from None
            except PermissionError as problem:
                raise UserError(f"store {self.root}: access to bucket {bucket!r} denied ({problem})"
                                ) from None
            except Exception as problem:
                if not _transport_error(problem):
                    raise
                raise StoreUnavailable(f"store {self.root}: bucket {bucket!r} could not be reached "
                                       f"after {time.monotonic() - began:.0f} s: {problem}") from None
        return self

    def version(self, key: str) -> str | None:
        """A token that changes whenever the file does (local: modification time and size; S3: its
        ETag), None when it does not exist: lets a reader keep a parsed copy until it changes."""
        try:
            info = self.fs.info(self.path(key))
        except FileNotFoundError:
            return None
        tag = info.get("ETag") or info.get("etag")
        return str(tag) if tag else f"{info.get('mtime')}:{info.get('size')}"

    @_bounded("list")
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

    @_bounded("list")
    def list_modified(self, prefix: str) -> list[tuple[str, datetime | None]]:
        """(key, modification time in UTC) of the files directly under a prefix, sorted."""
        try:
            entries = self.fs.ls(self.path(prefix), detail=True)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            if entry.get("type") != "file" or TEMP_SUFFIX.search(entry["name"]):
                continue
            moment = entry.get("LastModified") or entry.get("mtime")
            if isinstance(moment, int | float):
                moment = datetime.fromtimestamp(moment, UTC)
            elif isinstance(moment, datetime):
                moment = moment.astimezone(UTC)
            else:
                moment = None
            found.append((self._key(entry["name"]), moment))
        return sorted(found, key=lambda item: item[0])

    @_bounded("list")
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


def _link_exclusive(tmp: str, target: str) -> None:
    """Place a complete temp file at target unless target exists (FileExistsError)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: exclusive create instead
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle, open(tmp, "rb") as source:
            handle.write(source.read())


def _can_write(folder: Path) -> bool:
    """Whether a file can be created in the folder (a probe: permissions alone miss read-only
    mounts, and root passes every permission check)."""
    probe = folder / f".modelwatch-write-check-{uuid.uuid4().hex}"
    try:
        probe.touch(exist_ok=False)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.unlink()
    return True


def _check_local_root(base: str, root: str, writable: bool) -> None:
    path = Path(base)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == path else f"lies under the file {parent}"
                raise UserError(f"store {root}: {where}; expected a folder or s3://bucket/prefix")
            if writable and not _can_write(parent):
                raise UserError(f"store {root}: {parent} is not writable (read-only)")
            return


def json_dumps(document: Any, indent: int | None = 2) -> str:
    """Strict JSON; non-finite floats become the strings "NaN"/"Infinity" (as SageMaker writes)."""
    return json.dumps(_finite(document), indent=indent, default=_default, allow_nan=False)


def json_bytes(document: Any) -> bytes:
    """json_dumps as UTF-8 bytes, ready to write."""
    return json_dumps(document).encode("utf-8")


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


def read_uri_bytes(uri: str, what: str = "") -> bytes:
    """Read a whole file given by URI or local path; a missing one is a user error naming it (after
    `what`, e.g. "model artifact ")."""
    fs, path = filesystem_for(uri)
    try:
        with fs.open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise UserError(f"{what}{uri}: no such file") from None
