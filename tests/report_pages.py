"""Reading an execution's report.html back in tests: its verdict, its check rows and its tables, so a
test can hold the page to the execution it reports on."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any


@dataclass
class ReportPage:
    statuses: list[str] = field(default_factory=list)  # every data-status, in page order
    checks: list[dict[str, str]] = field(default_factory=list)  # the check table's rows
    tables: list[list[list[str]]] = field(default_factory=list)  # every other table's body rows
    charts: list[str] = field(default_factory=list)  # data-chart titles
    text: str = ""


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = ReportPage()
        self._table: str | None = None
        self._row: list[str] | None = None
        self._verdict: str | None = None
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if "data-status" in found:
            self.page.statuses.append(found["data-status"] or "")
        if "data-chart" in found:
            self.page.charts.append(found["data-chart"] or "")
        if tag == "table":
            self._table = "checks" if found.get("id") == "checks" else "data"
            if self._table == "data":
                self.page.tables.append([])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row, self._verdict = [], found.get("data-verdict")
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "span" and self._cell is not None:
            self._cell.append(" | ")  # a check's description follows its verdict

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._table == "checks":
                subject, check, value, threshold, verdict = self._row
                self.page.checks.append({"subject": subject, "check": check, "value": value,
                                         "threshold": threshold, "verdict": self._verdict or "",
                                         "text": verdict})
            elif self.page.tables:
                self.page.tables[-1].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        self.page.text += data
        if self._cell is not None:
            self._cell.append(data)


def read_report(execution: dict[str, Any]) -> ReportPage:
    """The report.html of an execution document, parsed; asserts the page agrees with the execution:
    its first status is the execution's, one Violation row per violation, no script, a CSP."""
    html = Path(execution["outputs"]["report.html"]).read_text()
    assert "<script" not in html and "Content-Security-Policy" in html
    parser = _Parser()
    parser.feed(html)
    page = parser.page
    assert page.statuses and page.statuses[0] == execution["status"], (page.statuses, execution)
    failed = [c for c in page.checks if c["verdict"] == "Violation"]
    assert len(failed) == execution["violation_count"], (failed, execution["violation_count"])
    return page
