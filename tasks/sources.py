"""What a monitoring execution reads, and the look before it starts that it is there.

A type reads capture (``<root>/<variant>/YYYY/MM/DD/HH/*.jsonl``) or merged data
(``<root>/YYYY/MM/DD/HH/*.jsonl``, capture joined with ground truth) from roots the caller gives, else
from the model's registered endpoints. `check_sources` is the on-demand check (the API and the CLI):
a root that does not exist, or a window none of whose hour folders holds a file, is a UserError that
names the folders and hours looked in. Scheduled runs do not call it: an hour without traffic is a
NoData execution there, recorded as such.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import (  # _transport_error: the store's test of a network failure
    Store,
    StoreUnavailable,
    _transport_error,
    filesystem_for,
)

Reads = Literal["capture", "merged"]


def capture_roots(store: Store, model: str, capture: str | list[str] | None) -> list[str]:
    """The capture roots to read: those given, else the capture of every endpoint of the model."""
    from modelwatch.tasks.registry import endpoints_of

    if capture:
        return [capture] if isinstance(capture, str) else list(capture)
    roots = [e.capture_uri.rstrip("/") for e in endpoints_of(store, model)]
    if not roots:
        raise UserError(f"model {model!r} has no registered endpoint to read capture from; pass "
                        "--capture or register one (`modelwatch endpoints register`)")
    return roots


def merged_roots(store: Store, model: str, merged: str | list[str] | None) -> list[str]:
    """The merged-data roots to read: those given, else merged/<endpoint> of the model's endpoints."""
    from modelwatch.tasks.groundtruth_layout import merged_prefix
    from modelwatch.tasks.registry import endpoints_of

    if merged:
        return [merged] if isinstance(merged, str) else list(merged)
    roots = [store.uri(merged_prefix(e.name, e.hosted_model)) for e in endpoints_of(store, model)]
    if not roots:
        raise UserError(f"model {model!r} has no endpoint with merged data; pass --merged")
    return roots


def merged_files(roots: list[str], start: datetime, end: datetime) -> list[str]:
    """Merged JSONL files of the window's hours (merged data is keyed by the capture hour); the
    day folders that exist are listed, not every hour of the window. A root whose sub-folders are
    variants (SageMaker's merge output, merge/<endpoint>/<variant>/YYYY/...) is read per variant."""
    from modelwatch.tasks.capture import files_in_hours, variant_roots

    files: list[str] = []
    for root in roots:
        fs, base = filesystem_for(root)
        protocol = "s3://" if root.startswith("s3://") else ""
        try:
            folders = variant_roots(fs, base.rstrip("/"), root)
        except UserError:
            continue
        for folder in folders:
            files += [protocol + path for path, _ in files_in_hours(fs, folder, start, end)
                      if path.endswith(".jsonl")]
    return sorted(files)


def file_variants(roots: list[str], files: list[str]) -> list[str | None]:
    """The production variant of each capture or merged file under one of `roots`: the folder
    above its YYYY/MM/DD/HH/ (capture; SageMaker's merge output), else the variant a merged file's
    name carries (part-00000.<variant>.jsonl); None when neither says (a dataset file, or capture
    read from a variant's own folder)."""
    from modelwatch.tasks.groundtruth_layout import part_variant

    bases = sorted((filesystem_for(root)[1].rstrip("/") + "/" for root in roots), key=len,
                   reverse=True)
    found: list[str | None] = []
    for uri in files:
        path = uri[len("s3://"):] if uri.startswith("s3://") else uri
        base = next((b for b in bases if path.startswith(b)), None)
        parts = path[len(base):].split("/") if base else [path.rsplit("/", 1)[-1]]
        found.append(parts[-6] if len(parts) >= 6 else part_variant(parts[-1]))
    return found


def check_sources(store: Store, model: str, reads: Reads, start: datetime, end: datetime,
                  sources: list[str] | None, allow_empty: bool = False) -> list[str]:
    """The roots an on-demand execution over [start, end) reads, after checking they are there.

    Parameters
    ----------
    store : Store
        The store (the model's endpoints are read from its registry when `sources` is None).
    model : str
        The model's name.
    reads : {"capture", "merged"}
        What the monitor type reads.
    start, end : datetime
        The window, UTC.
    sources : list of str, optional
        The roots given (``--capture`` / ``--merged``); None means the model's endpoints'.
    allow_empty : bool, default False
        Let a window that holds no file through (the execution then records NoData).

    Returns
    -------
    list of str
        The roots to read.

    Raises
    ------
    UserError
        No endpoint to read from; a given root that does not exist or is a file; an endpoint's
        capture root that does not exist; unless `allow_empty`, a window none of whose hour folders
        holds a file (the message names the folders and the hours looked in, and where the root's
        day folders begin and end).
    """
    roots = capture_roots(store, model, sources) if reads == "capture" else \
        merged_roots(store, model, sources)
    try:
        return _checked(roots, model, reads, start, end, bool(sources), allow_empty)
    except (UserError, StoreUnavailable):
        raise
    except PermissionError as problem:
        raise UserError(f"{', '.join(roots)}: access denied ({problem})") from None
    except Exception as problem:
        if not _transport_error(problem):
            raise
        raise StoreUnavailable(f"{', '.join(roots)} could not be listed: {problem}") from problem


def _checked(roots: list[str], model: str, reads: Reads, start: datetime, end: datetime,
             given: bool, allow_empty: bool) -> list[str]:
    flag = f"--{reads}"
    folders: list[str] = []
    for root in roots:
        fs, base = filesystem_for(root)
        base = base.rstrip("/")
        said = f"{flag} {root}" if given else f"{root} (the {reads} root of an endpoint of {model!r})"
        if fs.isfile(base):
            raise UserError(f"{said} is a file; expected a folder of YYYY/MM/DD/HH hour folders")
        if not fs.isdir(base):
            if reads == "merged" and not given:
                if allow_empty:
                    continue
                raise UserError(f"{said} does not exist: no ground truth was merged for it yet "
                                "(`modelwatch groundtruth merge`)")
            raise UserError(f"{said} does not exist")
        folders += _hour_parents(fs, base, root, reads)
    if allow_empty or _any_file(roots, reads, start, end):
        return roots
    raise UserError(_empty_window_message(folders, reads, start, end, flag))


def _hour_parents(fs: Any, base: str, root: str, reads: Reads) -> list[str]:
    """The folders whose YYYY/MM/DD/HH/ sub-folders are read (capture: one per variant; an empty
    capture root, itself)."""
    from modelwatch.tasks.capture import variant_roots

    protocol = "s3://" if root.startswith("s3://") else ""
    found = (variant_roots(fs, base, root) if reads == "capture" else []) or [base]
    return [protocol + f for f in found]


def _any_file(roots: list[str], reads: Reads, start: datetime, end: datetime) -> bool:
    from modelwatch.tasks.capture import list_capture_files

    if reads == "merged":
        return bool(merged_files(roots, start, end))
    return any(list_capture_files(root, start, end) for root in roots)


def _empty_window_message(folders: list[str], reads: Reads, start: datetime, end: datetime,
                          flag: str) -> str:
    from modelwatch.tasks.capture import day_span

    first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
    spans = []
    for folder in folders:
        fs, base = filesystem_for(folder)
        span = day_span(fs, base.rstrip("/"))
        spans.append(f"{folder} ({f'days {span[0]} to {span[1]}' if span else 'no day folders'})")
    where = ", ".join(spans) or "no folder"
    return (f"no {reads} files in the window: looked in {where} for hour folders "
            f"{first:%Y/%m/%d/%H} to {last:%Y/%m/%d/%H}; check --start/--end and {flag}, or pass "
            "--allow-empty to record a NoData execution")
