"""Shared pytest fixtures.

Prefect (`prefect_api`): the local background server that commands start on first need
(modelwatch.flows.local_server), under a temporary state folder and PREFECT_HOME set before Prefect
is imported; one server for the whole session (it takes 15-30 s to start), stopped at the end even
when a command in a child process was the one that started it.

S3 fixtures (`s3_endpoint`, `s3_bucket`): a real S3 HTTP endpoint served by moto in a subprocess
(see tests/s3server.py), never moto's in-process mocks, so s3fs/boto3 go through real HTTP.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelwatch.runtime import configure_prefect
from tests.chromium import browser  # noqa: F401 - the fixture, for every test module
from tests.s3server import running_s3_server

# Before anything imports Prefect: a private Prefect home, state folder and our start-up defaults.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="modelwatch-prefect-home-")
os.environ["MODELWATCH_STATE_DIR"] = tempfile.mkdtemp(prefix="modelwatch-state-")
os.environ["MODELWATCH_SERVER_PORT"] = "0"  # never the user's 4200
os.environ.pop("PREFECT_API_URL", None)
configure_prefect()

# --- S3 (moto server) ---------------------------------------------------------------------------

S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Variables that would send clients elsewhere or to a non-existent profile/session during tests.
S3_TEST_ENV_UNSET = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server for the whole session; AWS_* env vars point at it, then restored."""
    with running_s3_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        for name, value in S3_TEST_ENV.items():
            mp.setenv(name, value)
        for name in S3_TEST_ENV_UNSET:
            mp.delenv(name, raising=False)
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh, uniquely named bucket on the moto server; yields "s3://<bucket>/modelwatch"."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"modelwatch-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    yield f"s3://{bucket}/modelwatch"
    with contextlib.suppress(Exception):  # best-effort tidy-up; the server is in-memory anyway
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


# --- Prefect ------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def local_server_state() -> Iterator[Path]:
    """The session's state folder; its local Prefect server, whoever started it, stops at the end."""
    from modelwatch.flows.local_server import state_dir, stop

    state = state_dir()
    yield state
    if "prefect.logging.handlers" in sys.modules:  # send what is queued before the server goes
        from prefect.logging.handlers import APILogHandler

        with contextlib.suppress(Exception):
            APILogHandler.flush()
    stop(state)


@pytest.fixture(scope="session")
def prefect_api(local_server_state: Path) -> Iterator[str]:
    """The local Prefect server, as the CLI starts it, for flow tests; yields its API URL."""
    from modelwatch.flows.local_server import ensure_api

    yield ensure_api(local_server_state)
