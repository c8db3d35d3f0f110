"""Progress of long work, for whoever shows it. The core counts what it has done (files profiled,
records parsed, labels merged, rows explained) and the flows name the step that is running; a
reporter installed by the shell (the CLI's rich display on a terminal) shows them. With no reporter
installed, which is the default, every call returns at once.

Task threads of one flow report to the same reporter, so a reporter must be thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = ["Reporter", "advance", "expect", "reporting", "step"]


class Reporter(Protocol):
    """What shows progress (see `modelwatch.progress_display.RichReporter`)."""

    def step(self, name: str) -> None:
        """The step now running, e.g. "profiling capture files"."""

    def advance(self, what: str, amount: int, total: int | None) -> None:
        """`amount` more of `what` done (e.g. "records parsed"); `total`, when known, how many in all."""


_reporter: Reporter | None = None


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Install `reporter` for the duration (None: report nothing), restoring the previous one."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous


def step(name: str) -> None:
    """Say which step is running."""
    if _reporter is not None:
        _reporter.step(name)


def advance(what: str, amount: int = 1, total: int | None = None) -> None:
    """Count `amount` more of `what` done."""
    if _reporter is not None and (amount or total is not None):
        _reporter.advance(what, amount, total)


def expect(what: str, total: int) -> None:
    """Say how many of `what` there will be, before any is done."""
    if _reporter is not None:
        _reporter.advance(what, 0, total)
