"""A mergeable KLL-style quantile sketch, stored in SageMaker/Deequ's `kll` shape.

Level i holds items of weight 2**i. A full level is compacted by sorting it and promoting every other
item (random offset) to the next level. Because every other item of a sorted array is still sorted, a
large batch is compacted in one sort and a stride, which keeps profiling 10^6 values per column cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_K = 2048
DEFAULT_C = 0.64  # Deequ's shrinking factor; recorded in the file for compatibility.


@dataclass
class QuantileSketch:
    """Levels of retained items; len(levels[i]) <= k after compaction, each item weighing 2**i."""

    k: int = DEFAULT_K
    c: float = DEFAULT_C
    levels: list[np.ndarray] = field(default_factory=list)
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def weight(self) -> float:
        """Total weight: the number of values the sketch stands for (approximately, after merges)."""
        return float(sum(len(level) * 2.0**i for i, level in enumerate(self.levels)))

    def update(self, values: np.ndarray) -> None:
        """Add finite float values."""
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        if values.size <= self.k:
            self._add(0, values)
            return
        # Compact a big batch straight to the level where it fits: one sort, then strides.
        ordered = np.sort(values)
        level = 0
        while ordered.size > self.k:
            ordered, leftover = self._halve(ordered)
            if leftover.size:
                self._add(level, leftover)
            level += 1
        self._add(level, ordered)

    def merge(self, other: QuantileSketch) -> None:
        for i, items in enumerate(other.levels):
            if items.size:
                self._add(i, items)

    def _halve(self, ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every other item of a sorted array (promoted), and the odd item left behind, if any."""
        leftover = np.empty(0, dtype=np.float64)
        if ordered.size % 2:
            at = int(self._rng.integers(ordered.size))
            leftover = ordered[at : at + 1]
            ordered = np.delete(ordered, at)
        offset = int(self._rng.integers(2))
        return ordered[offset::2], leftover

    def _add(self, level: int, items: np.ndarray) -> None:
        while len(self.levels) <= level:
            self.levels.append(np.empty(0, dtype=np.float64))
        self.levels[level] = np.concatenate([self.levels[level], items])
        while self.levels[level].size > self.k:
            promoted, self.levels[level] = self._halve(np.sort(self.levels[level]))
            if len(self.levels) <= level + 1:
                self.levels.append(np.empty(0, dtype=np.float64))
            self.levels[level + 1] = np.concatenate([self.levels[level + 1], promoted])
            level += 1

    def items_and_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """All retained items sorted, with their weights."""
        if not self.levels:
            return np.empty(0), np.empty(0)
        items = np.concatenate(self.levels)
        weights = np.concatenate(
            [np.full(len(level), 2.0**i) for i, level in enumerate(self.levels)]
        )
        order = np.argsort(items, kind="stable")
        return items[order], weights[order]

    def cdf(self, points: np.ndarray, inclusive: bool = True) -> np.ndarray:
        """Estimated fraction of values <= points (or < points when inclusive is False)."""
        items, weights = self.items_and_weights()
        if items.size == 0:
            return np.full(np.shape(points), np.nan)
        cumulative = np.concatenate([[0.0], np.cumsum(weights)])
        idx = np.searchsorted(items, points, side="right" if inclusive else "left")
        return cumulative[idx] / cumulative[-1]

    def quantile(self, q: np.ndarray | float) -> np.ndarray:
        """Estimated q-quantiles (lowest retained item whose cumulative share reaches q)."""
        items, weights = self.items_and_weights()
        cumulative = np.cumsum(weights) / weights.sum()
        idx = np.searchsorted(cumulative, np.asarray(q), side="left")
        return items[np.minimum(idx, items.size - 1)]

    def buckets(self, lo: float, hi: float, n: int = 10) -> list[dict[str, float]]:
        """SageMaker's 10 equal-width buckets over [min, max] with estimated counts."""
        total = self.weight
        edges = np.linspace(lo, hi, n + 1) if hi > lo else np.full(n + 1, lo)
        below = self.cdf(edges, inclusive=False) * total
        upto_last = self.cdf(np.array([hi]), inclusive=True)[0] * total
        counts = np.diff(below)
        counts[-1] = upto_last - below[-2]
        return [
            {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]),
             "count": float(round(counts[i], 6))}
            for i in range(n)
        ]

    def to_kll(self, lo: float, hi: float) -> dict:
        """The statistics.json `distribution.kll` document."""
        return {
            "buckets": self.buckets(lo, hi),
            "sketch": {
                "parameters": {"c": self.c, "k": float(self.k)},
                "data": [level.tolist() for level in self.levels],
            },
        }

    @classmethod
    def from_kll(cls, kll: dict, seed: int = 0) -> QuantileSketch:
        """Rebuild from a `kll` document (ours or SageMaker's); None when it holds no sketch data."""
        sketch = kll.get("sketch") or {}
        params = sketch.get("parameters") or {}
        out = cls(k=int(float(params.get("k", DEFAULT_K))), c=float(params.get("c", DEFAULT_C)),
                  seed=seed)
        out.levels = [np.asarray(level, dtype=np.float64) for level in sketch.get("data") or []]
        return out
