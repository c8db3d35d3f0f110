"""A mergeable HyperLogLog sketch of the number of distinct values of a column, for columns with more
categories than a profile keeps counts of (tasks/profile.py MAX_CATEGORIES): the count is then an
estimate with a standard error of about 1.6 %, said to be one, instead of a silent lower bound."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

PRECISION = 12  # 4,096 one-byte registers
_REGISTERS = 1 << PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / _REGISTERS)


def _leading_zeros(values: np.ndarray) -> np.ndarray:
    """Leading zero bits of uint64 values (64 for zero), exactly, by halving the search."""
    zeros = np.zeros(values.shape, np.int64)
    rest = values.copy()
    for width in (32, 16, 8, 4, 2, 1):
        empty = (rest >> np.uint64(64 - width)) == 0
        zeros += np.where(empty, width, 0)
        rest = np.where(empty, rest << np.uint64(width), rest)
    return zeros + (rest == 0)


@dataclass
class DistinctSketch:
    registers: np.ndarray = field(default_factory=lambda: np.zeros(_REGISTERS, np.uint8))

    def add(self, values: Iterable[str]) -> DistinctSketch:
        """Add values (each distinct value once or many times: the same)."""
        array = np.asarray(list(values), dtype=object)
        if array.size == 0:
            return self
        hashes = pd.util.hash_array(array, categorize=False).astype(np.uint64)
        index = (hashes >> np.uint64(64 - PRECISION)).astype(np.int64)
        rest = hashes << np.uint64(PRECISION)
        rank = np.minimum(_leading_zeros(rest) + 1, 64 - PRECISION + 1).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)
        return self

    def merge(self, other: DistinctSketch) -> DistinctSketch:
        np.maximum(self.registers, other.registers, out=self.registers)
        return self

    def estimate(self) -> float:
        """The estimated number of distinct values (linear counting while registers are empty)."""
        raw = _ALPHA * _REGISTERS**2 / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int64))))
        empty = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * _REGISTERS and empty:
            return float(_REGISTERS * np.log(_REGISTERS / empty))
        return raw
