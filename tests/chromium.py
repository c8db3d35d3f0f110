"""Headless Chromium for tests of the pages modelwatch writes (Debian's chromium; tests are skipped,
saying why, where it is absent): one browser run per call, and no Chromium outlives its test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest


def _chromium() -> str | None:
    candidate = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    return candidate if os.access(candidate, os.X_OK) else shutil.which("chromium")


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found: install it with `apt-get install -y chromium`"
)


def _our_processes(marker: str) -> list[int]:
    """PIDs whose command line mentions this test's private profile directory."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def browser(tmp_path: Path):
    """run(url, *flags) -> stdout of one headless Chromium; no Chromium survives the test."""
    profile = tmp_path / "chromium-profile"

    def run(url: str, *flags: str, timeout: float = 60) -> str:
        command = [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=2000", *flags, url,
        ]
        # Own session so a timeout can kill the renderer/zygote children too, not only the parent.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
        return stdout.decode()

    yield run
    for pid in _our_processes(str(profile)):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _our_processes(str(profile)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _our_processes(str(profile)), "a Chromium process outlived its test"
