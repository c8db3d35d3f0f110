"""Tests for modelwatch.tasks.store: the Store on a local folder and on S3 (a real moto HTTP endpoint).

Covers JSON/bytes round trips (non-finite floats as strings), exists/list/list_dirs/delete, URIs,
missing keys, slug and key checking, atomic local writes, and that separate Store objects on one
S3 root see each other's writes (no stale listing cache).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from modelwatch.errors import UserError
from modelwatch.tasks.store import Store, check_slug


@pytest.fixture(params=["local", "s3"])
def store_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store root URI: a local tmp folder, or s3://<fresh bucket>/modelwatch on moto."""
    if request.param == "s3":
        return request.getfixturevalue("s3_bucket")
    return str(tmp_path / "store")


@pytest.fixture
def store(store_root: str) -> Store:
    return Store(store_root)


# --- round trips -----------------------------------------------------------------------------


def test_json_round_trip_with_non_finite_floats(store: Store) -> None:
    document = {
        "name": "credit-default",
        "values": [1, 2.5, None, True],
        "nested": {"mean": float("nan"), "max": float("inf"), "min": float("-inf")},
        "nan": float("nan"),
    }
    store.write_json("models/credit-default/baseline.json", document)
    back = store.read_json("models/credit-default/baseline.json")
    assert back["nan"] == "NaN"
    assert back["nested"] == {"mean": "NaN", "max": "Infinity", "min": "-Infinity"}
    assert back["values"] == [1, 2.5, None, True]
    assert back["name"] == "credit-default"
    # Strict JSON on disk: no bare NaN/Infinity tokens a strict parser would reject.
    raw = store.read_bytes("models/credit-default/baseline.json").decode()
    json.loads(raw, parse_constant=lambda token: pytest.fail(f"non-strict JSON token {token}"))


def test_bytes_and_text_round_trip(store: Store) -> None:
    payload = bytes(range(256)) * 10
    store.write_bytes("blobs/data.bin", payload)
    assert store.read_bytes("blobs/data.bin") == payload
    store.write_text("blobs/note.txt", "héllo\n")
    assert store.read_bytes("blobs/note.txt") == "héllo\n".encode()


def test_overwrite_replaces_content(store: Store) -> None:
    store.write_json("a.json", {"v": 1})
    store.write_json("a.json", {"v": 2})
    assert store.read_json("a.json") == {"v": 2}


# --- exists, list, list_dirs, delete ---------------------------------------------------------


def test_exists(store: Store) -> None:
    assert not store.exists("x/y.json")
    store.write_json("x/y.json", {})
    assert store.exists("x/y.json")
    assert not store.exists("x/z.json")


def test_list_sorted_files_directly_under_prefix(store: Store) -> None:
    for key in ["runs/b.json", "runs/a.json", "runs/c.txt", "runs/sub/deep.json", "other/x.json"]:
        store.write_bytes(key, b"{}")
    assert store.list("runs") == ["runs/a.json", "runs/b.json", "runs/c.txt"]
    assert store.list("runs/") == ["runs/a.json", "runs/b.json", "runs/c.txt"]
    assert store.list("runs/sub") == ["runs/sub/deep.json"]
    assert store.list("absent") == []
    assert store.list("runs/absent") == []


def test_list_dirs(store: Store) -> None:
    for key in ["models/m2/a.json", "models/m1/a.json", "models/m1/v/b.json", "models/top.json"]:
        store.write_bytes(key, b"{}")
    assert store.list_dirs("models") == ["m1", "m2"]
    assert store.list_dirs("models/m1") == ["v"]
    assert store.list_dirs("models/m2") == []
    assert store.list_dirs("absent") == []
    assert store.list_dirs("") == ["models"]


def test_delete(store: Store) -> None:
    store.write_json("d/a.json", {})
    store.write_json("d/b.json", {})
    store.delete("d/a.json")
    assert not store.exists("d/a.json")
    assert store.list("d") == ["d/b.json"]
    store.delete("d/a.json")  # deleting a missing key is not an error
    store.delete("never/was.json")


# --- URIs and errors -------------------------------------------------------------------------


def test_uri(store: Store, store_root: str) -> None:
    uri = store.uri("models/m1/a.json")
    assert uri.endswith("/models/m1/a.json")
    if store_root.startswith("s3://"):
        assert uri == f"{store_root}/models/m1/a.json"
        assert uri.startswith("s3://")
    else:
        assert "://" not in uri
        assert Path(uri) == Path(store_root).resolve() / "models" / "m1" / "a.json"
    assert store.write_json("models/m1/a.json", {}) == uri


def test_missing_key_raises_file_not_found_naming_uri(store: Store) -> None:
    with pytest.raises(FileNotFoundError) as info:
        store.read_bytes("nope/missing.json")
    assert store.uri("nope/missing.json") in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        store.read_json("nope/missing.json")


@pytest.mark.parametrize("key", ["../x.json", "a/../../b.json", "a/..", ".."])
def test_key_with_dotdot_is_refused(store: Store, key: str) -> None:
    with pytest.raises(UserError, match=r"\.\."):
        store.path(key)
    with pytest.raises(UserError):
        store.write_bytes(key, b"x")
    with pytest.raises(UserError):
        store.read_bytes(key)


# --- slugs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["credit-default", "m1.v2", "a_b", "a", "x" * 63, "0model"])
def test_check_slug_accepts(name: str) -> None:
    assert check_slug(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Upper", "../x", "a/b", "-x", "." * 3, "x" * 64, "a b", "ok\n", "_x", "é"],
)
def test_check_slug_rejects_with_name_in_message(name: str) -> None:
    with pytest.raises(UserError) as info:
        check_slug(name, "model name")
    assert repr(name) in str(info.value)
    assert "model name" in str(info.value)


# --- local atomicity -------------------------------------------------------------------------


def test_local_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    for i in range(5):
        store.write_json(f"m/doc{i}.json", {"i": i})
        store.write_bytes("m/blob.bin", os.urandom(1000))
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    assert store.list("m") == ["m/blob.bin"] + [f"m/doc{i}.json" for i in range(5)]


def test_local_reader_never_sees_partial_document(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    key = "big/doc.json"

    def document(version: int) -> dict:
        # ~5 MB of JSON in few long strings (cheap to encode/parse, so the test stays fast); every
        # version has the same shape, so only a torn read could fail to parse or count.
        return {"version": version, "rows": [f"{version:04d}-{i:05d}-" * 100 for i in range(5000)]}

    assert len(json.dumps(document(0))) > 5_000_000
    store.write_json(key, document(0), indent=None)
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        while not done.is_set():
            try:
                doc = store.read_json(key)
                assert len(doc["rows"]) == 5000
                seen.append(doc["version"])
            except BaseException as error:  # noqa: B036 - re-reported in the main thread
                errors.append(error)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, 21):
            store.write_json(key, document(version), indent=None)
    finally:
        done.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []
    assert seen, "the reader never completed a read"
    assert seen == sorted(seen)
    assert store.read_json(key)["version"] == 20
    assert [p.name for p in (tmp_path / "big").iterdir()] == ["doc.json"]


def test_local_list_hides_in_progress_temp_files(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.write_json("m/a.json", {})
    # What a concurrent writer's temp file looks like while it is being written.
    (tmp_path / "m" / f"b.json.tmp-{'0' * 32}").write_bytes(b"{")
    assert store.list("m") == ["m/a.json"]


def test_local_failed_write_removes_temp_file(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    (tmp_path / "m" / "x.json").mkdir(parents=True)  # the rename onto a directory fails
    with pytest.raises(OSError):
        store.write_bytes("m/x.json", b"{}")
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["x.json"]


# --- S3: several Store objects on one root ---------------------------------------------------


def test_second_s3_store_sees_writes_of_first(s3_bucket: str) -> None:
    first = Store(s3_bucket)
    second = Store(s3_bucket)
    first.write_json("runs/a.json", {"v": 1})
    # Both stores list (and so could cache) the prefix before the other writes more.
    assert second.list("runs") == ["runs/a.json"]
    assert first.list("runs") == ["runs/a.json"]
    assert second.list_dirs("") == ["runs"]

    first.write_json("runs/b.json", {"v": 2})
    first.write_json("other/c.json", {"v": 3})
    assert second.exists("runs/b.json")
    assert second.read_json("runs/b.json") == {"v": 2}
    assert second.list("runs") == ["runs/a.json", "runs/b.json"]
    assert second.list_dirs("") == ["other", "runs"]

    second.write_json("runs/a.json", {"v": 10})
    second.delete("runs/b.json")
    assert first.read_json("runs/a.json") == {"v": 10}
    assert not first.exists("runs/b.json")
    assert first.list("runs") == ["runs/a.json"]
    # A brand-new Store after all that agrees.
    assert Store(s3_bucket).list("runs") == ["runs/a.json"]
