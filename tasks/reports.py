"""Render data-quality reports as self-contained HTML pages: our own verdict first (the execution's
status and violations), then Evidently's data-drift panels.

Captured traffic reaches the page (category values, feature names), so the page is hardened: Evidently
embeds its data as JSON in a <script>, where a value holding "</script>" would end the script and start
the traffic's own; every "<", ">" and "&" in that data block is written as a JSON escape, and the page
carries a Content-Security-Policy that allows only the inline scripts Evidently put there, by hash.

Evidently is imported lazily inside `drift_report_html` because importing it takes several seconds.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from modelwatch.tasks.csp import meta, policy

__all__ = ["drift_report_html", "sample_frame"]

# Evidently's page has exactly one `<body>` directly followed by its React root. Anchoring on both
# avoids matching a "<body>" that happens to sit inside the embedded JSON data or JS bundle.
_BODY_ANCHOR = re.compile(r'<body>\s*(?=<div id="root_)')
_ANY_BODY = re.compile(r"<body[^>]*>")
# Evidently's data block: the first script of the page, `var <id> = {json};` twice, then a newline and
# </script>. JSON never holds a raw newline (json.dumps escapes it), so ";\n</script>" ends the block
# even when the data holds "</script>".
_DATA_START = re.compile(r"<script>(\s*var \w+ = )")
_DATA_END = ";\n</script>"
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
Verdict = tuple[str, Sequence[tuple[str, str, str]]]  # status, (feature, check, description) each


def sample_frame(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """Return at most `max_rows` rows of `frame`, sampled without replacement.

    The same (frame, max_rows, seed) always yields the same rows, and the original row order is
    kept so time-ordered data stays readable.
    """
    if max_rows < 0:
        raise ValueError(f"max_rows must be >= 0, got {max_rows}")
    if len(frame) <= max_rows:
        return frame.copy()
    # Positional sampling works for any index (duplicated, unsortable, MultiIndex).
    positions = np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False)
    return frame.iloc[np.sort(positions)].copy()


def drift_report_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: list[str],
    categorical: list[str],
    max_rows: int = 5000,
    seed: int = 0,
    title: str = "modelwatch data-quality report",
    verdict: Verdict | None = None,
) -> str:
    """Return a self-contained HTML page: the execution's verdict (status and violations, when given),
    then Evidently's DataDriftPreset on the two frames, each sampled without replacement to at most
    max_rows rows (deterministic for a seed). Evidently's own headline ("Dataset Drift is NOT
    detected") uses its own tests; the verdict above it is the one the execution reports."""
    ref_total, cur_total = len(reference), len(current)

    # A column named in both lists is treated as numerical; the order given by the caller is kept.
    num_cols = _shared_columns(numerical, reference, current, exclude=())
    cat_cols = _shared_columns(categorical, reference, current, exclude=num_cols)
    missing = [
        c
        for c in dict.fromkeys([*numerical, *categorical])
        if c not in reference.columns or c not in current.columns
    ]

    # Sample before coercing so the per-row work is bounded by max_rows, not by the input size.
    ref = _coerce(sample_frame(reference[num_cols + cat_cols], max_rows, seed), num_cols, cat_cols)
    cur = _coerce(sample_frame(current[num_cols + cat_cols], max_rows, seed), num_cols, cat_cols)

    # Checked on the samples because that is what Evidently sees: a mostly-null column can sample
    # down to all-null, and Evidently raises on an empty column instead of skipping it.
    all_null = [c for c in ref.columns if ref[c].isna().all() or cur[c].isna().all()]
    num_cols = [c for c in num_cols if c not in all_null]
    cat_cols = [c for c in cat_cols if c not in all_null]
    ref, cur = ref[num_cols + cat_cols], cur[num_cols + cat_cols]

    header = _header_html(
        title,
        ref_rows=(len(ref), ref_total),
        cur_rows=(len(cur), cur_total),
        all_null=all_null,
        missing=missing,
        verdict=verdict,
    )
    if ref.empty or cur.empty:
        return _standalone_page(
            title, header + "<p><strong>No data:</strong> nothing to compare after filtering.</p>"
        )

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    # An explicit definition stops Evidently from guessing types, e.g. reading a low-cardinality
    # integer feature as categorical.
    definition = DataDefinition(numerical_columns=num_cols, categorical_columns=cat_cols)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    # save_html() only accepts a path (a file object is silently ignored); this is the string it
    # writes. Evidently prefixes the doctype with whitespace, which some consumers reject.
    page = snapshot.get_html_str(as_iframe=False).strip()
    # Evidently's page has no <title>; the first <head> is the real one, ahead of any data.
    page = page.replace("<head>", f"<head>\n<title>{html.escape(title)}</title>", 1)
    return _with_policy(_inject_after_body(_escape_data_block(page), header))


def _escape_data_block(page: str) -> str:
    """Evidently's embedded JSON with "<", ">" and "&" as JSON escapes: the same values for the
    script, but nothing the HTML parser reads as a tag. Refuses a page whose data block it cannot
    find, rather than write one that might run traffic as script."""
    start = _DATA_START.search(page)
    end = page.find(_DATA_END, start.end()) if start else -1
    if start is None or end < 0:
        raise ValueError("Evidently's page layout is not the expected one: its data block was not "
                         "found, so the report cannot be made safe to open")
    body = page[start.end(1):end]
    for raw, escaped in _JSON_ESCAPES.items():
        body = body.replace(raw, escaped)
    return page[:start.end(1)] + body + page[end:]


def _with_policy(page: str) -> str:
    """The page with a CSP allowing exactly its inline scripts, as the first element of <head>."""
    scripts = _SCRIPT.findall(page)
    content = policy(scripts, fonts=True, images=True)
    return page.replace("<head>", f"<head>\n{meta(content)}", 1)


def _shared_columns(
    wanted: list[str],
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    exclude: Collection[str],
) -> list[str]:
    return [
        c
        for c in dict.fromkeys(wanted)
        if c in reference.columns and c in current.columns and c not in exclude
    ]


def _coerce(frame: pd.DataFrame, num_cols: list[str], cat_cols: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for c in num_cols:
        out[c] = pd.to_numeric(frame[c], errors="coerce")
    for c in cat_cols:
        col = frame[c]
        # astype(str) alone would turn NaN/None into the literal category "nan"/"None".
        out[c] = col.astype(str).astype(object).where(col.notna(), np.nan)
    return out


def _header_html(
    title: str,
    *,
    ref_rows: tuple[int, int],
    cur_rows: tuple[int, int],
    all_null: list[str],
    missing: list[str],
    verdict: Verdict | None = None,
) -> str:
    parts = [f"<h1>{html.escape(title)}</h1>", *_verdict_html(verdict)]
    parts += [
        (
            f"<p>Reference: {ref_rows[0]} of {ref_rows[1]} rows sampled; "
            f"current: {cur_rows[0]} of {cur_rows[1]} rows sampled.</p>"
        ),
    ]
    if all_null:
        parts.append(
            "<p><strong>Note:</strong> left out of the drift report because they are entirely "
            f"null in the reference or current data: {_code_list(all_null)}.</p>"
        )
    if missing:
        parts.append(
            "<p><strong>Note:</strong> left out of the drift report because they are not present "
            f"in both frames: {_code_list(missing)}.</p>"
        )
    style = "font-family: sans-serif; padding: 0 16px;"
    return f'<div class="modelwatch-header" style="{style}">' + "".join(parts) + "</div>"


def _verdict_html(verdict: Verdict | None) -> list[str]:
    if verdict is None:
        return []
    status, violations = verdict
    parts = [f"<p><strong>Execution status: {html.escape(status)}</strong>, "
             f"{len(violations)} violation{'s' if len(violations) != 1 else ''} of the baseline's "
             "constraints. The panels below are Evidently's own view of the same samples.</p>"]
    if violations:
        rows = "".join(f"<tr><td>{html.escape(str(feature))}</td><td>{html.escape(str(check))}</td>"
                       f"<td>{html.escape(str(description))}</td></tr>"
                       for feature, check, description in violations)
        parts.append('<table border="1" cellpadding="4" style="border-collapse: collapse">'
                     "<tr><th>feature</th><th>check</th><th>description</th></tr>"
                     f"{rows}</table>")
    return parts


def _code_list(columns: list[str]) -> str:
    return ", ".join(f"<code>{html.escape(str(c))}</code>" for c in columns)


def _standalone_page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en">\n<head>\n{meta(policy())}\n<meta charset="UTF-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _inject_after_body(page: str, snippet: str) -> str:
    match = _BODY_ANCHOR.search(page) or _ANY_BODY.search(page)
    if match is None:
        # Layout changed beyond recognition in a newer Evidently; keep the header rather than
        # lose it, even though it then precedes the doctype.
        return snippet + page
    return page[: match.end()] + snippet + "\n" + page[match.end() :]
