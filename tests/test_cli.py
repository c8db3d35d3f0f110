"""The console script as a user runs it: exit code 2 and a message naming the problem for user
errors (before Prefect starts), and stdout carrying nothing but the JSON document."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = [sys.executable, "-m", "modelwatch.cli"]


def modelwatch(*args: str, cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*SCRIPT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("a,b,label\n1,x,0\n2,y,1\n3,x,0\n")
    return path


@pytest.mark.parametrize("args, message", [
    (["baseline", "suggest", "--model", "Bad Name", "--dataset", "{dataset}"], "invalid model name"),
    (["baseline", "suggest", "--model", "m", "--dataset", "{tmp}/missing.csv"], "no such file"),
    (["baseline", "suggest", "--model", "m", "--dataset", "{dataset}", "--type", "psychic"],
     "monitor type 'psychic' is not supported"),
    (["baseline", "suggest", "--model", "m", "--dataset", "{dataset}",
      "--categorical-drift-method", "Vibes"], "expected LInfinity or ShareDistance or ChiSquared"),
    (["monitor", "run", "--model", "ghost", "--capture", "{tmp}", "--start", "2026-01-01",
      "--end", "2026-01-02", "--store", "{tmp}/store"], "model 'ghost' is not registered"),
    (["monitor", "run", "--model", "m", "--capture", "{tmp}", "--start", "2026-01-02",
      "--end", "2026-01-01"], "must be after --start"),
    (["monitor", "run", "--model", "m", "--capture", "{tmp}", "--start", "tuesday",
      "--end", "2026-01-01"], "not an ISO-8601 time"),
    (["monitor", "run", "--model", "../etc", "--capture", "{tmp}", "--start", "2026-01-01",
      "--end", "2026-01-02"], "invalid model name"),
    (["monitor", "run", "--model", "m"], "Missing option"),
    (["monitor", "run", "--model", "m", "--capture", "{tmp}", "--start", "2026-01-01",
      "--end", "2026-01-02", "--store", "{dataset}"], "is a file"),
    (["monitor", "run", "--model", "m", "--capture", "{tmp}", "--start", "2026-01-01",
      "--end", "2026-01-02", "--store", "{dataset}/store"], "lies under the file"),
    (["monitor", "run", "--model", "m", "--capture", "{tmp}", "--start", "2026-01-01",
      "--end", "2026-01-02", "--store", "nosuchscheme://bucket/x"], "unsupported location"),
    (["monitor", "run", "--model", "m", "--capture", "{tmp}", "--start", "0001-01-01",
      "--end", "9999-01-01", "--store", "{tmp}/store"], "MODELWATCH_MAX_WINDOW"),
    (["baseline", "suggest", "--model", "m", "--dataset", "{tmp}/twice.csv"],
     "'a' appear more than once"),
    (["baseline", "suggest", "--model", "m", "--dataset", "{dataset}", "--label", "lable"],
     "--label 'lable' is not a column"),
])
def test_user_errors_exit_2(args: list[str], message: str, tmp_path: Path, dataset: Path) -> None:
    filled = [a.format(dataset=dataset, tmp=tmp_path) for a in args]
    (tmp_path / "twice.csv").write_text("a,b,a\n1,2,3\n")
    result = modelwatch(*filled, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_malformed_baseline_document_is_a_user_error(tmp_path: Path) -> None:
    folder = tmp_path / "store" / "baselines" / "m" / "1" / "data-quality"
    folder.mkdir(parents=True)
    (folder / "constraints.json").write_text('{"features": [{"inferred_type": "Integral"}]}')
    result = modelwatch("monitor", "run", "--model", "m", "--capture", str(tmp_path),
                        "--start", "2026-01-01", "--end", "2026-01-02", "--store",
                        str(tmp_path / "store"), "--allow-empty", cwd=tmp_path)
    assert result.returncode == 2
    assert "constraints.json: not a valid Constraints document: features.0.name" in result.stderr


def test_baseline_suggest_prints_only_json(tmp_path: Path, dataset: Path) -> None:
    # A real run in a fresh process: Prefect's ephemeral API starts here (slow, ~20-30 s).
    result = modelwatch("baseline", "suggest", "--model", "m", "--dataset", str(dataset),
                        "--label", "label", "--store", str(tmp_path / "store"), cwd=tmp_path,
                        env={"PREFECT_HOME": str(tmp_path / "prefect")}, timeout=300)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    constraints = json.loads(Path(document["constraints"]).read_text())
    assert [f["name"] for f in constraints["features"]] == ["a", "b"]


def test_a_missing_bucket_is_one_line_before_any_work(s3_endpoint: str, tmp_path: Path,
                                                      dataset: Path) -> None:
    result = modelwatch("baseline", "suggest", "--model", "m", "--dataset", str(dataset),
                        "--store", "s3://no-such-bucket-here/x", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "bucket 'no-such-bucket-here' does not exist" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_user_error_inside_a_flow_is_one_message_not_a_traceback(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3,4,5\n")  # found only when the flow reads the whole file
    result = modelwatch("baseline", "suggest", "--model", "m", "--dataset", str(ragged),
                        "--store", str(tmp_path / "store"), cwd=tmp_path, timeout=240)
    assert result.returncode == 2, result.stderr
    assert "not a well-formed CSV file" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("Retrying") == 0
