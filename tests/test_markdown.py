"""Text from traffic, cards or users in Prefect's Markdown artifacts renders as text: no link, image,
tag or table cell break can be smuggled in (rendered with markdown-it, as a Markdown viewer would)."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from modelwatch.tasks.markdown import escape_markdown

HOSTILE = [
    "[open report](javascript:alert(1))",
    "![x](https://attacker.example/pixel.png)",
    "<img src=x onerror=alert(1)>",
    "<https://attacker.example>",
    "a | b | c",
    "**bold** _em_ `code`\n# heading\n- item",
    "[ref]: javascript:alert(1)\n[ref]",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_itself(text: str) -> None:
    rendered = MarkdownIt("commonmark").enable("table").render(
        f"| value |\n| --- |\n| {escape_markdown(text)} |\n")
    for tag in ("<a ", "<img", "<strong", "<em", "<code", "<h1", "<li", "<script"):
        assert tag not in rendered, rendered
    assert rendered.count("<td>") == 1  # a pipe in the value did not open another cell
    plain = MarkdownIt("commonmark").render(escape_markdown(text))
    assert "javascript:" not in plain or "href" not in plain
