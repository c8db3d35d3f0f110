"""Text from traffic, cards or users placed in Markdown (Prefect artifacts): every character with a
Markdown or HTML meaning is escaped, so a value such as `[open](javascript:...)` or `<img onerror=...>`
renders as the text it is, never as a link, image or tag."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>:])")


def escape_markdown(text: object) -> str:
    """`text` as literal Markdown: backslash before each Markdown character, HTML's < > & as entities,
    line breaks as spaces (a value must not open a new block)."""
    value = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = value.replace("\r", " ").replace("\n", " ")
    return _SPECIAL.sub(r"\\\1", value)
