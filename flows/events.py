"""Prefect events modelwatch emits (alert transitions, card status changes). Emitting never fails the
caller: a monitor run whose event could not be sent still wrote its documents, and a card move whose
event could not be sent is still written, and says so on stderr."""

from __future__ import annotations

import logging
import sys
from typing import Any

from modelwatch.tasks.alerts import Transition
from modelwatch.tasks.cards import STATUS_EVENT, ModelCard, status_event

logger = logging.getLogger("modelwatch.events")


def model_resource(model: str, **labels: str | None) -> dict[str, str]:
    resource = {"prefect.resource.id": f"modelwatch.model.{model}",
                "prefect.resource.name": model}
    resource.update({key: value for key, value in labels.items() if value is not None})
    return resource


def emit(event: str, resource: dict[str, str], payload: dict[str, Any] | None = None) -> str | None:
    """Emit one Prefect event; return its id, or None when it could not be sent."""
    try:
        from prefect.events import emit_event

        sent = emit_event(event=event, resource=resource, payload=payload or {})
    except Exception as problem:  # noqa: BLE001 - an unreachable API must not undo the work
        logger.warning("could not emit %s for %s: %s", event, resource.get("prefect.resource.id"),
                       problem)
        return None
    return str(sent.id) if sent is not None else None


def emit_transition(transition: Transition) -> str | None:
    return emit(
        transition.event_name,
        model_resource(transition.model, **{
            "modelwatch.monitor-type": transition.monitor_type,
            "modelwatch.model-version": transition.model_version,
        }),
        {"model": transition.model, "monitor_type": transition.monitor_type,
         "model_version": transition.model_version, "state": transition.state,
         "at": transition.at.isoformat(), "reason": transition.reason},
    )


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _events_unavailable() -> str | None:
    """Why an event cannot be sent now, or None.

    emit_event itself never says: with an unreachable PREFECT_API_URL it still returns the Event
    and the send fails later on Prefect's worker thread. Without any PREFECT_API_URL the event goes
    to the local background server (started on first need), never to a temporary one that would
    forget it.
    """
    from prefect.settings import get_current_settings

    from modelwatch.flows.local_server import ensure_api

    settings = get_current_settings()
    if not settings.api.url and settings.api.key:
        return "PREFECT_API_KEY is set but PREFECT_API_URL is not"
    url = ensure_api()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True, httpx_settings={"timeout": 10}) as client:
        problem = client.api_healthcheck()
    return f"the Prefect API at {url} is not reachable ({problem})" if problem else None


def emit_status_changed(card: ModelCard, previous_status: str) -> bool:
    """Send modelwatch.card.status-changed; True once Prefect took it, False (and a warning on
    stderr) when it could not be sent. Never raises: the card version is already written."""
    resource, payload = status_event(card, previous_status)
    what = f"{STATUS_EVENT} for model {card.model!r} (card v{card.card_version})"
    try:
        problem = _events_unavailable()
        if problem:
            _warn(f"{what} not sent: {problem}")
            return False
        from prefect.events import emit_event

        sent = emit_event(event=STATUS_EVENT, resource=resource, payload=payload)
    except Exception as problem:  # noqa: BLE001 - the card is written; an event must not undo that
        _warn(f"{what} not sent: {type(problem).__name__}: {problem}")
        return False
    if sent is None:
        _warn(f"{what} not sent: Prefect has no events client in this configuration")
        return False
    return True
