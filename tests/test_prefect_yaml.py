"""prefect.yaml's entrypoints (file paths in the repository's own layout) load as Prefect loads them
for `prefect deploy`, and are the same flows that `modelwatch serve` deploys by module."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_every_entrypoint_of_prefect_yaml_loads(monkeypatch) -> None:
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(REPO)  # `prefect deploy` runs from the project's folder
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    entrypoints = {d["entrypoint"] for d in document["deployments"]}
    assert len(entrypoints) >= 6
    for entrypoint in sorted(entrypoints):
        path, name = entrypoint.split(":")
        loaded = load_flow_from_entrypoint(entrypoint)
        module = "modelwatch." + path.removesuffix(".py").replace("/", ".")
        assert loaded.name == getattr(__import__(module, fromlist=[name]), name).name, entrypoint
