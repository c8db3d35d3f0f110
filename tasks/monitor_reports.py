"""The pictures of the model-quality, bias-drift and feature-attribution-drift reports, as sections of
an `ExecutionReport` (tasks/execution_report.py): metrics against their thresholds, the confusion
matrix and the ROC and precision-recall curves; each facet's metrics against their allowed ranges;
the baseline and window attribution rankings side by side. Plain functions of the execution's
documents, so what a report shows is what the execution decided."""

from __future__ import annotations

import math
from typing import Any

from modelwatch.tasks.documents import Check
from modelwatch.tasks.execution_report import (
    MAX_CATEGORIES,
    Chart,
    Section,
    Series,
    Table,
    threshold_text,
)

MAX_RANKED = 30  # features listed per label in the attribution ranking table


def _verdict(check: Check | None) -> str:
    return "" if check is None else ("Pass" if check.passed else "Violation")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


# ---- model quality ----


def model_quality_sections(statistics: Any, checks: list[Check]) -> list[Section]:
    """Every metric with its standard deviation and, where constrained, its threshold and verdict;
    the confusion matrix; the ROC and precision-recall curves of a binary model with scores."""
    group = statistics.metrics
    if group is None:
        return []
    by_metric = {c.subject: c for c in checks}
    scalar = group.scalar_metrics()
    constrained = [n for n in scalar if n in by_metric]
    rows = [[name, metric.value, _finite(metric.standard_deviation),
             threshold_text(by_metric[name]) if name in by_metric else None,
             _verdict(by_metric.get(name)) or None]
            for name, metric in sorted(scalar.items(),
                                       key=lambda item: (item[0] not in constrained, item[0]))]
    sections = [Section(title="Metrics", tables=[Table(
        title=f"{statistics.problem_type}: {statistics.item_count or 0:,} labelled rows",
        columns=["metric", "value", "± standard deviation", "passes when", "verdict"], rows=rows,
        caption="Constrained metrics first. The standard deviation is the metric's spread over "
                "resamples of the window.")])]
    matrix = getattr(group, "confusion_matrix", None)
    if matrix:
        actual = sorted(matrix)
        predicted = sorted({p for row in matrix.values() for p in row})
        sections.append(Section(title="Confusion matrix", tables=[Table(
            title="rows: actual label, columns: predicted label",
            columns=["actual \\ predicted", *predicted],
            rows=[[a, *(int(matrix[a].get(p, 0)) for p in predicted)] for a in actual])]))
    charts = []
    roc = getattr(group, "receiver_operating_characteristic_curve", None)
    if roc is not None and roc.false_positive_rates:
        auc = group.metric("auc")
        charts.append(Chart(
            title="ROC curve", kind="lines", x_label="false positive rate",
            y_label="true positive rate",
            caption="" if auc is None else f"AUC {auc.value:.4g}",
            series=[Series(name="window", points=list(zip(roc.false_positive_rates,
                                                          roc.true_positive_rates, strict=True))),
                    Series(name="chance", points=[(0.0, 0.0), (1.0, 1.0)])]))
    pr = getattr(group, "precision_recall_curve", None)
    if pr is not None and pr.recalls:
        pr_auc = group.metric("pr_auc")
        charts.append(Chart(
            title="Precision-recall curve", kind="lines", x_label="recall", y_label="precision",
            caption="" if pr_auc is None else f"average precision {pr_auc.value:.4g}",
            series=[Series(name="window", points=list(zip(pr.recalls, pr.precisions, strict=True)))]))
    if charts:
        sections.append(Section(title="Curves", charts=charts))
    return sections


# ---- bias drift ----


def bias_sections(analysis: Any, checks: list[Check]) -> list[Section]:
    """Per facet, each group's size and each metric against its allowed range."""
    from modelwatch.tasks.bias import entry_name

    section = analysis.post_training_bias_metrics
    if section is None:
        return []
    by_entry = {(c.subject, c.check): c for c in checks}
    tables = []
    for facet, entries in section.facets.items():
        rows = []
        for entry in entries:
            name = entry_name(facet, entry.value_or_threshold)
            for metric in entry.metrics:
                check = by_entry.get((name, metric.name))
                rows.append([entry.value_or_threshold, entry.members, entry.non_members,
                             metric.name, metric.value,
                             threshold_text(check) if check is not None else None,
                             _verdict(check) or (metric.error or None)])
        tables.append(Table(title=f"facet {facet}", rows=rows,
                            columns=["group (d)", "members", "others", "metric", "value",
                                     "allowed", "verdict"]))
    return [Section(title=f"Post-training bias metrics, label {section.label} = "
                          f"{section.label_value_or_threshold}", tables=tables,
                    note="Metrics without an allowed range were not constrained by the baseline; "
                         "a metric with no value names Clarify's reason instead of a verdict.")]


# ---- feature attribution drift ----


def _ranks(values: dict[str, float]) -> dict[str, int]:
    ordered = sorted(values, key=lambda name: (-values[name], name))
    return {name: index + 1 for index, name in enumerate(ordered)}


def _shares(values: dict[str, float]) -> dict[str, float]:
    total = sum(abs(v) for v in values.values())
    return {name: abs(v) / total for name, v in values.items()} if total else {}


def attribution_sections(baseline: Any, current: Any, checks: list[Check]) -> list[Section]:
    """For each label compared: the rankings side by side (baseline order) and the shares of the
    largest attributions, baseline against window."""
    now = current.labels()
    by_label = {c.subject: c for c in checks}
    sections = []
    for label, before in baseline.labels().items():
        if label not in now:
            continue
        old, new = before.global_shap_values, now[label].global_shap_values
        old_rank, new_rank = _ranks(old), _ranks(new)
        names = sorted(set(old) | set(new), key=lambda n: (old_rank.get(n, len(old) + 1),
                                                           new_rank.get(n, len(new) + 1), n))
        rows = [[old_rank.get(n), n, old.get(n), new.get(n), new_rank.get(n)]
                for n in names[:MAX_RANKED]]
        old_share, new_share = _shares(old), _shares(new)
        shown = names[:MAX_CATEGORIES]
        check = by_label.get(label)
        title = f"label {label}" + ("" if check is None or check.value is None else
                                    f": nDCG {check.value:.4g} ({threshold_text(check)} passes)")
        sections.append(Section(
            title=title,
            tables=[Table(title="Ranking, baseline order",
                          columns=["baseline rank", "feature", "baseline attribution",
                                   "window attribution", "window rank"], rows=rows,
                          caption="" if len(names) <= MAX_RANKED else
                          f"The first {MAX_RANKED} of {len(names)} features.")],
            charts=[Chart(title="Share of total attribution", kind="bars", categories=shown,
                          y_label="share", failed=check is not None and not check.passed,
                          series=[Series(name=side, points=[(float(i), shares.get(n, 0.0))
                                                            for i, n in enumerate(shown)])
                                  for side, shares in (("baseline", old_share),
                                                       ("window", new_share))])]))
    return sections
