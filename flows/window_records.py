"""Reading a window's records, shared by the monitors: the capture files of a window and their inputs
as a frame, and the merged records (capture joined with ground truth) of a model's endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from modelwatch.flows.retries import STORE_RETRY
from modelwatch.tasks import progress
from modelwatch.tasks.capture import (
    CaptureCounts,
    SkippedFile,
    UnreadableFile,
    list_capture_files,
    parse_capture,
)
from modelwatch.tasks.sources import (  # noqa: F401 - the core's, which the flows import from here
    capture_roots,
    merged_files,
    merged_roots,
)
from modelwatch.tasks.store import Store, read_uri_bytes


@task(name="list-capture-files", cache_policy=NO_CACHE, **STORE_RETRY)
def list_files_task(captures: list[str], start: datetime,
                    end: datetime) -> tuple[list[str], list[SkippedFile]]:
    """The capture files of the window, and the files in its hour folders that are not capture."""
    skipped: list[SkippedFile] = []
    files = [f for capture in captures for f in list_capture_files(capture, start, end, skipped)]
    return files, skipped


@dataclass
class CapturedInputs(CaptureCounts):
    """The window's captured inputs (text columns) and what reading them found."""

    frame: pd.DataFrame = field(default_factory=pd.DataFrame)


@task(name="read-capture-inputs", cache_policy=NO_CACHE, **STORE_RETRY)
def read_inputs_task(files: list[str], features: list[str], window: tuple[datetime, datetime],
                     untimed: str = "quarantine") -> CapturedInputs:
    frames: list[pd.DataFrame] = []
    found = CapturedInputs(frame=pd.DataFrame(columns=features))
    for uri in files:
        try:
            batch = parse_capture(read_uri_bytes(uri), uri, features, window, untimed)
        except UnreadableFile as problem:
            found.skipped.append(SkippedFile(uri, str(problem)))
            continue
        found.add(batch)
        progress.advance("files read")
        progress.advance("records parsed", batch.records_read)
        if batch.num_rows:
            frames.append(pd.DataFrame({k: v.to_pylist() for k, v in batch.columns.items()}))
    if frames:
        found.frame = pd.concat(frames, ignore_index=True)
    return found


def check_merges_finished(store: Store, model: str, merged: str | list[str] | None, start: datetime,
                          end: datetime) -> None:
    """Refuse to judge a window whose ground-truth merge began and never wrote its report (for the
    model's own merged data; merged data given by the caller is taken as it is)."""
    from modelwatch.tasks.groundtruth_layout import unfinished_merges
    from modelwatch.tasks.registry import endpoints_of

    if merged:
        return
    unfinished = [m for e in endpoints_of(store, model) for m in unfinished_merges(store, e.name,
                                                                                   start, end)]
    if unfinished:
        raise RuntimeError(
            f"the ground-truth merge of {', '.join(unfinished)} did not finish (no merge report): "
            "its merged records may be partial; run `modelwatch groundtruth merge` for that window "
            "again")


@task(name="read-merged", cache_policy=NO_CACHE, **STORE_RETRY)
def read_merged_task(files: list[str], features: list[str] | None = None, scored: bool = True,
                     variants: list[str | None] | None = None) -> Any:
    from modelwatch.tasks.merged import read_merged_files

    return read_merged_files(files, variants, features, scored)
