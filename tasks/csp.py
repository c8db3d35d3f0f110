"""Content-Security-Policy for the HTML pages modelwatch writes: each page allows exactly the inline
scripts it was given (by their SHA-256), so a script that text from traffic or users smuggled into a
page does not run."""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable


def script_hash(script: str) -> str:
    """The CSP source expression ('sha256-<base64>') that allows exactly this inline script."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def policy(scripts: Iterable[str] = (), *, fonts: bool = False, images: bool = False) -> str:
    """A strict policy: nothing fetched, only the given inline scripts, inline styles; data: fonts or
    images where a page embeds them."""
    hashes = sorted({script_hash(s) for s in scripts})
    return (f"default-src 'none'; script-src {' '.join(hashes) or chr(39) + 'none' + chr(39)}; "
            f"style-src 'unsafe-inline'; img-src {'data:' if images else chr(39) + 'none' + chr(39)}; "
            f"font-src {'data:' if fonts else chr(39) + 'none' + chr(39)}; base-uri 'none'; "
            "form-action 'none'")


def meta(content: str) -> str:
    """The <meta http-equiv> element carrying a policy (first thing in <head>)."""
    return f'<meta http-equiv="Content-Security-Policy" content="{html.escape(content)}">'
