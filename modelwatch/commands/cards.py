"""`modelwatch cards`: model cards from the command line.

Cards are plain store reads and writes (tasks/cards.py); only a status move talks to Prefect, to
emit `modelwatch.card.status-changed`, and only after the move is written. Content comes from a
YAML file holding the card's sections (model_overview, intended_uses, ...) and/or from options;
a content error names the YAML line when the field came from the file.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Annotated, Any

import typer

from modelwatch.cli_common import StoreOption, cli_identity, emit_json, open_store, say
from modelwatch.tasks.errors import UserError

ModelOption = Annotated[str, typer.Option("--model", help="Model name (a registered model).")]
YamlOption = Annotated[str | None, typer.Option(
    "--from-yaml", help="YAML file of card sections (model_overview, intended_uses, "
                        "business_details, training_details, evaluation_details, "
                        "additional_information).")]
RiskOption = Annotated[str | None, typer.Option(
    "--risk-rating", help="High, Medium, Low or Unknown (intended_uses.risk_rating).")]
DescriptionOption = Annotated[str | None, typer.Option(
    "--description", help="model_overview.model_description.")]
NoteOption = Annotated[str | None, typer.Option("--note", help="Why, for the status history.")]


def register(app: typer.Typer) -> None:
    """Add the `cards` command group to the main app."""
    cards_app = typer.Typer(no_args_is_help=True,
                            help="Model cards: content, review status (Draft -> PendingReview -> "
                                 "Approved -> Archived) and exports.")
    app.add_typer(cards_app, name="cards")
    cards_app.command("create")(cards_create)
    cards_app.command("update")(cards_update)
    cards_app.command("show")(cards_show)
    cards_app.command("list")(cards_list)
    cards_app.command("export")(cards_export)
    cards_app.command("status")(cards_status)


# ---- input ----

class YamlSource:
    """A YAML file's content plus its node tree, to point content errors at their line."""

    def __init__(self, path: str) -> None:
        import yaml

        from modelwatch.tasks.store import read_uri_bytes

        self.path = path
        try:
            text = read_uri_bytes(path).decode("utf-8")
        except UnicodeDecodeError as problem:
            raise UserError(f"{path}: not UTF-8 text ({problem.reason} at byte "
                            f"{problem.start})") from None
        try:
            document = yaml.safe_load(text)
            self.root = yaml.compose(text)
        except yaml.MarkedYAMLError as problem:
            mark = problem.problem_mark or problem.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            reason = problem.problem or problem.context or "invalid"
            raise UserError(f"{path}: {where}not valid YAML: {reason}") from None
        except yaml.YAMLError as problem:
            raise UserError(f"{path}: not valid YAML: {problem}") from None
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise UserError(f"{path}: expected a mapping of card sections (model_overview, "
                            f"intended_uses, ...) at the top level, got a "
                            f"{type(document).__name__}")
        self.content: dict[str, Any] = document

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """1-based line of the node at a content path, when the whole path is in this file."""
        import yaml

        node = self.root
        line = None
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                match = next(((k, v) for k, v in node.value if k.value == part), None)
                if match is None:
                    return None
                line, node = match[0].start_mark.line + 1, match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return None
        return line if line is not None else (node.start_mark.line + 1 if node else None)


def _risk(value: str | None) -> str | None:
    from modelwatch.tasks.cards import RISK_RATINGS

    if value is None:
        return None
    by_lower = {r.lower(): r for r in RISK_RATINGS}
    if value.strip().lower() not in by_lower:
        raise UserError(f"--risk-rating {value!r}: expected one of {', '.join(RISK_RATINGS)}")
    return by_lower[value.strip().lower()]


def _put(patch: dict[str, Any], path: list[str], value: Any) -> None:
    node = patch
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _parse_set(spec: str) -> tuple[list[str], Any]:
    """'section.field=value' -> (path, value). A value starting with [ or { is JSON; an empty
    value removes the field."""
    key, sep, raw = spec.partition("=")
    path = key.strip().split(".")
    if not sep or not all(p.strip() for p in path):
        raise UserError(f"--set {spec!r}: expected section.field=value "
                        "(e.g. --set intended_uses.risk_rating=High)")
    if raw == "":
        return path, None
    if raw.lstrip()[:1] in ("[", "{"):
        try:
            return path, json.loads(raw)
        except json.JSONDecodeError as problem:
            raise UserError(f"--set {key}: the value looks like JSON but is not valid JSON "
                            f"({problem})") from None
    return path, raw


def _content_from(source: YamlSource | None, risk_rating: str | None,
                  description: str | None, sets: list[str] | None = None) -> dict[str, Any]:
    """The YAML content with the options laid over it (options win)."""
    content: dict[str, Any] = copy.deepcopy(source.content) if source else {}
    if description is not None:
        _put(content, ["model_overview", "model_description"], description)
    if risk_rating is not None:
        _put(content, ["intended_uses", "risk_rating"], _risk(risk_rating))
    for spec in sets or []:
        path, value = _parse_set(spec)
        _put(content, path, value)
    return content


def _located(problem: Exception, source: YamlSource | None) -> UserError:
    """A CardContentError pointed at the YAML line it came from, when it did."""
    path = getattr(problem, "path", None)
    if source is not None and path:
        line = source.line_of(path)
        if line is not None:
            return UserError(f"{source.path}: line {line}: {problem}")
    return UserError(str(problem))


def _status(value: str) -> str:
    from modelwatch.tasks.cards import STATUSES

    by_lower = {s.lower(): s for s in STATUSES}
    key = value.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in by_lower:
        raise UserError(f"--to {value!r}: expected one of {', '.join(STATUSES)}")
    return by_lower[key]


# ---- commands ----

def _actor():
    from modelwatch.flows.actions import Actor

    return Actor(cli_identity(), None, "cli")


def cards_create(
    model: ModelOption,
    from_yaml: YamlOption = None,
    risk_rating: RiskOption = None,
    description: DescriptionOption = None,
    model_version: Annotated[str | None, typer.Option(
        "--model-version", help="Model version the card describes \\[default: the latest].")] = None,
    note: NoteOption = None,
    store: StoreOption = None,
) -> None:
    """Create a Draft card for a model version and print it (JSON). The card, its history and the
    audit log record $MODELWATCH_IDENTITY, else the operating-system user, as its author."""
    from modelwatch.flows.actions import create_card
    from modelwatch.tasks.cards import CardContentError
    from modelwatch.tasks.store import check_slug

    check_slug(model, "model name")
    source = YamlSource(from_yaml) if from_yaml else None
    content = _content_from(source, risk_rating, description)
    try:
        card = create_card(open_store(store, writable=True), _actor(), model, content,
                           model_version=model_version, note=note)
    except CardContentError as problem:
        raise _located(problem, source) from None
    emit_json(card.dump())


def cards_update(
    model: ModelOption,
    from_yaml: YamlOption = None,
    risk_rating: RiskOption = None,
    description: DescriptionOption = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="section.field=value, repeatable; a value starting with [ or { is JSON, "
                      "an empty value removes the field.")] = None,
    note: NoteOption = None,
    store: StoreOption = None,
) -> None:
    """Merge changes into the latest card as a new version (an Approved card returns to Draft)."""
    from modelwatch.flows.actions import update_card
    from modelwatch.tasks.cards import CardContentError
    from modelwatch.tasks.store import check_slug

    check_slug(model, "model name")
    source = YamlSource(from_yaml) if from_yaml else None
    patch = _content_from(source, risk_rating, description, set_)
    if not patch:
        raise UserError("nothing to update: give --from-yaml, --risk-rating, --description or "
                        "--set section.field=value")
    the_store = open_store(store, writable=True)
    from modelwatch.tasks.cards import get_card

    before = get_card(the_store, model)
    try:
        card = update_card(the_store, _actor(), model, patch, note=note)
    except CardContentError as problem:
        raise _located(problem, source) from None
    if card.card_version == before.card_version:
        say(f"card v{card.card_version} of {model!r} already has this content; nothing written")
    elif card.status != before.status:
        say(f"card v{card.card_version}: content changed after approval, status is now "
            f"{card.status}")
    emit_json(card.dump())


def cards_show(
    model: ModelOption,
    version: Annotated[int | None, typer.Option(
        "--version", min=1, help="Card version \\[default: the latest].")] = None,
    store: StoreOption = None,
) -> None:
    """Print a card version (JSON)."""
    from modelwatch.tasks.cards import get_card

    emit_json(get_card(open_store(store), model, version).dump())


def _time(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def cards_list(
    model: Annotated[str | None, typer.Option(
        "--model", help="Every version of this model's card \\[default: the latest card of each "
                        "model].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    store: StoreOption = None,
) -> None:
    """List model cards: the latest of each model, or every version of one model's card."""
    from modelwatch.tasks.cards import card_versions, latest_card, list_card_models, risk_rating

    the_store = open_store(store)
    if model is not None:
        cards = list(reversed(card_versions(the_store, model)))
    else:
        cards = [c for c in (latest_card(the_store, m) for m in list_card_models(the_store)) if c]
    rows = [{"model": c.model, "card_version": c.card_version, "status": c.status,
             "risk_rating": risk_rating(c), "model_version": c.model_version,
             "updated_at": c.updated_at, "updated_by": c.created_by} for c in cards]
    if as_json:
        emit_json(rows)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console.width = 200  # piped or captured: do not fold at rich's 80-column default
    if not rows:
        where = f"model {model!r}" if model else the_store.root
        console.print(escape(f"No model cards for {where}."))
        return
    table = Table(title=f"Model cards of {model}" if model else "Model cards",
                  title_justify="left")
    for name in ("model", "card version", "status", "risk rating", "model version", "updated",
                 "by"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(v)) for v in (
            row["model"], f"v{row['card_version']}", row["status"], row["risk_rating"],
            row["model_version"] or "-", _time(row["updated_at"]), row["updated_by"] or "-")))
    console.print(table)


def cards_export(
    model: ModelOption,
    format_: Annotated[str, typer.Option("--format", help="pdf, html or markdown.")],
    output: Annotated[str | None, typer.Option(
        "--output", help="File or URI to write \\[default: stdout].")] = None,
    version: Annotated[int | None, typer.Option(
        "--version", min=1, help="Card version \\[default: the latest].")] = None,
    font: Annotated[str | None, typer.Option(
        "--font", help="PDF only: a TrueType font file for the text \\[default: "
                       "$MODELWATCH_PDF_FONT, else DejaVu Sans, Liberation Sans or Arial where "
                       "installed, else Helvetica (Latin-1 only)].")] = None,
    store: StoreOption = None,
) -> None:
    """Export a card as a PDF document, a self-contained HTML page or Markdown."""
    from modelwatch.tasks.cards import EXPORT_FORMATS, export_card, get_card

    kind = {"md": "markdown"}.get(format_.strip().lower(), format_.strip().lower())
    if kind not in EXPORT_FORMATS:
        raise UserError(f"--format {format_!r}: expected pdf, html or markdown")
    if font is not None and kind != "pdf":
        raise UserError(f"--font is for --format pdf, not {kind}")
    if kind == "pdf" and output is None and sys.stdout.isatty():
        raise UserError("--format pdf: give --output FILE (a PDF is not written to a terminal)")
    card = get_card(open_store(store), model, version)
    data = export_card(card, kind, font)
    if output is None and kind != "pdf":
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    from modelwatch.tasks.store import filesystem_for

    fs, path = filesystem_for(output)
    try:
        if "file" in fs.protocol:  # object stores have no folders to create
            fs.makedirs(path.rsplit("/", 1)[0] or "/", exist_ok=True)
        with fs.open(path, "wb") as handle:
            handle.write(data)
    except OSError as problem:
        raise UserError(f"--output {output}: cannot write ({problem})") from None
    emit_json({"model": card.model, "card_version": card.card_version, "format": kind,
               "output": output, "bytes": len(data)})


def cards_status(
    model: ModelOption,
    to: Annotated[str, typer.Option(
        "--to", help="Draft, PendingReview, Approved or Archived.")],
    note: NoteOption = None,
    store: StoreOption = None,
) -> None:
    """Move a card to a new review status (a new version) and emit modelwatch.card.status-changed.
    Whoever submitted the version under review, or edited it since, cannot approve it."""
    from modelwatch.flows.actions import move_card

    card = move_card(open_store(store, writable=True), _actor(), model, _status(to), note)
    emit_json(card.dump())
