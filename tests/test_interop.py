"""Every SageMaker data-quality document in the shared samples loads, survives a round trip, and
feeds our checks: their statistics rebuild to profiles, their constraints drive check_data_quality."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from modelwatch.tasks.baselines import parse_document
from modelwatch.tasks.constraints import check_data_quality
from modelwatch.tasks.documents import Constraints, ConstraintViolations, Statistics
from modelwatch.tasks.profile import column_from_statistics, profile_columns
from modelwatch.tasks.store import json_dumps
from tests.sagemaker_samples import sample

STATISTICS = ["statistics.json", "dq_statistics_kll.json"]
CONSTRAINTS = ["constraints.json", "dq_constraints_good.json", "dq_constraints_bad.json",
               "dq_constraints_churn_baseline.json"]
VIOLATIONS = ["constraint_violations.json", "dq_constraint_violations_churn_head10.json"]


@pytest.mark.parametrize("name", STATISTICS)
def test_statistics_load_and_round_trip(name: str) -> None:
    raw = json.loads(sample(name).read_text())
    stats = parse_document(Statistics, raw, name)
    assert stats.dataset.item_count == raw["dataset"]["item_count"]
    assert json.loads(json_dumps(stats.dump())) == raw


@pytest.mark.parametrize("name", CONSTRAINTS)
def test_constraints_load_and_round_trip(name: str) -> None:
    raw = json.loads(sample(name).read_text())
    constraints = parse_document(Constraints, raw, name)
    assert [f.name for f in constraints.features] == [f["name"] for f in raw["features"]]
    again = json.loads(json_dumps(constraints.dump()))
    assert [f["name"] for f in again["features"]] == [f["name"] for f in raw["features"]]
    assert again["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == \
        raw.get("monitoring_config", {}).get("distribution_constraints", {}).get(
            "comparison_threshold", 0.1)


@pytest.mark.parametrize("name", VIOLATIONS)
def test_violations_load(name: str) -> None:
    raw = json.loads(sample(name).read_text())
    violations = parse_document(ConstraintViolations, raw, name)
    assert len(violations.violations) == len(raw["violations"])
    assert json.loads(json_dumps(violations.dump())) == raw


def test_legacy_constraint_keys_are_understood() -> None:
    constraints = parse_document(Constraints, sample("constraints.json").read_text(), "c")
    dist = constraints.monitoring_config.distribution_constraints
    assert dist.enabled is True and dist.comparison_threshold == 1.0
    overrides = constraints.features[0].overrides()
    assert overrides == {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled"}


def test_sagemaker_kll_sketch_rebuilds_the_cdf() -> None:
    stats = parse_document(Statistics, sample("dq_statistics_kll.json").read_text(), "kll")
    for feature in stats.features:
        column = column_from_statistics(feature)
        numeric = feature.numerical_statistics
        assert column.sketch.weight == pytest.approx(numeric.common.num_present)
        buckets = numeric.distribution["kll"]["buckets"]
        ours = column.sketch.buckets(numeric.min, numeric.max)
        np.testing.assert_allclose([b["count"] for b in ours], [b["count"] for b in buckets])


def test_sagemaker_statistics_and_constraints_drive_our_checks() -> None:
    stats = parse_document(Statistics, sample("dq_statistics_kll.json").read_text(), "s")
    good = parse_document(Constraints, sample("dq_constraints_good.json").read_text(), "g")
    bad = parse_document(Constraints, sample("dq_constraints_bad.json").read_text(), "b")
    # Rebuild a window from the baseline's own retained items: it must pass the good constraints.
    columns = {}
    for feature in stats.features:
        items, weights = column_from_statistics(feature).sketch.items_and_weights()
        columns[feature.name] = pa.array(np.repeat(items, weights.astype(int)))
    n = len(next(iter(columns.values())))
    profile = profile_columns(columns, n)
    clean = check_data_quality(good, stats, profile, records_read=n, records_malformed=0)
    assert clean.violations == []
    flagged = check_data_quality(bad, stats, profile, records_read=n, records_malformed=0)
    assert {v.constraint_check_type for v in flagged.violations} == {"data_type_check"}


def test_churn_baseline_constraints_check_real_capture() -> None:
    from modelwatch.tasks.capture import parse_capture

    constraints = parse_document(
        Constraints, sample("dq_constraints_churn_baseline.json").read_text(), "churn")
    features = [f.name for f in constraints.features if f.name != "Churn"]
    batch = parse_capture(sample("capture_csv_with_inference_id.jsonl").read_bytes(), "c",
                          features)
    profile = profile_columns(batch.columns, batch.num_rows)
    result = check_data_quality(constraints, None, profile, records_read=batch.records_read,
                                records_malformed=0, ignore_columns={"prediction"})
    kinds = {(v.feature_name, v.constraint_check_type) for v in result.violations}
    assert kinds == {("Churn", "missing_column_check")}
