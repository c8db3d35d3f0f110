"""Prefect events modelwatch emits (alert transitions, card status changes). Emitting never fails the
caller: a monitor run whose event could not be sent still wrote its documents, and says so."""

from __future__ import annotations

import logging
from typing import Any

from modelwatch.tasks.alerts import Transition

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
