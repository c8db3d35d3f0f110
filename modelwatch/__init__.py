"""modelwatch: self-hosted model monitoring and governance as Prefect flows over a local or S3 store.

Everything installs under this one name: the flows, tasks and deployments are ``modelwatch.flows``,
``modelwatch.tasks`` and ``modelwatch.deployments``. The public API is importable from here (each
name loads its module on first use, so ``import modelwatch`` stays cheap); Prefect tasks to put in
your own flows are in ``modelwatch.prefect``.
"""

from importlib import import_module as _import_module
from pathlib import Path as _Path
from typing import Any as _Any

__version__ = "0.1.0"

# The wheel places flows/, tasks/ and deployments/ inside this package. A source checkout keeps them
# at the top of the repository, as the project's layout has them: there the repository is one more
# place the package's submodules are found, so the same imports work in both.
_HERE = _Path(__file__).resolve().parent
if not (_HERE / "tasks").is_dir() and (_HERE.parent / "tasks" / "store.py").is_file():
    __path__.append(str(_HERE.parent))  # noqa: F821 - a package's own __path__

# Public name -> the module that defines it.
_EXPORTS = {
    "UserError": "modelwatch.tasks.errors",
    "Monitor": "modelwatch.flows.monitor_types",
    "Options": "modelwatch.flows.monitor_types",
    "Headline": "modelwatch.flows.monitor_types",
    "column": "modelwatch.flows.monitor_types",
    "register": "modelwatch.flows.monitor_types",
    "monitor_types": "modelwatch.flows.monitor_types",
    "get_monitor": "modelwatch.flows.monitor_types",
    "WindowMonitor": "modelwatch.flows.window_monitor",
    "WindowBaseline": "modelwatch.flows.window_monitor",
    "WindowOutcome": "modelwatch.flows.window_monitor",
    "Violation": "modelwatch.tasks.documents",
    "DriftMethod": "modelwatch.tasks.drift",
    "DriftResult": "modelwatch.tasks.drift",
    "register_drift_method": "modelwatch.tasks.drift",
    "drift_methods": "modelwatch.tasks.drift",
    "DatasetCheck": "modelwatch.flows.monitor_types",
    "suggest_baseline": "modelwatch.api",
    "run_monitor": "modelwatch.api",
    "merge_ground_truth": "modelwatch.api",
    "summarize_fleet": "modelwatch.api",
    "read_execution": "modelwatch.api",
    "check_dataset": "modelwatch.api",
    "ExecutionFailed": "modelwatch.api",
    "ExecutionDocuments": "modelwatch.api",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> _Any:
    if name in _EXPORTS:
        value = getattr(_import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modelwatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
