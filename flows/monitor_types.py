"""The monitor interface and the registry of monitor types. Every type, built in or a user's own,
implements `Monitor` and is registered under its name; the CLI, schedules, scheduled runs, alerts,
the summary and the dashboard's columns iterate the registry instead of naming types.

The four built-in types register from modelwatch.flows.builtin_monitors; others through the Python
entry-point group ``modelwatch.monitors`` (``name = "package.module:MonitorClass"``), loaded the first
time the registry is read. Loading the registry imports no monitor's heavy dependencies: a type's
flows are imported when it is baselined or run.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store

ENTRY_POINT_GROUP = "modelwatch.monitors"
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


class Options(BaseModel):
    """A monitor type's own options (of its baseline, or of its executions). Subclass it with typed
    fields, each with a default and a ``description``: the CLI offers every field as ``--field-name``
    in the type's panel of ``--help``, and a misspelt or unknown option is an error."""

    model_config = ConfigDict(extra="forbid")


def column(description: str) -> Any:
    """An option that names a column of the baseline dataset (checked before a baseline starts)."""
    return Field(default=None, description=description, json_schema_extra={"column": True})


class Headline(BaseModel):
    """The one number an execution reports for trend charts.

    Parameters
    ----------
    name : str
        What the number is, e.g. ``"max drift distance"``.
    direction : {"higher-is-worse", "lower-is-worse", "away-from-zero-is-worse"}
        Which way the number moves when the model gets worse.
    threshold : float, optional
        The value past which the type's default constraints raise a violation, when one number says
        it (a baseline may set its own).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    direction: Literal["higher-is-worse", "lower-is-worse", "away-from-zero-is-worse"]
    threshold: float | None = None


class DatasetCheck(BaseModel):
    """A dataset checked against a baseline: the baseline version, the documents computed
    (name -> JSON document, e.g. statistics.json and constraint_violations.json) and the
    violations found."""

    model_config = ConfigDict(extra="forbid")

    baseline_version: str
    documents: dict[str, Any]
    violations: list[dict[str, Any]]


class Monitor(ABC):
    """One monitor type: how it is baselined, what it reads, and one execution over a window.

    Class attributes
    ----------------
    name : str
        The type's name in the store layout, the CLI's ``--type`` and schedule names (a slug).
    label : str
        Its dashboard column's title.
    reads : {"capture", "merged"}
        The records an execution reads: an endpoint's data capture, or capture merged with ground
        truth (a scheduled run merges the window's labels first).
    headline : Headline
        The number each execution reports for the trend chart.
    baseline_options, run_options : type[Options]
        The type's own options of ``suggest_baseline`` and of ``run``.

    Examples
    --------
    A package registers its type in its pyproject.toml::

        [project.entry-points."modelwatch.monitors"]
        text-drift = "my_monitors.text:TextDrift"
    """

    name: ClassVar[str]
    label: ClassVar[str]
    reads: ClassVar[Literal["capture", "merged"]] = "capture"
    headline: ClassVar[Headline]
    baseline_options: ClassVar[type[Options]] = Options
    run_options: ClassVar[type[Options]] = Options

    def check_baseline_options(self, options: Any, label: str | None, dataset: str,
                               columns: list[str]) -> None:
        """Refuse options that cannot work with this dataset (raise UserError) before any work;
        `columns` are the dataset's column names ([] when they cannot be read cheaply)."""
        for field, info in type(options).model_fields.items():
            value = getattr(options, field)
            if not columns or value is None or not (info.json_schema_extra or {}).get("column"):
                continue
            for name in value if isinstance(value, list) else [value]:
                if name not in columns:
                    raise UserError(f"--{_flag(field)} {name!r} is not a column of {dataset}; "
                                    f"columns are {', '.join(columns)}")

    @abstractmethod
    def suggest_baseline(self, *, model: str, dataset: str, version: str, label: str | None,
                         store: str | None, options: Any) -> dict[str, Any]:
        """Suggest and write the type's baseline documents; return their URIs (and warnings)."""

    @abstractmethod
    def load_baseline(self, store: Store, model: str, version: str | None) -> Any:
        """Load the baseline an execution uses (a reviewed copy in the project's baselines/ wins over
        the store's suggested one); raise UserError when there is none or it is invalid."""

    @abstractmethod
    def run(self, *, model: str, start: datetime, end: datetime, source: list[str] | None,
            store: str | None, version: str | None, options: Any,
            return_state: bool = False) -> Any:
        """One execution over [start, end): a Prefect flow call returning execution.json (or the
        flow run's state with `return_state`). `source` is the capture or merged roots to read; None
        means the model's endpoints'."""

    def check_run_inputs(self, store: Store, model: str, start: datetime, end: datetime,
                         sources: list[str] | None, options: Any, allow_empty: bool = False) -> None:
        """Refuse (raise UserError), before an on-demand execution starts, records it cannot read:
        no endpoint to read from, a root that does not exist and, unless `allow_empty`, a window
        none of whose hour folders holds a file. Scheduled runs skip it: an hour without traffic is
        a NoData execution there. The default checks the capture or merged roots (`reads`); a type
        that reads something else overrides it."""
        from modelwatch.tasks.sources import check_sources

        check_sources(store, model, self.reads, start, end, sources, allow_empty)

    def check_dataset(self, store: Store, model: str, dataset: str,
                      version: str | None) -> DatasetCheck:
        """Check a whole dataset (say, a new training set) against the model's baseline of this
        type, outside any monitoring window: what SageMaker Pipelines' check steps do. Types that
        offer it override this."""
        raise UserError(f"--type {self.name} offers no dataset check (data-quality and bias-drift "
                        "do)")

    def describe_violation(self, violation: dict[str, Any]) -> str:
        """A violation of this type in a few words (tables and summaries)."""
        what = violation.get("feature_name") or violation.get("metric_name") or "-"
        return f"{what}: {violation.get('constraint_check_type', '?')}"


_registry: dict[str, Monitor] = {}
_loaded = False
_load_problems: list[str] = []


def _flag(field: str) -> str:
    return field.replace("_", "-")


def register(monitor: Monitor | type[Monitor]) -> Monitor:
    """Add a monitor type to the registry (an instance, or a class instantiated without arguments).

    Parameters
    ----------
    monitor : Monitor or type[Monitor]
        The type. Its ``name`` must be a slug and not already taken by another class.

    Returns
    -------
    Monitor
        The registered instance.
    """
    instance = monitor() if isinstance(monitor, type) else monitor
    if not isinstance(instance, Monitor):
        raise TypeError(f"{monitor!r} is not a modelwatch Monitor")
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"monitor type name {name!r}: expected a slug such as 'text-drift'")
    for attribute in ("label", "headline"):
        if not hasattr(instance, attribute):
            raise ValueError(f"monitor type {name!r} has no {attribute}")
    existing = _registry.get(name)
    if existing is not None and type(existing) is not type(instance):
        raise ValueError(f"monitor type {name!r} is registered twice: by "
                         f"{type(existing).__module__}.{type(existing).__name__} and "
                         f"{type(instance).__module__}.{type(instance).__name__}")
    _registry[name] = instance
    return instance


def _load() -> None:
    """Built-in types first (in dashboard order), then entry points in name order."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import modelwatch.flows.builtin_monitors  # noqa: F401 - registers the built-in types

    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            loaded = point.load()
            monitor = register(loaded)
        except Exception as problem:  # noqa: BLE001 - one broken plugin must not hide the others
            _load_problems.append(f"entry point {point.name} = {point.value}: "
                                  f"{type(problem).__name__}: {problem}")
            continue
        if monitor.name != point.name:
            _load_problems.append(f"entry point {point.name} registers a type named {monitor.name!r}")


def reload() -> tuple[str, ...]:
    """Read the entry points again (after installing a monitor package into a running process);
    returns the registered type names."""
    global _loaded
    _registry.clear()
    _load_problems.clear()
    _loaded = False
    import modelwatch.flows.builtin_monitors as builtins

    for monitor in builtins.BUILT_IN:
        register(monitor)
    return monitor_types()


def monitor_types() -> tuple[str, ...]:
    """The registered type names, built-in types first."""
    _load()
    return tuple(_registry)


def monitors() -> tuple[Monitor, ...]:
    _load()
    return tuple(_registry.values())


def load_problems() -> list[str]:
    """Entry points that could not be loaded (each also keeps its type out of the registry)."""
    _load()
    return list(_load_problems)


def get_monitor(name: str) -> Monitor:
    """The registered type called `name`; an unknown name is a UserError listing the known ones."""
    _load()
    if name not in _registry:
        known = ", ".join(_registry)
        hint = f" ({'; '.join(_load_problems)})" if _load_problems else ""
        raise UserError(f"monitor type {name!r} is not supported: expected one of {known}{hint}")
    return _registry[name]


def parse_options(options_class: type[Options], values: dict[str, Any], monitor_type: str,
                  what: str) -> Options:
    """Validate a type's options; the message names the option as the CLI spells it."""
    try:
        return options_class(**values)
    except ValidationError as problem:
        first = problem.errors()[0]
        field = _flag(str(first["loc"][0])) if first["loc"] else "?"
        if first["type"] == "extra_forbidden":
            known = ", ".join(f"--{_flag(f)}" for f in options_class.model_fields) or "none"
            raise UserError(f"--{field} is not a {what} option of --type {monitor_type} "
                            f"(its options: {known})") from None
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(f"--{field} {first.get('input')!r}: {message} (a {what} option of --type "
                        f"{monitor_type})") from None
