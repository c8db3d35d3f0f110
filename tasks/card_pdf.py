"""Model cards as PDF, to be shared outside the console: the same view as the HTML and Markdown
exports (summary, every section, metric groups and the status history as tables), drawn with fpdf2.

Text is drawn as text (never interpreted as markup), so a card's content can only ever be shown.
Unicode needs a TrueType font: ``MODELWATCH_PDF_FONT`` names one, else a common system font is used
(DejaVu Sans, Liberation Sans, Arial). Without one, the PDF's built-in Helvetica covers Latin-1 only.
A character the chosen font cannot show is an error naming it, never a silently missing glyph.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from modelwatch.tasks.card_render import view_of
from modelwatch.tasks.cards import ModelCard
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.html_templates import fmt_time, humanize, plain_text, utc

FONT_ENV = "MODELWATCH_PDF_FONT"
# Regular and bold faces looked for when MODELWATCH_PDF_FONT is not set (Debian/Ubuntu, Fedora, macOS,
# Windows).
SYSTEM_FONTS: tuple[tuple[str, str], ...] = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
     "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
     "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
     "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"),
    ("/Library/Fonts/Arial Unicode.ttf", "/Library/Fonts/Arial Bold.ttf"),
    ("C:/Windows/Fonts/arial.ttf", "C:/Windows/Fonts/arialbd.ttf"),
)
_USER_KEYED = ("custom_details", "metadata")
_MAX_DEPTH = 6
_LINE = 5.0  # mm per text line at 9.5 pt


def find_font(configured: str | None = None) -> tuple[Path, Path | None] | None:
    """The TrueType font (regular, bold or None) the PDF uses, or None for the built-in Helvetica.

    Parameters
    ----------
    configured : str, optional
        A TTF file; default ``$MODELWATCH_PDF_FONT``, else the first system font found.

    Examples
    --------
    >>> find_font("/nonexistent.ttf")
    Traceback (most recent call last):
    ...
    modelwatch.tasks.errors.UserError: PDF font /nonexistent.ttf: no such file (MODELWATCH_PDF_FONT ...
    """
    chosen = configured if configured is not None else os.environ.get(FONT_ENV) or None
    if chosen is not None:
        path = Path(chosen)
        if not path.is_file():
            raise UserError(f"PDF font {chosen}: no such file ({FONT_ENV} or --font must name a "
                            ".ttf file)")
        if path.suffix.lower() not in (".ttf", ".otf"):
            raise UserError(f"PDF font {chosen}: expected a TrueType or OpenType font (.ttf, .otf)")
        bold = path.with_name(f"{path.stem}-Bold{path.suffix}")
        return path, bold if bold.is_file() else None
    for regular, bold in SYSTEM_FONTS:
        if Path(regular).is_file():
            return Path(regular), Path(bold) if Path(bold).is_file() else None
    return None


@cache
def _coverage(path: Path) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(str(path), lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def _shown(text: str) -> str:
    """Control characters other than line breaks become visible escapes instead of vanishing."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return "".join(c if c == "\n" or ord(c) >= 32 and not 0x7F <= ord(c) < 0xA0 else f"\\u{ord(c):04x}"
                   for c in text)


class _Writer:
    """One card's PDF: every string goes through `text`, which checks that the font can show it."""

    def __init__(self, card: ModelCard, font: tuple[Path, Path | None] | None) -> None:
        from fpdf import FPDF

        self.card = card
        self.pdf = FPDF(format="A4", unit="mm")
        self.pdf.set_auto_page_break(True, margin=15)
        self.pdf.set_margins(18, 16, 18)
        self.font = font
        if font is None:
            self.family, self.covered = "helvetica", None
        else:
            regular, bold = font
            self.pdf.add_font("card", "", str(regular))
            self.pdf.add_font("card", "B", str(bold or regular))
            self.family, self.covered = "card", _coverage(regular) | (_coverage(bold) if bold else set())

    def text(self, value: Any) -> str:
        shown = _shown(value if isinstance(value, str) else plain_text(value))
        for char in shown:
            code = ord(char)
            if char == "\n":
                continue
            if self.covered is None and code > 0xFF or self.covered is not None and code not in self.covered:
                font = "the built-in Helvetica (Latin-1 only)" if self.font is None else str(self.font[0])
                raise UserError(f"card v{self.card.card_version} of {self.card.model!r}: "
                                f"{shown[:40]!r} holds U+{code:04X} {char!r}, which {font} cannot show: "
                                f"set {FONT_ENV} to a TrueType font that has it")
        return shown

    def style(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)

    def heading(self, title: Any, level: int) -> None:
        self.style((16, 13, 11, 10)[min(level, 3)], True)
        self.pdf.ln(2 if level > 1 else 3)
        self.pdf.multi_cell(0, _LINE + 2 - min(level, 2), self.text(title), align="L",
                            new_x="LMARGIN", new_y="NEXT")
        self.style(9.5)

    def line(self, label: str | None, value: Any, indent: int = 0) -> None:
        """One `Label: value` paragraph, indented by depth."""
        self.pdf.set_x(self.pdf.l_margin + 5 * indent)
        width = self.pdf.w - self.pdf.r_margin - self.pdf.get_x()
        if label is None:
            self.style(9.5)
            self.pdf.multi_cell(width, _LINE, self.text(value), align="L", new_x="LMARGIN", new_y="NEXT")
            return
        self.style(9.5, True)
        label_text = self.text(label) + ":" + ("" if value is None else " ")
        if value is None:
            self.pdf.multi_cell(width, _LINE, label_text, align="L", new_x="LMARGIN", new_y="NEXT")
            return
        # The label in bold, then the value in regular weight, wrapping as one paragraph.
        self.pdf.write(_LINE, label_text)
        self.style(9.5)
        self.pdf.write(_LINE, self.text(value))
        self.pdf.ln(_LINE)

    def table(self, head: list[str], rows: list[list[Any]], widths: tuple[int, ...] | None = None) -> None:
        self.style(8.5)
        self.pdf.ln(1)
        from fpdf.fonts import FontFace

        with self.pdf.table(col_widths=widths, text_align="LEFT", line_height=4.4,
                            headings_style=FontFace(emphasis="BOLD", fill_color=(236, 239, 243)),
                            borders_layout="HORIZONTAL_LINES") as table:
            header = table.row()
            for name in head:
                header.cell(self.text(name))
            for row in rows:
                cells = table.row()
                for value in row:
                    cells.cell(self.text(value))
        self.pdf.ln(1)
        self.style(9.5)

    # ---- values ----

    def value(self, key: str, value: Any, depth: int, verbatim_keys: bool = False) -> None:
        label = key if verbatim_keys else humanize(key)
        if isinstance(value, dict) and depth < _MAX_DEPTH:
            self.line(label, None, depth)
            for sub, item in value.items():
                self.value(str(sub), item, depth + 1, verbatim_keys=key in _USER_KEYED)
        elif _name_value_items(value) and depth < _MAX_DEPTH:
            self.line(label, None, depth)
            self.table(["Name", "Value", "Notes"],
                       [[item.get("name", ""), _flat(item.get("value")), _flat(item.get("notes"))]
                        for item in value])
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value) \
                and depth < _MAX_DEPTH:
            self.line(label, None, depth)
            for number, item in enumerate(value, 1):
                self.value(f"#{number}", item, depth + 1, verbatim_keys=True)
        else:
            self.line(label, _flat(value), depth)

    def evaluation(self, evaluation: dict[str, Any]) -> None:
        self.heading(evaluation.get("name", "Evaluation"), 3)
        for key, item in evaluation.items():
            if key not in ("name", "metric_groups"):
                self.value(key, item, 0)
        for group in evaluation.get("metric_groups") or []:
            if not isinstance(group, dict):
                self.line(None, _flat(group))
                continue
            metrics = [m for m in group.get("metric_data") or [] if isinstance(m, dict)]
            self.line(str(group.get("name", "Metrics")), None)
            self.table(["Metric", "Type", "Value", "Notes"],
                       [[m.get("name", ""), m.get("type", ""), _metric_text(m), _flat(m.get("notes"))]
                        for m in metrics], (30, 14, 40, 26))

    def write(self) -> bytes:
        view = view_of(self.card)
        pdf = self.pdf
        pdf.set_title(self.text(f"Model card: {view['model']}"))
        pdf.set_author(self.text(view["updated_by"] or "unknown"))
        pdf.set_creator("modelwatch")
        pdf.set_creation_date(utc(self.card.updated_at))
        pdf.add_page()
        self.heading(f"Model card: {view['model']}", 0)
        last = view["last_step"]
        self.table(["Field", "Value"], [
            ["Card version", view["card_version"]], ["Status", view["status"]],
            ["Risk rating", view["risk_rating"]], ["Model version", view["model_version"] or "-"],
            ["Updated", f"{_when(view['updated_at'])} by {view['updated_by'] or 'unknown'}"],
            ["Last review step", f"{last.get('status')} by {last.get('by') or 'unknown'} at "
                                 f"{_when(last.get('at'))}" if last else "-"],
        ], (1, 3))
        for section in view["sections"]:
            if not section["present"]:
                continue
            self.heading(section["title"], 1)
            value = section["value"]
            if section["key"] == "evaluation_details" and isinstance(value, list):
                for evaluation in value:
                    if isinstance(evaluation, dict):
                        self.evaluation(evaluation)
                    else:
                        self.line(None, _flat(evaluation))
            elif isinstance(value, dict):
                for key, item in value.items():
                    self.value(str(key), item, 0, verbatim_keys=not section["known"])
            else:
                self.line(None, _flat(value))
        self.heading("Status history", 1)
        self.table(["Status", "By", "At", "Card version", "Note"],
                   [[h.get("status", ""), h.get("by", ""), _when(h.get("at")), h.get("card_version", ""),
                     h.get("note") or ""] for h in view["history"]], (18, 20, 26, 12, 34))
        return bytes(pdf.output())


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return fmt_time(value)
    if isinstance(value, str):
        try:
            return fmt_time(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return value
    return plain_text(value)


def _name_value_items(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(v, dict) and "name" in v and set(v) <= {"name", "value", "notes"} for v in value)


def _flat(value: Any, nested: bool = False) -> str:
    """A value on one line of text: lists and mappings written out whole (nothing shortened), inner
    lists bracketed."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flat(v, True)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        text = ", ".join(_flat(v, True) for v in value)
        return f"[{text}]" if nested else text
    return plain_text(value)


def _metric_text(metric: dict[str, Any]) -> str:
    kind, value = metric.get("type"), metric.get("value")
    names = metric.get("x_axis_name")
    if kind == "bar_chart" and isinstance(value, list) and isinstance(names, list):
        return ", ".join(f"{n}: {_flat(v)}" for n, v in zip(names, value, strict=False)) \
            + "".join(f", {_flat(v)}" for v in value[len(names):])
    if kind == "matrix" and isinstance(value, list):
        return _flat(value, True)
    axes = [a for a in (metric.get("y_axis_name"), names) if isinstance(a, str) and a]
    if kind == "linear_graph":
        return _flat(value, True) + (f" ({' vs '.join(axes)})" if axes else "")
    return _flat(value)


def card_to_pdf(card: ModelCard, font: str | None = None) -> bytes:
    """The card as a PDF document (A4, text selectable and searchable).

    Parameters
    ----------
    card : ModelCard
        The card version to export.
    font : str, optional
        A TrueType font file for the text; default ``$MODELWATCH_PDF_FONT``, else a system font
        (DejaVu Sans, Liberation Sans, Arial), else the built-in Helvetica (Latin-1 only).

    Returns
    -------
    bytes
        The PDF file. Its metadata carries the title, the card's author and its time, so the same
        card version gives the same text.

    Raises
    ------
    UserError
        When the card holds a character the font cannot show (the message names it).

    Examples
    --------
    >>> from modelwatch.tasks.cards import get_card  # doctest: +SKIP
    >>> pdf = card_to_pdf(get_card(store, "credit-default"))  # doctest: +SKIP
    >>> pdf[:5]  # doctest: +SKIP
    b'%PDF-'
    """
    return _Writer(card, find_font(font)).write()
