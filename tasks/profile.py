"""Mergeable column profiles: counts, moments, min/max, a quantile sketch and category counts.

A partition (a capture file, a chunk of files, a dataset) is profiled on its own; profiles merge
exactly except for the sketch, which merges approximately. The merged profile renders as SageMaker's
statistics.json and can be rebuilt from one, so a baseline needs no raw data at check time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelwatch.tasks.distinct import DistinctSketch
from modelwatch.tasks.documents import (
    Common,
    DatasetInfo,
    FeatureStatistics,
    NumericalStatistics,
    Statistics,
    StringStatistics,
)
from modelwatch.tasks.sketch import QuantileSketch

_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
MAX_CATEGORIES = 10_000  # kept per column; the rest is counted as overflow
MAX_BUCKETS = 1_000  # categorical buckets written to statistics.json


@dataclass
class ColumnProfile:
    """What one column looked like in one or more partitions."""

    name: str
    present: int = 0
    missing: int = 0
    absent: int = 0  # rows whose record did not carry the column at all (JSON captures)
    integral: int = 0
    fractional: int = 0
    string: int = 0
    n: int = 0  # finite numeric values behind the moments
    mean: float = 0.0
    # The sum of squared deviations is kept as m2s * scale**2, scale a power of two at least as large
    # as every |value|: values near the float limit (1e308) would overflow m2 itself.
    m2s: float = 0.0
    scale: float = 1.0
    total: float = 0.0
    non_finite: int = 0  # present numeric values that are NaN or infinite: counted, not averaged
    min: float = float("inf")
    max: float = float("-inf")
    sketch: QuantileSketch = field(default_factory=QuantileSketch)
    counts: Counter[str] | None = None
    overflow: int = 0  # categorical values beyond MAX_CATEGORIES
    # Of every distinct value, once a partition had more than MAX_CATEGORIES (counts then hold the
    # most frequent only): distinct_count is then an estimate.
    distinct: DistinctSketch | None = None

    @property
    def rows(self) -> int:
        return self.present + self.missing

    @property
    def inferred_type(self) -> str:
        if self.string:
            return "String"
        if self.fractional:
            return "Fractional"
        if self.integral:
            return "Integral"
        return "Unknown"

    @property
    def m2(self) -> float:
        """The sum of squared deviations from the mean (inf when beyond a float's range)."""
        with np.errstate(over="ignore"):
            return float(np.float64(self.m2s) * np.float64(self.scale) ** 2)

    @property
    def std_dev(self) -> float:
        return float(np.sqrt(self.m2s / self.n) * self.scale) if self.n else float("nan")

    def merge(self, other: ColumnProfile) -> None:
        self.present += other.present
        self.missing += other.missing
        self.absent += other.absent
        self.integral += other.integral
        self.fractional += other.fractional
        self.string += other.string
        self.non_finite += other.non_finite
        if other.n:
            # Chan et al.'s pairwise update keeps the variance exact when merging partitions; in
            # units of the larger scale, so nothing overflows.
            n = self.n + other.n
            scale = max(self.scale, other.scale)
            mine, theirs = self.mean / scale, other.mean / scale
            delta = theirs - mine
            self.m2s = (self.m2s * (self.scale / scale) ** 2 + other.m2s * (other.scale / scale) ** 2
                        + delta * delta * self.n * other.n / n)
            self.mean = (mine + delta * other.n / n) * scale
            self.scale = scale
            self.n = n
            with np.errstate(over="ignore"):
                self.total = float(np.float64(self.total) + np.float64(other.total))
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
            self.sketch.merge(other.sketch)
        if other.counts is not None:
            if self.distinct is not None or other.distinct is not None:
                self.distinct = self._distinct().merge(other._distinct())
            if self.counts is None:
                self.counts = Counter()
            self.counts.update(other.counts)
            self.overflow += other.overflow

    def _distinct(self) -> DistinctSketch:
        """The sketch of this profile's distinct values (built from its counts when it has none)."""
        if self.distinct is not None:
            return self.distinct
        return DistinctSketch().add(self.counts or ())

    @property
    def distinct_count(self) -> tuple[float, bool]:
        """(number of distinct values, whether it is an estimate)."""
        exact = len(self.counts or ())
        if self.distinct is None:
            return float(exact), False
        return float(max(exact, round(self.distinct.estimate()))), True

    def add_numeric(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        self.non_finite += int(values.size - np.count_nonzero(finite))
        values = values[finite]
        if values.size == 0:
            return
        part = ColumnProfile(self.name, sketch=QuantileSketch(seed=self.sketch.seed))
        part.n = int(values.size)
        part.scale = power_of_two_above(float(np.max(np.abs(values))))
        scaled = values / part.scale  # exact: a power of two only moves the exponent
        mean = float(scaled.mean())
        part.mean = mean * part.scale
        part.m2s = float(((scaled - mean) ** 2).sum())
        with np.errstate(over="ignore"):
            part.total = float(scaled.sum() * part.scale)
        part.min = float(values.min())
        part.max = float(values.max())
        part.sketch.update(values)
        self.merge(part)

    def add_counts(self, strings: pa.Array) -> None:
        tally = pc.value_counts(strings.drop_null())
        values = tally.field("values").to_pylist()
        counts = tally.field("counts").to_pylist()
        if len(values) > MAX_CATEGORIES:
            self.distinct = self._distinct().add(values)
            order = np.argsort(counts)[::-1]
            keep = order[:MAX_CATEGORIES]
            self.overflow += int(sum(counts[i] for i in order[MAX_CATEGORIES:]))
            values = [values[i] for i in keep]
            counts = [counts[i] for i in keep]
        if self.counts is None:
            self.counts = Counter()
        self.counts.update(dict(zip(values, counts, strict=True)))


def power_of_two_above(value: float) -> float:
    """The smallest power of two >= value, at most 2**1023 (1.0 for zero or NaN): a scale that keeps
    values within [-2, 2], where their squares and sums cannot overflow."""
    if not value > 0:
        return 1.0
    mantissa, exponent = np.frexp(min(value, float(np.finfo(np.float64).max)))
    return float(np.ldexp(1.0, min(1023, int(exponent) - (1 if mantissa == 0.5 else 0))))


@dataclass
class DatasetProfile:
    """Profiles of every column seen, and the number of rows they cover."""

    item_count: int = 0
    columns: dict[str, ColumnProfile] = field(default_factory=dict)

    def merge(self, other: DatasetProfile) -> DatasetProfile:
        for name in set(self.columns) - set(other.columns):
            self.columns[name].missing += other.item_count
            self.columns[name].absent += other.item_count
        for name, column in other.columns.items():
            if name not in self.columns:
                self.columns[name] = ColumnProfile(name, missing=self.item_count,
                                                   absent=self.item_count)
            self.columns[name].merge(column)
        self.item_count += other.item_count
        return self


_NUMBER_START = pa.array(list("0123456789+-. "), pa.string())


def _count_numbers(column: ColumnProfile, numbers: np.ndarray) -> None:
    """Add parsed numbers: a whole number counts as Integral however it was written (3 or 3.0),
    so CSV (typed by Arrow) and JSON (typed here) captures agree."""
    whole = int(np.count_nonzero(np.isfinite(numbers) & (numbers == np.floor(numbers))))
    column.integral += whole
    column.fractional += len(numbers) - whole
    column.add_numeric(numbers)


def _classify_strings(column: ColumnProfile, values: pa.Array) -> pa.Array | None:
    """Type-count a string array; return the non-numeric strings (None when all are numeric)."""
    present = values.drop_null()
    # Values that cannot start a number are text: a categorical column needs no parsing at all.
    maybe_number = pc.is_in(pc.utf8_slice_codeunits(present, 0, 1), value_set=_NUMBER_START)
    candidates = int(pc.sum(maybe_number).as_py() or 0)
    if candidates == 0:
        column.string += len(present)
        return present
    if candidates == len(present):
        for kind in (pa.int64(), pa.float64()):
            try:
                numbers = pc.cast(present, kind).to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            _count_numbers(column, numbers.astype(np.float64))
            return None
    is_number = pc.and_(maybe_number, pc.match_substring_regex(present, _NUMBER))
    numeric = int(pc.sum(is_number).as_py() or 0)
    column.string += len(present) - numeric
    if numeric:
        stripped = pc.utf8_trim_whitespace(present.filter(is_number))
        _count_numbers(column, pc.cast(stripped, pa.float64()).to_numpy(zero_copy_only=False))
    return present.filter(pc.invert(is_number))


def profile_column(name: str, values: pa.Array, *, categorical: bool = False,
                   seed: int = 0) -> ColumnProfile:
    """Profile one column of any Arrow type. Category counts are kept for string-valued columns
    and for those named categorical (the baseline's String features)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    column = ColumnProfile(name, sketch=QuantileSketch(seed=seed))
    kind = values.type
    if pa.types.is_floating(kind):
        # NaN is how pandas and most writers spell "missing" in a float column.
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, kind), values)
    column.missing = values.null_count
    column.present = len(values) - values.null_count
    if pa.types.is_null(kind) or column.present == 0:
        return column
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        column.integral = column.present
        column.add_numeric(pc.cast(values.drop_null(), pa.float64()).to_numpy(zero_copy_only=False))
    elif pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        # Arrow's CSV reader types a whole column double for one "3.5" among integers: count per
        # value, so data_type_check still reports the share of non-integral values.
        _count_numbers(column, pc.cast(values.drop_null(), pa.float64()).to_numpy(
            zero_copy_only=False))
    else:
        strings = values if pa.types.is_string(kind) else pc.cast(values, pa.string())
        if pa.types.is_large_string(kind):
            strings = pc.cast(values, pa.string())
        leftovers = _classify_strings(column, strings)
        if leftovers is not None or categorical:
            column.add_counts(strings)
        return column
    if categorical:
        column.add_counts(pc.cast(values, pa.string()))
    return column


def profile_columns(columns: dict[str, pa.Array], num_rows: int, *,
                    categorical: set[str] | frozenset[str] = frozenset(),
                    seed: int = 0) -> DatasetProfile:
    """Profile a partition given as named Arrow arrays of equal length."""
    profile = DatasetProfile(item_count=num_rows)
    for i, (name, values) in enumerate(columns.items()):
        profile.columns[name] = profile_column(
            name, values, categorical=name in categorical, seed=seed * 1000 + i
        )
    return profile


def profile_table(table: pa.Table, *, exclude: set[str] = frozenset(),
                  categorical: set[str] | frozenset[str] = frozenset(),
                  seed: int = 0) -> DatasetProfile:
    columns = {n: table.column(n) for n in table.column_names if n not in exclude}
    return profile_columns(columns, table.num_rows, categorical=categorical, seed=seed)


def merge_profiles(profiles: list[DatasetProfile]) -> DatasetProfile:
    merged = DatasetProfile()
    for part in profiles:
        merged.merge(part)
    return merged


def feature_statistics(column: ColumnProfile) -> FeatureStatistics:
    common = Common(num_present=column.present, num_missing=column.missing)
    kind = column.inferred_type
    type_counts = {"Integral": column.integral, "Fractional": column.fractional,
                   "String": column.string}
    if kind in ("Integral", "Fractional") and column.n:
        return FeatureStatistics(
            name=column.name, inferred_type=kind, type_counts=type_counts,
            numerical_statistics=NumericalStatistics(
                common=common, mean=column.mean, sum=column.total, std_dev=column.std_dev,
                min=column.min, max=column.max,
                distribution={"kll": column.sketch.to_kll(column.min, column.max)},
                **({"num_non_finite": column.non_finite} if column.non_finite else {}),
            ),
        )
    counts = column.counts or Counter()
    buckets = [{"value": value, "count": count} for value, count in counts.most_common(MAX_BUCKETS)]
    return FeatureStatistics(
        # A column with no value at all stays Unknown: it has no type to check later windows against.
        name=column.name, inferred_type=kind,
        type_counts=type_counts,
        string_statistics=StringStatistics(
            common=common, distinct_count=column.distinct_count[0],
            distribution={"categorical": {"buckets": buckets}},
            **({"distinct_count_estimated": True} if column.distinct_count[1] else {}),
        ),
    )


def to_statistics(profile: DatasetProfile, order: list[str] | None = None) -> Statistics:
    """statistics.json for a profile; columns in `order` first, then the rest by name."""
    names = [n for n in (order or []) if n in profile.columns]
    names += sorted(set(profile.columns) - set(names))
    return Statistics(
        dataset=DatasetInfo(item_count=profile.item_count),
        features=[feature_statistics(profile.columns[n]) for n in names],
    )


def column_from_statistics(feature: FeatureStatistics, seed: int = 0) -> ColumnProfile:
    """Rebuild a column profile from a statistics.json feature (ours or SageMaker's)."""
    column = ColumnProfile(feature.name, sketch=QuantileSketch(seed=seed))
    common = feature.common
    if common:
        column.present, column.missing = common.num_present, common.num_missing
    numeric = feature.numerical_statistics
    if numeric is not None:
        column.n = column.present
        column.mean, column.total = numeric.mean, numeric.sum
        column.scale = power_of_two_above(max(abs(numeric.min), abs(numeric.max), numeric.std_dev))
        column.m2s = (numeric.std_dev / column.scale) ** 2 * column.n
        column.min, column.max = numeric.min, numeric.max
        kll = (numeric.distribution or {}).get("kll")
        if kll:
            column.sketch = QuantileSketch.from_kll(kll, seed=seed)
        if feature.inferred_type == "Integral":
            column.integral = column.present
        else:
            column.fractional = column.present
    strings = feature.string_statistics
    if strings is not None:
        buckets = ((strings.distribution or {}).get("categorical") or {}).get("buckets") or []
        column.counts = Counter({str(b["value"]): int(float(b["count"])) for b in buckets})
        column.string = column.present
    return column
