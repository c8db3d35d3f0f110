"""The console's model-card pages: one version with its changes from the previous one, the card
form (create, edit: each save a new immutable version), clone to another model, and the PDF, HTML
and Markdown exports. The changes themselves are modelwatch.flows.actions (role checks, audit)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from modelwatch.console.app import _MODEL, Console, Refused, _html
from modelwatch.console.security import Session
from modelwatch.flows.actions import Actor, NotPermitted
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.html_templates import render
from modelwatch.tasks.store import check_slug

# File suffix -> (export format, media type).
EXPORTS = {"pdf": ("pdf", "application/pdf"), "html": ("html", "text/html; charset=utf-8"),
           "md": ("markdown", "text/markdown; charset=utf-8")}


def _session(request: Request) -> Session:
    return request.state.session


def _card(console: Console, model: str, version: int | None = None) -> Any:
    from modelwatch.tasks.cards import get_card

    check_slug(model, "model name")
    try:
        return get_card(console.store, model, version)
    except UserError as problem:
        raise Refused(404, str(problem)) from None


def card_page(console: Console, request: Request, model: str, version: int | None) -> Response:
    """One card version: the card, what changed from the version before, the versions, and what the
    signed-in person may do with it."""
    from modelwatch.console.pages import card_state
    from modelwatch.tasks.card_render import view_of
    from modelwatch.tasks.cards import card_changes, card_versions
    from modelwatch.tasks.registry import list_models

    session = _session(request)
    versions = card_versions(console.store, model)
    if not versions:
        check_slug(model, "model name")
        return RedirectResponse(f"/models/{model}/card/edit", status_code=303)
    card = versions[-1] if version is None else next(
        (c for c in versions if c.card_version == version), None)
    if card is None:
        raise Refused(404, f"model {model!r} has no card v{version} "
                      f"(versions v1-v{versions[-1].card_version})")
    previous = next((c for c in reversed(versions) if c.card_version < card.card_version), None)
    changes = card_changes(previous.content, card.content) if previous else []
    latest = versions[-1]
    viewer = Actor(session.user, session.role)
    return _html(render(
        "console/card.html", **console.context(session), title=f"modelwatch — card of {model}",
        model=model, card=card, view=view_of(card), previous=previous, changes=changes,
        versions=list(reversed(versions)), is_latest=card is latest, may_edit=viewer.may("cards.edit"),
        review=card_state(console, model, session) if card is latest else None,
        clone_targets=[m.name for m in list_models(console.store) if m.name != model]))


def form_page(console: Console, request: Request, model: str, values: dict[str, str] | None = None,
              note: str = "", model_version: str | None = None, problem: str | None = None,
              status: int = 200) -> Response:
    """The card form: the latest card's content to edit, or an empty card (or the Archived card's
    content) to create; after a refused save, what was typed, with the reason."""
    from modelwatch.tasks.card_form import form_values, sections
    from modelwatch.tasks.cards import latest_card
    from modelwatch.tasks.registry import get_model

    session = _session(request)
    check_slug(model, "model name")
    Actor(session.user, session.role).require("cards.edit")
    record = get_model(console.store, model)
    latest = latest_card(console.store, model)
    creating = latest is None or latest.status == "Archived"
    versions = [v.version for v in record.versions]
    chosen = model_version or (record.latest.version if record.latest else None)
    return _html(render(
        "console/card_form.html", **console.context(session), title=f"modelwatch — edit the card of {model}",
        model=model, latest=latest, creating=creating, sections=sections(),
        values=values if values is not None else form_values(latest.content if latest else None),
        model_versions=versions, chosen_version=chosen, note=note, problem=problem), status)


def save(console: Console, request: Request, session: Session, actor: Actor, form: dict[str, str],
         model: str) -> Response:
    from modelwatch.flows.actions import save_card
    from modelwatch.tasks.card_form import FIELDS, FIXED, content_from_form
    from modelwatch.tasks.cards import latest_card

    latest = latest_card(console.store, model)
    creating = latest is None or latest.status == "Archived"
    model_version = (form.get("model_version") or None) if creating else latest.model_version
    note = form.get("note", "").strip() or None
    typed = {f.name: form.get(f.name, "") for f in FIELDS}
    try:
        content = content_from_form(form, {FIXED: model_version})
        card = save_card(console.store, actor, model, content, model_version, note)
    except NotPermitted:
        raise
    except UserError as problem:
        # The form comes back as typed, with the reason: nothing the person wrote is lost.
        return form_page(console, request, model, typed, note or "", model_version, str(problem), 400)
    from modelwatch.console.pages import done

    unchanged = latest is not None and card.card_version == latest.card_version
    message = (f"card v{card.card_version} already has this content; nothing saved" if unchanged
               else f"card v{card.card_version} saved ({card.status})")
    return done(console, session, model, message, f"/models/{model}/card/v{card.card_version}")


def clone(console: Console, request: Request, session: Session, actor: Actor, form: dict[str, str],
          model: str) -> Response:
    from modelwatch.console.pages import done
    from modelwatch.flows.actions import clone_card

    target = form.get("to", "").strip()
    card = clone_card(console.store, actor, model, target, form.get("note", "").strip() or None)
    return done(console, session, target, f"card of {model} cloned to {target} as card "
                f"v{card.card_version} (Draft)", f"/models/{target}/card/v{card.card_version}")


def export(console: Console, model: str, version: int, kind: str) -> Response:
    from modelwatch.tasks.cards import export_card

    if kind not in EXPORTS:
        raise Refused(404, "card exports are .pdf, .html or .md")
    card = _card(console, model, version)
    data = export_card(card, EXPORTS[kind][0])
    name = f"{model}-card-v{card.card_version}.{kind}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if kind == "html":  # the export's own policy: no script, nothing loaded
        from modelwatch.tasks.card_render import EXPORT_CSP

        headers["Content-Security-Policy"] = EXPORT_CSP
    return Response(data, media_type=EXPORTS[kind][1], headers=headers)


def actions() -> list[tuple[re.Pattern[str], Any]]:
    return [(re.compile(f"/models/{_MODEL}/card"), save),
            (re.compile(f"/models/{_MODEL}/card/clone"), clone)]


def register(app: FastAPI, console: Console) -> None:
    @app.get("/models/{model}/card")
    def latest(request: Request, model: str) -> Response:
        return card_page(console, request, model, None)

    @app.get("/models/{model}/card/edit")
    def edit(request: Request, model: str) -> Response:
        return form_page(console, request, model)

    @app.get("/models/{model}/card/v{version}.{kind}")
    def exported(model: str, version: int, kind: str) -> Response:
        return export(console, model, version, kind)

    @app.get("/models/{model}/card/v{version}")
    def one(request: Request, model: str, version: int) -> Response:
        return card_page(console, request, model, version)
