"""Progress on stderr: drawn on a terminal (a pseudo-terminal here), never into a pipe, never with
--quiet; the JSON on stdout is the same in all three."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DEADLINE_S = 120


def _run(args: list[str], env: dict[str, str], terminal: bool) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `modelwatch ARGS`, stderr a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "modelwatch.cli", *args]
    if not terminal:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=DEADLINE_S)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=slave)
    os.close(slave)
    said = b""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            said += chunk
        elif child.poll() is not None:
            break
    os.close(master)
    stdout = child.stdout.read().decode() if child.stdout else ""
    return child.wait(timeout=30), stdout, said.decode(errors="replace")


def test_progress_shows_on_a_terminal_only_and_never_with_quiet(tmp_path: Path, prefect_api: str) -> None:
    rng = np.random.default_rng(3)
    dataset = tmp_path / "training.csv"
    pd.DataFrame({"x": rng.normal(size=300), "y": rng.integers(0, 5, 300)}).to_csv(dataset, index=False)
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "COLUMNS": "120", "TERM": "xterm"}

    def suggest(version: str, *, terminal: bool, quiet: bool = False) -> tuple[dict, str]:
        args = [*(["--quiet"] if quiet else []), "baseline", "suggest", "--model", "progress-m",
                "--dataset", str(dataset), "--version", version, "--store", str(tmp_path / "store")]
        code, stdout, stderr = _run(args, env, terminal)
        assert code == 0, stderr[-2000:]
        return json.loads(stdout), stderr

    shown, on_terminal = suggest("1", terminal=True)
    assert "profiling 300 rows" in on_terminal  # the running step, as the flow names it
    assert "Finished in state" in on_terminal  # Prefect's log lines still print above it

    piped_doc, piped = suggest("2", terminal=False)
    assert "profiling 300 rows" not in piped and "Finished in state" in piped

    quiet_doc, quiet = suggest("3", terminal=True, quiet=True)
    assert "profiling 300 rows" not in quiet and "Finished in state" not in quiet
    assert "INFO" not in quiet
    # The result on stdout is the same document whatever stderr shows.
    assert set(shown) == set(piped_doc) == set(quiet_doc)
