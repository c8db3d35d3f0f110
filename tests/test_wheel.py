"""One namespace: the wheel, installed into a fresh virtual environment beside a project that has its
own `flows` and `tasks` packages, puts only `modelwatch` on the import path, leaves the project's
packages its own, and runs a monitor there from Python and from its console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from modelwatch.flows.demo_data import LABEL, generate_demo
from modelwatch.tasks.windows import iso_z

pytestmark = pytest.mark.usefixtures("prefect_api")
REPO = Path(__file__).resolve().parents[1]
UV = REPO / ".tools" / "bin" / "uv"  # what `make install` puts there

USER_FLOW = '''
"""A user's own flow module, beside their own `tasks` package, using modelwatch's public API only."""
import sys

from prefect import flow

import modelwatch
import tasks
from modelwatch.prefect import quality_check


@flow
def nightly(training: str, capture: str, start: str, end: str, store: str, label: str) -> dict:
    first = quality_check("churn", training, label=label, register_baseline="1", store=store)
    assert first["status"] == "NoBaseline" and first["registered"], first
    execution = modelwatch.run_monitor("churn", start, end, source=capture, store=store,
                                       report=False)
    read = modelwatch.read_execution("churn", start, end, store=store)
    assert read.execution["status"] == execution["status"], read.execution
    return execution


if __name__ == "__main__":
    assert tasks.OWNER == "the user", tasks.__file__
    execution = nightly(*sys.argv[1:7])
    print(tasks.OWNER, execution["status"], execution["rows_profiled"])
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the fresh environment's python, the wheel) with the wheel and the locked dependencies."""
    assert UV.exists(), f"{UV} is missing: `make install` puts uv there"
    place = tmp_path_factory.mktemp("wheel")
    subprocess.run([str(UV), "build", "--wheel", "--out-dir", str(place / "dist"), str(REPO)],
                   check=True, capture_output=True)
    [wheel] = (place / "dist").glob("modelwatch-*.whl")
    pins = subprocess.run([str(UV), "export", "--frozen", "--no-dev", "--no-emit-project",
                           "--no-hashes", "-q", "--project", str(REPO)],
                          check=True, capture_output=True, text=True).stdout
    (place / "requirements.txt").write_text(pins)
    venv = place / "venv"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([str(UV), "pip", "install", "-q", "-r", str(place / "requirements.txt"), str(wheel)],
                   check=True, capture_output=True, env={**os.environ, "VIRTUAL_ENV": str(venv)})
    return venv / "bin" / "python", wheel


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's Prefect project with its own flows/ and tasks/ packages."""
    root = tmp_path_factory.mktemp("user-project")
    (root / "flows").mkdir()
    (root / "flows" / "__init__.py").write_text("")
    (root / "flows" / "nightly.py").write_text(USER_FLOW)
    (root / "tasks").mkdir()
    (root / "tasks" / "__init__.py").write_text('OWNER = "the user"\n')
    return root


def _env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


def test_the_wheel_holds_only_the_modelwatch_package(installed) -> None:
    _, wheel = installed
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert tops == {"modelwatch", f"{wheel.name.split('-py3')[0]}.dist-info"}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for module in ("modelwatch/flows/monitor.py", "modelwatch/tasks/store.py",
                   "modelwatch/deployments/schedules.py"):
        assert module in names


def test_a_project_with_its_own_flows_and_tasks_runs_a_monitor(installed, project: Path,
                                                                 tmp_path: Path) -> None:
    python, _ = installed
    case = generate_demo(tmp_path / "demo", rows_per_hour=12, training_rows=2_000)
    start, end = case.days[0]
    # Imports from the project's folder: its own packages win, modelwatch's come from the wheel.
    where = subprocess.run(
        [str(python), "-c", "import flows, tasks, modelwatch.tasks.store as s, modelwatch.flows as f;"
         "print(tasks.__file__); print(s.__file__); print(f.__file__)"],
        cwd=project, env=_env(), check=True, capture_output=True, text=True).stdout.split()
    assert where[0] == str(project / "tasks" / "__init__.py")
    assert all("site-packages/modelwatch/" in path for path in where[1:]), where

    store = tmp_path / "store-python"
    done = subprocess.run(
        [str(python), "-m", "flows.nightly", str(case.training_csv), str(case.capture_root),
         start.isoformat(), end.isoformat(), str(store), LABEL],
        cwd=project, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == f"the user Completed {24 * 12}"

    cli = python.parent / "modelwatch"
    store = tmp_path / "store-cli"
    for args in (["baseline", "suggest", "--model", "churn", "--dataset", str(case.training_csv),
                  "--label", LABEL],
                 ["monitor", "run", "--model", "churn", "--capture", str(case.capture_root),
                  "--start", iso_z(start), "--end", iso_z(end), "--no-report"]):
        done = subprocess.run([str(cli), *args, "--store", str(store)], cwd=project, env=_env(),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    execution = json.loads(done.stdout)
    assert execution["status"] == "Completed" and execution["rows_profiled"] == 24 * 12
