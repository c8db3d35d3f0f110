"""Progress on the terminal: the step that is running and the counts the core reports
(`modelwatch.tasks.progress`), drawn by rich on stderr while a command works and erased when it is done.
Shown only when stderr is a terminal and `--quiet` was not given; log lines printed meanwhile
(Prefect's included) appear above it."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from modelwatch.tasks import progress


def wanted(quiet: bool) -> bool:
    """Progress is for people at a terminal: not with --quiet, not into a pipe, file or dumb terminal."""
    import os

    return not quiet and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


class RichReporter:
    """A `tasks.progress.Reporter` drawing one line for the step and one per count."""

    def __init__(self, display: Any) -> None:
        self._display = display
        self._lock = threading.Lock()
        self._step = display.add_task("starting", total=None, count="")
        self._counts: dict[str, list[Any]] = {}  # what -> [task id, done, total]

    def step(self, name: str) -> None:
        self._display.update(self._step, description=name, refresh=True)  # every step drawn once

    def advance(self, what: str, amount: int, total: int | None) -> None:
        with self._lock:
            if what not in self._counts:
                self._counts[what] = [self._display.add_task(f"  {what}", total=None, count=""), 0, None]
            entry = self._counts[what]
            entry[1] += amount
            entry[2] = total if total is not None else entry[2]
            count = f"{entry[1]:,}" if entry[2] is None else f"{entry[1]:,}/{entry[2]:,}"
        self._display.update(entry[0], count=count)


def _prefect_console_handlers() -> list[Any]:
    """Prefect's console log handlers that exist already (each keeps its own rich Console)."""
    if "prefect.logging.handlers" not in sys.modules:
        return []
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))]
    return [h for lg in loggers for h in getattr(lg, "handlers", ())
            if isinstance(h, PrefectConsoleHandler)]


@contextmanager
def showing_progress(quiet: bool) -> Iterator[None]:
    """Show progress meanwhile when `wanted(quiet)`; otherwise do nothing at all."""
    if not wanted(quiet):
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    display = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                       TextColumn("{task.fields[count]}"), TimeElapsedColumn(), console=console,
                       transient=True, redirect_stdout=True, redirect_stderr=True)
    # Prefect's handlers made before now would draw over the display: they print through it instead.
    handlers = [(h, h.console) for h in _prefect_console_handlers()]
    with display:
        for handler, _ in handlers:
            handler.console = console
        try:
            with progress.reporting(RichReporter(display)):
                yield
        finally:
            for handler, own in handlers:
                handler.console = own
