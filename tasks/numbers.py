"""Numbers for people: what terminal lines and tables print, to four significant digits. Documents
(JSON on stdout, the store's files) keep every digit; only text meant to be read is rounded."""

from __future__ import annotations

import math
import re
from typing import Any

SIGNIFICANT = 4
# A decimal literal in free text (a description written for the documents), not part of a time
# ("00:00:00.123"), a version ("1.2.3"), a path or a word.
_DECIMAL = re.compile(r"(?<![\w.:/])-?\d+\.\d+(?:[eE][-+]?\d+)?(?!\.?\w|[:/])")


def human_number(value: Any) -> str:
    """A number as a person reads it: floats to four significant digits (12345.678 -> "12350",
    0.123456 -> "0.1235", 1.5e-07 -> "1.5e-07"), integers whole, None as "-".

    Parameters
    ----------
    value : Any
        A number (anything else is returned as its text).

    Returns
    -------
    str
    """
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    rounded = float(f"{value:.{SIGNIFICANT}g}")
    if 10 ** SIGNIFICANT <= abs(rounded) < 1e15:
        return f"{rounded:.0f}"  # 12350, not 1.235e+04
    return f"{rounded:.{SIGNIFICANT}g}"


def human_text(text: str) -> str:
    """Free text with each decimal literal of more than four significant digits rounded to four
    ("Metric value 0.81234567 doesn't meet..." -> "Metric value 0.8123 doesn't meet...")."""
    def rounded(match: re.Match[str]) -> str:
        literal = match.group(0)
        mantissa = re.split(r"[eE]", literal)[0].lstrip("-").replace(".", "").lstrip("0")
        return human_number(float(literal)) if len(mantissa) > SIGNIFICANT else literal

    return _DECIMAL.sub(rounded, text)
