"""Shared pytest fixtures.

Prefect (`prefect_api`): one prefect_test_harness for the whole session (its server takes ~25 s to
start), under a temporary PREFECT_HOME set before Prefect is imported.

S3 fixtures (`s3_endpoint`, `s3_bucket`): a real S3 HTTP endpoint served by moto in a subprocess
(see tests/s3server.py), never moto's in-process mocks, so s3fs/boto3 go through real HTTP.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from modelwatch.runtime import configure_prefect
from tests.chromium import browser  # noqa: F401 - the fixture, for every test module
from tests.s3server import running_s3_server

# Before anything imports Prefect: a private Prefect home and our start-up defaults.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="modelwatch-prefect-home-")
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


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real (temporary) Prefect API for flow tests, shared by the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
