"""The Jinja2 environment every page modelwatch writes is rendered with: templates (and the pages'
own stylesheets and script) in tasks/templates/, autoescaping on for HTML, an undefined name an
error. Filters format times and numbers and judge which URLs may become links."""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent / "templates"

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
# Browsers drop ASCII whitespace and control characters inside a URL before reading its scheme
# ("java\tscript:" is javascript:), so the scheme is judged on the URL without them.
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]")
SAFE_SCHEMES = frozenset({"http", "https", "file"})
_URL_LIKE = re.compile(r"^(https?|file)://\S+$", re.IGNORECASE)


def static_text(name: str) -> str:
    """A stylesheet or script of the pages, as written in tasks/templates/ (hashed into CSPs)."""
    return (TEMPLATES / name).read_text(encoding="utf-8")


def safe_href(url: Any) -> str | None:
    """The URL if it may become an href (http, https, file or relative), else None."""
    if not isinstance(url, str):
        return None
    url = url.strip()
    cleaned = _URL_NOISE.sub("", url)
    if not cleaned or cleaned.startswith("\\") or cleaned.startswith("/\\"):
        return None
    match = _SCHEME.match(cleaned)
    if match and match.group(1).lower() not in SAFE_SCHEMES:
        return None
    return url


def is_url(value: Any) -> bool:
    """A whole http(s)/file URL (card strings like that are shown as links)."""
    return isinstance(value, str) and bool(_URL_LIKE.match(value.strip()))


def utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC (the store writes UTC everywhere)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def fmt_time(moment: datetime | None) -> str:
    return utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def iso(moment: datetime | None) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 10_000 or abs(value) < 0.001):
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def shorten(text: str, limit: int) -> str:
    """Keep both ends of a long label: URIs differ at the end, names at the start."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 3
    tail = limit - 1 - head
    return f"{text[:head]}…{text[-tail:]}"


def humanize(key: Any) -> str:
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def css_token(value: Any) -> str:
    """A class-name fragment from a status word ("CompletedWithViolations" -> "completedwithviolations")."""
    return re.sub(r"[^a-z0-9]", "", str(value).lower())


def plain_text(value: Any) -> str:
    """A value as plain text in exports: true/false, floats to 6 significant digits, times in UTC,
    lists bracketed."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(plain_text(v) for v in value) + "]"
    return str(value)


def markdown_text(value: Any, cell: bool = False) -> str:
    """User text for Markdown: HTML-escaped (renderers pass raw HTML through); in table cells pipes
    escaped and line breaks kept as <br>, elsewhere continuation lines indented."""
    escaped = html.escape(plain_text(value), quote=False)
    if cell:
        return escaped.replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")
    return escaped.replace("\r\n", "\n").replace("\n", "\n  ")


def _escaped(value: Any) -> Any:
    """HTML output escapes as the stdlib does (&#x27; for a quote), everywhere the same."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


@cache
def environment(markup: bool = True) -> Environment:
    """The HTML environment (every value escaped), or with `markup` False the one for Markdown,
    whose templates escape each user value with the `md` filter."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)), autoescape=markup,
        finalize=_escaped if markup else None,
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(fmt_time=fmt_time, iso=iso, fmt_number=fmt_number, shorten=shorten,
                       humanize=humanize, css_token=css_token, safe_href=safe_href,
                       md=markdown_text, plain=plain_text, pyrepr=repr,
                       without=lambda mapping, *keys: {k: v for k, v in mapping.items()
                                                       if k not in keys})
    env.tests.update(url=is_url, scalar=_is_scalar, moment=lambda v: isinstance(v, datetime),
                     list_value=lambda v: isinstance(v, list), plain_number=_is_number,
                     name_value_items=lambda v: isinstance(v, list) and all(
                         isinstance(i, dict) and "name" in i and "value" in i for i in v),
                     scalar_items=lambda v: isinstance(v, list) and all(map(_is_scalar, v)),
                     point=lambda p: isinstance(p, list | tuple) and len(p) == 2
                     and all(map(_is_number, p)))
    return env


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | datetime)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render(template: str, **context: Any) -> str:
    """Render one template (``.html`` escaped for HTML; ``.md`` for Markdown); `Markup` values (our
    own stylesheet and script) are not escaped."""
    markup = not template.endswith(".md")
    return environment(markup).get_template(template).render(**context)


def trusted(text: str) -> Markup:
    """Text that is ours (a stylesheet, a script, markup built by a template): not escaped again."""
    return Markup(text)
