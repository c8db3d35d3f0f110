"""A text-drift monitor: how long a free-text feature's texts are (in tokens) and which words they
use, against the training set. Registered through the ``modelwatch.monitors`` entry point."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from modelwatch import Headline, Options, UserError, Violation, WindowMonitor, WindowOutcome, column


class TextBaselineOptions(Options):
    text_column: str | None = column("the free-text feature")
    vocabulary: int = Field(default=50, ge=1, description="most frequent words kept as the vocabulary")
    length_threshold: float = Field(
        default=0.5, gt=0, description="mean length moving more than this many baseline standard "
                                       "deviations is a violation")
    vocabulary_threshold: float = Field(
        default=0.2, gt=0, description="total variation distance of word shares above this is a "
                                       "violation")


def tokens(texts: pd.Series) -> list[list[str]]:
    return [str(t).lower().split() if t is not None and t == t else [] for t in texts]


def word_shares(words: list[list[str]], vocabulary: list[str]) -> dict[str, float]:
    """Share of each vocabulary word among all words, the rest as "<other>"."""
    counts = Counter(w for text in words for w in text)
    total = sum(counts.values()) or 1
    shares = {w: counts.get(w, 0) / total for w in vocabulary}
    shares["<other>"] = 1.0 - sum(shares.values())
    return shares


class TextDrift(WindowMonitor):
    name = "text-drift"
    label = "Text drift"
    reads = "capture"
    headline = Headline(name="vocabulary distance", direction="higher-is-worse", threshold=0.2)
    baseline_options = TextBaselineOptions

    def check_baseline_options(self, options: Any, label: str | None, dataset: str,
                               columns: list[str]) -> None:
        if not options.text_column:
            raise UserError("--type text-drift needs --text-column")
        super().check_baseline_options(options, label, dataset, columns)

    def suggest(self, frame: pd.DataFrame, options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        words = tokens(frame[options.text_column])
        lengths = np.array([len(w) for w in words], dtype=float)
        vocabulary = [w for w, _ in Counter(w for t in words for w in t).most_common(options.vocabulary)]
        statistics = {"column": options.text_column, "count": int(lengths.size),
                      "length_mean": float(lengths.mean()), "length_std": float(lengths.std()),
                      "word_shares": word_shares(words, vocabulary)}
        constraints = {"column": options.text_column, "vocabulary": vocabulary,
                       "length_threshold": options.length_threshold,
                       "vocabulary_threshold": options.vocabulary_threshold}
        return statistics, constraints

    def check(self, baseline: Any, frame: pd.DataFrame, options: Any) -> WindowOutcome:
        rules, before = baseline.constraints, baseline.statistics or {}
        name = rules["column"]
        words = tokens(frame[name])
        lengths = np.array([len(w) for w in words], dtype=float)
        shares = word_shares(words, rules["vocabulary"])
        reference = before.get("word_shares") or {}
        distance = 0.5 * sum(abs(shares[w] - reference.get(w, 0.0)) for w in shares)
        moved = abs(lengths.mean() - before["length_mean"]) / (before["length_std"] or 1.0)
        violations = []
        if moved > rules["length_threshold"]:
            violations.append(Violation(
                feature_name=name, constraint_check_type="text_length_check",
                description=f"mean length {lengths.mean():.3g} tokens moved {moved:.3g} baseline "
                            f"standard deviations (threshold {rules['length_threshold']:g})"))
        if distance > rules["vocabulary_threshold"]:
            violations.append(Violation(
                feature_name=name, constraint_check_type="vocabulary_drift_check",
                description=f"word shares moved {distance:.3g} in total variation (threshold "
                            f"{rules['vocabulary_threshold']:g})"))
        statistics = {"column": name, "count": int(lengths.size), "length_mean": float(lengths.mean()),
                      "length_std": float(lengths.std()), "length_shift": float(moved),
                      "vocabulary_distance": float(distance), "word_shares": shares}
        return WindowOutcome(statistics, violations, metric=float(distance))
