"""Where baselines live and how they load: the store's suggested files, overridden by reviewed files
committed in the project's `baselines/` folder.

Store keys: baselines/<model>/<version>/<monitor-type>/{statistics,constraints,baseline}.json and a
reference sample (sample.parquet) for reports. Project overrides: baselines/<model>/<version>/<type>/
or baselines/<model>/<type>/ under MODELWATCH_BASELINES (default ./baselines).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelwatch.tasks.constraints import check_drift_methods
from modelwatch.tasks.documents import Constraints, Statistics, parse_document  # noqa: F401
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store, check_slug


def baseline_prefix(model: str, version: str, monitor_type: str) -> str:
    return f"baselines/{check_slug(model, 'model name')}/{check_slug(version, 'model version')}/" \
           f"{monitor_type}"


def project_baselines_dir() -> Path:
    return Path(os.environ.get("MODELWATCH_BASELINES") or "baselines")


def check_known_model(store: Store, model: str) -> None:
    """Refuse a model that is not registered and has no baseline (in the store or the project's
    baselines/): most likely a misspelt name, so the UserError lists the models there instead of
    advising to suggest a baseline."""
    registered = sorted(k.rsplit("/", 1)[-1].removesuffix(".json")
                        for k in store.list("registry/models") if k.endswith(".json"))
    baselined = sorted(store.list_dirs("baselines"))
    if model in registered or model in baselined or (project_baselines_dir() / model).is_dir():
        return
    if not registered and not baselined:
        listed = "no model is registered there or has a baseline"
    else:
        listed = f"registered: {', '.join(registered) or 'none'}"
        unregistered = [m for m in baselined if m not in registered]
        if unregistered:
            listed += f"; with a baseline only: {', '.join(unregistered)}"
    raise UserError(f"model {model!r} is not registered in {store.root} and has no baseline there "
                    f"({listed})")


def latest_version(store: Store, model: str) -> str:
    """The highest baseline version of a model (numeric order where versions are numbers)."""
    versions = store.list_dirs(f"baselines/{check_slug(model, 'model name')}")
    if not versions:
        check_known_model(store, model)
        raise UserError(
            f"model {model!r} has no baseline in {store.root}: run "
            f"`modelwatch baseline suggest --model {model} ...` first"
        )
    return max(versions, key=lambda v: (0, int(v)) if v.isdigit() else (1, v))


@dataclass
class Baseline:
    """A loaded data-quality baseline and where each part came from."""

    version: str
    statistics: Statistics | None
    constraints: Constraints
    features: list[str]
    sources: dict[str, str]
    sample: pd.DataFrame | None = None


def project_override(model: str, version: str, monitor_type: str, name: str) -> Path | None:
    root = project_baselines_dir()
    for candidate in (root / model / version / monitor_type / name, root / model / monitor_type / name):
        if candidate.is_file():
            return candidate
    return None


def load_document(store: Store, model: str, version: str, monitor_type: str, name: str,
                  parse: Callable[[bytes, str], Any]) -> tuple[Any, str] | None:
    """(document, source) of one baseline file: the project's reviewed copy wins over the store's
    suggested one; None when neither exists. `parse(data, source)` validates it."""
    override = project_override(model, version, monitor_type, name)
    if override is not None:
        return parse(override.read_bytes(), str(override)), str(override.resolve())
    key = f"{baseline_prefix(model, version, monitor_type)}/{name}"
    if store.exists(key):
        uri = store.uri(key)
        return parse(store.read_bytes(key), uri), uri
    return None


def require_document(store: Store, model: str, version: str, monitor_type: str, name: str,
                     parse: Callable[[bytes, str], Any]) -> tuple[Any, str]:
    """load_document, or a UserError naming where the baseline file was looked for."""
    found = load_document(store, model, version, monitor_type, name, parse)
    if found is None:
        prefix = baseline_prefix(model, version, monitor_type)
        others = [t for t in store.list_dirs(f"baselines/{model}/{version}") if t != monitor_type]
        has = f"; it has {', '.join(others)} baselines" if others else ""
        raise UserError(
            f"model {model!r} version {version} has no {monitor_type} baseline "
            f"(no {store.uri(prefix)}/{name} and no project override){has}: run `modelwatch "
            f"baseline suggest --model {model} --type {monitor_type} ...` first"
        )
    return found


def read_manifest(store: Store, model: str, version: str, monitor_type: str) -> dict[str, Any]:
    """baseline.json of a suggested baseline (what it was computed from), {} when absent."""
    key = f"{baseline_prefix(model, version, monitor_type)}/baseline.json"
    return store.read_json(key) if store.exists(key) else {}


def parser_of(model_class: type) -> Callable[[bytes, str], Any]:
    return lambda data, source: parse_document(model_class, data, source)


def load_baseline(store: Store, model: str, monitor_type: str, version: str | None = None,
                  with_sample: bool = True) -> Baseline:
    version = version or latest_version(store, model)
    prefix = baseline_prefix(model, version, monitor_type)
    sources: dict[str, str] = {}
    constraints, sources["constraints"] = require_document(
        store, model, version, monitor_type, "constraints.json", parser_of(Constraints))
    try:
        check_drift_methods(constraints)
    except UserError as problem:
        raise UserError(f"{sources['constraints']}: {problem}") from None
    statistics = None
    found = load_document(store, model, version, monitor_type, "statistics.json", parser_of(Statistics))
    if found is not None:
        statistics, sources["statistics"] = found
    features = [f.name for f in constraints.features]
    if store.exists(f"{prefix}/baseline.json"):
        manifest = store.read_json(f"{prefix}/baseline.json")
        ordered = [f for f in manifest.get("features", []) if f in set(features)]
        features = ordered + [f for f in features if f not in set(ordered)]
    sample = None
    if with_sample and store.exists(f"{prefix}/sample.parquet"):
        sample = pd.read_parquet(io.BytesIO(store.read_bytes(f"{prefix}/sample.parquet")))
        sources["sample"] = store.uri(f"{prefix}/sample.parquet")
    return Baseline(version, statistics, constraints, features, sources, sample)
