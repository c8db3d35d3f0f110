"""Tests for modelwatch.tasks.reports: Evidently drift-report rendering and frame sampling."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest

from modelwatch.tasks.reports import drift_report_html, sample_frame

NUMERICAL = ["num_alpha", "num_beta", "num_gamma"]
CATEGORICAL = ["cat_colour", "cat_region"]
TITLE = "Weekly <b>drift</b> & quality"


def _frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "num_alpha": rng.normal(shift, 1.0, n),
            "num_beta": rng.exponential(1.0 + shift, n),
            "num_gamma": rng.integers(0, 50, n),
            "cat_colour": rng.choice(["red", "green", "blue"], n),
            "cat_region": rng.choice(["eu", "us", "apac", None], n),
        }
    )


@pytest.fixture(scope="module")
def big_report() -> str:
    # One Evidently run shared by several assertions keeps the module fast.
    return drift_report_html(
        _frame(20_000, seed=1),
        _frame(20_000, seed=2, shift=0.3),
        numerical=NUMERICAL,
        categorical=CATEGORICAL,
        max_rows=2000,
        title=TITLE,
    )


def _header(page: str) -> str:
    start = page.index('<div class="modelwatch-header"')
    return page[start : page.index("</div>", start)]


def test_report_is_html_document(big_report: str) -> None:
    assert isinstance(big_report, str)
    assert big_report.startswith(("<!DOCTYPE html", "<html"))
    assert big_report.rstrip().endswith("</html>")


def test_header_sits_at_top_of_body(big_report: str) -> None:
    body = big_report.index("<body>")
    header = big_report.index('<div class="modelwatch-header"')
    evidently_root = big_report.index('<div id="root_')
    assert body < header < evidently_root


def test_title_is_escaped(big_report: str) -> None:
    assert f"<h1>{html.escape(TITLE)}</h1>" in big_report
    assert "<b>drift</b>" not in big_report


def test_sampled_counts_are_reported(big_report: str) -> None:
    header = _header(big_report)
    assert "2000" in header
    assert "20000" in header
    assert header.count("2000 of 20000") == 2


def test_all_columns_reach_evidently(big_report: str) -> None:
    for column in NUMERICAL + CATEGORICAL:
        assert column in big_report
    assert "Note:" not in _header(big_report)


def test_all_null_column_is_noted_not_fatal() -> None:
    reference = _frame(400, seed=3).assign(num_empty=1.0, cat_empty="x")
    current = _frame(400, seed=4).assign(num_empty=np.nan, cat_empty=None)

    page = drift_report_html(
        reference,
        current,
        numerical=[*NUMERICAL, "num_empty"],
        categorical=[*CATEGORICAL, "cat_empty"],
    )

    header = _header(page)
    assert "entirely null" in header
    assert "<code>num_empty</code>" in header
    assert "<code>cat_empty</code>" in header
    # The remaining columns still get a real Evidently report.
    assert '<div id="root_' in page
    assert "num_alpha" in page


def test_columns_missing_from_one_frame_are_skipped() -> None:
    reference = _frame(300, seed=5).assign(only_in_reference=1.0)
    current = _frame(300, seed=6)

    page = drift_report_html(
        reference,
        current,
        numerical=[*NUMERICAL, "only_in_reference"],
        categorical=CATEGORICAL,
    )

    assert "<code>only_in_reference</code>" in _header(page)
    assert '<div id="root_' in page


def test_empty_current_gives_no_data_page() -> None:
    reference = _frame(100, seed=7)
    current = reference.iloc[0:0]

    page = drift_report_html(
        reference, current, numerical=NUMERICAL, categorical=CATEGORICAL, title=TITLE
    )

    assert page.startswith("<!DOCTYPE html")
    assert "No data" in page
    assert f"<h1>{html.escape(TITLE)}</h1>" in page
    assert "100 of 100" in page
    assert "0 of 0" in page
    assert '<div id="root_' not in page


def test_only_null_columns_gives_no_data_page() -> None:
    frame = pd.DataFrame({"num_alpha": [np.nan] * 10, "cat_colour": [None] * 10})

    page = drift_report_html(frame, frame, numerical=["num_alpha"], categorical=["cat_colour"])

    assert "No data" in page
    assert "<code>num_alpha</code>" in page


def test_sample_frame_is_deterministic_and_bounded() -> None:
    frame = _frame(5000, seed=8)

    first = sample_frame(frame, 700, seed=11)
    again = sample_frame(frame, 700, seed=11)
    other = sample_frame(frame, 700, seed=12)

    assert len(first) == 700
    pd.testing.assert_frame_equal(first, again)
    assert not first.index.equals(other.index)
    assert first.index.is_unique
    assert first.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(first, frame.loc[first.index])


def test_sample_frame_small_inputs() -> None:
    frame = _frame(50, seed=9)

    pd.testing.assert_frame_equal(sample_frame(frame, 50, seed=0), frame)
    pd.testing.assert_frame_equal(sample_frame(frame, 1000, seed=0), frame)
    assert sample_frame(frame, 0, seed=0).empty
    with pytest.raises(ValueError):
        sample_frame(frame, -1, seed=0)


# ---- traffic strings in the page ----

HOSTILE = "</script><script>document.title='pwned';document.body.dataset.pwned='1'</script>"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory) -> str:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"amount": rng.normal(size=300), "channel": rng.choice(["web", "app"], 300)})
    current = reference.copy()
    current.loc[:40, "channel"] = HOSTILE  # a category value anyone who can call the endpoint sends
    current = current.rename(columns={"amount": "amount<script>x</script>"})
    reference = reference.rename(columns={"amount": "amount<script>x</script>"})
    return drift_report_html(reference, current, numerical=["amount<script>x</script>"],
                             categorical=["channel"], title="hostile",
                             verdict=("CompletedWithViolations", [("channel", "categorical_values_check",
                                                                   HOSTILE)]))


def test_traffic_never_reaches_a_script_context_unescaped(hostile_report: str) -> None:
    import re

    assert "</script><script>document.title" not in hostile_report
    assert "<script>x</script>" not in hostile_report
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', hostile_report)
    assert policy and "script-src &#x27;sha256-" in policy.group(1)
    assert "unsafe-inline" not in policy.group(1).split("script-src")[1].split(";")[0]
    # Our verdict opens the page, above Evidently's own headline.
    assert hostile_report.index("Execution status: CompletedWithViolations") < \
        hostile_report.index('<div id="root_')


def test_the_hostile_report_renders_and_runs_no_injected_script(browser, hostile_report: str,
                                                                  tmp_path) -> None:
    from tests.chromium import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("headless Chromium not found: install it with `apt-get install -y chromium`")
    page = tmp_path / "report.html"
    page.write_text(hostile_report, encoding="utf-8")
    dom = browser(page.as_uri(), "--dump-dom", "--virtual-time-budget=8000")
    assert "<title>hostile</title>" in dom and "data-pwned" not in dom
    root = dom[dom.index('id="root_'):]
    assert "MuiBox-root" in root[:2000]  # Evidently's own scripts ran under the policy
