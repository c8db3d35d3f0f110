"""Running the CLI inside the test process (on the session's Prefect API): exit code and stdout."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from modelwatch import cli


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and stdout of `modelwatch ARGS`."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.run(list(args))
    return code, out.getvalue()


def run(*args: str) -> Any:
    """The JSON document `modelwatch ARGS` printed; fails the test unless it exited 0."""
    code, stdout = invoke(*args)
    assert code == 0, stdout
    return json.loads(stdout)
