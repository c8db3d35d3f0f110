"""The governed actions people take on a model, from the console or the CLI: each checks that the
actor may take it, makes the change (through the Prefect API for schedules, so the Prefect UI and the
CLI see the same thing), and appends one audit entry with the state before and after. A refused
action changes nothing and writes no entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelwatch.tasks.audit import AuditEntry, append_audit
from modelwatch.tasks.errors import UserError
from modelwatch.tasks.store import Store


class NotPermitted(UserError):
    """The actor's role does not allow the action (the console answers 403)."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a console account (with its role) or the CLI's user (role None: the CLI has the
    store's own access, so only rules on the data itself, such as separation of duties, apply)."""

    name: str
    role: str | None = None
    via: str = "console"

    def may(self, permission: str) -> bool:
        from modelwatch.tasks.accounts import PERMISSIONS

        return self.role is None or permission in PERMISSIONS.get(self.role, ())

    def require(self, permission: str) -> None:
        from modelwatch.tasks.accounts import PERMISSIONS

        if self.role is not None and permission not in PERMISSIONS.get(self.role, ()):
            raise NotPermitted(f"{self.name} ({self.role}) may not {_WHAT.get(permission, permission)}")


_WHAT = {
    "alerts.edit": "edit alert criteria", "schedules.edit": "change monitoring schedules",
    "cards.edit": "create or edit model cards", "cards.submit": "submit cards for review",
    "cards.review": "approve or reject model cards", "users.manage": "manage users",
}
# Which permission each card move needs; sending a card under review back to Draft is a reviewer's call.
CARD_MOVES = {"PendingReview": "cards.submit", "Approved": "cards.review", "Draft": "cards.review",
              "Archived": "cards.edit"}


def _audit(store: Store, actor: Actor, action: str, model: str | None, target: str | None,
           before: Any, after: Any, note: str | None = None) -> None:
    append_audit(store, AuditEntry(who=actor.name, role=actor.role, via=actor.via, action=action,
                                   model=model, target=target, before=before, after=after, note=note))


def set_alert_criteria(store: Store, actor: Actor, model: str, monitor_type: str,
                       datapoints_to_alert: int, evaluation_period: int) -> Any:
    """Set one monitor's alert criteria (M of the last N executions); returns the alert document."""
    from modelwatch.flows.monitor_types import get_monitor
    from modelwatch.tasks.alerts import AlertCriteria, read_alert, set_criteria
    from modelwatch.tasks.registry import get_model

    actor.require("alerts.edit")
    get_monitor(monitor_type)
    get_model(store, model)
    criteria = AlertCriteria(datapoints_to_alert=datapoints_to_alert,
                             evaluation_period=evaluation_period).validate_values()
    before = read_alert(store, model, monitor_type).criteria.dump()
    alert = set_criteria(store, model, monitor_type, criteria)
    if before != alert.criteria.dump():
        _audit(store, actor, "alerts.set", model, monitor_type, before, alert.criteria.dump())
    return alert


def _schedule(model: str, monitor_type: str) -> Any:
    from modelwatch.flows.prefect_api import monitor_schedules

    info = monitor_schedules(model).get((model, monitor_type))
    if info is None:
        raise UserError(f"model {model!r} has no {monitor_type} schedule "
                        "(create one with `modelwatch monitor schedule create`)")
    return info


def _schedule_state(info: Any) -> dict[str, Any]:
    return {"active": info.active, "cron": info.cron}


def set_schedule_active(store: Store, actor: Actor, model: str, monitor_type: str,
                        active: bool) -> dict[str, Any]:
    """Pause (active=False) or resume a monitoring schedule; returns its state after."""
    from modelwatch.flows.prefect_api import set_schedules_active

    actor.require("schedules.edit")
    info = _schedule(model, monitor_type)
    before = _schedule_state(info)
    set_schedules_active(info, active)
    after = _schedule_state(_schedule(model, monitor_type))
    if before != after:
        _audit(store, actor, "schedule.resume" if active else "schedule.pause", model, monitor_type,
               before, after)
    return after


def set_schedule_cron(store: Store, actor: Actor, model: str, monitor_type: str,
                      cron: str) -> dict[str, Any]:
    """Give a monitoring schedule a new cron (UTC); returns its state after."""
    from modelwatch.deployments.schedules import check_cron
    from modelwatch.flows.prefect_api import set_schedule_cron as patch_cron

    actor.require("schedules.edit")
    check_cron(cron)
    info = _schedule(model, monitor_type)
    before = _schedule_state(info)
    if info.cron != cron:
        patch_cron(info, cron)
    after = _schedule_state(_schedule(model, monitor_type))
    if before != after:
        _audit(store, actor, "schedule.cron", model, monitor_type, before, after)
    return after


def move_card(store: Store, actor: Actor, model: str, status: str, note: str | None = None) -> Any:
    """Move a model's card to a review status (submit, approve, send back to Draft, archive); the
    person who submitted or edited the version under review cannot approve it."""
    from modelwatch.flows.cards import set_status
    from modelwatch.tasks.cards import get_card

    latest = get_card(store, model)
    actor.require(CARD_MOVES.get(status, "cards.edit"))
    card = set_status(store, model, status, actor.name, note)
    _audit(store, actor, "card.status", model, f"card v{card.card_version}",
           {"status": latest.status, "card_version": latest.card_version},
           {"status": card.status, "card_version": card.card_version}, note)
    return card


def _card_state(card: Any) -> dict[str, Any] | None:
    return None if card is None else {"card_version": card.card_version, "status": card.status}


def create_card(store: Store, actor: Actor, model: str, content: dict[str, Any] | None,
                model_version: str | None = None, note: str | None = None) -> Any:
    """Write a new Draft card (see modelwatch.tasks.cards.create_card)."""
    from modelwatch.tasks.cards import create_card as create
    from modelwatch.tasks.cards import latest_card

    actor.require("cards.edit")
    before = latest_card(store, model)
    card = create(store, model, content, actor.name, model_version, note=note)
    _audit(store, actor, "card.create", model, f"card v{card.card_version}", _card_state(before),
           {**_card_state(card), "model_version": card.model_version}, note)
    return card


def update_card(store: Store, actor: Actor, model: str, patch: dict[str, Any],
                note: str | None = None) -> Any:
    """Merge a patch into the latest card as its next version (see
    modelwatch.flows.cards.update_card); nothing is written or audited when nothing changes."""
    from modelwatch.flows.cards import update_card as update
    from modelwatch.tasks.cards import card_changes, get_card

    actor.require("cards.edit")
    before = get_card(store, model)
    card = update(store, model, patch, actor.name, note=note)
    if card.card_version != before.card_version:
        _audit(store, actor, "card.update", model, f"card v{card.card_version}", _card_state(before),
               {**_card_state(card), "changed": [c.path for c in card_changes(before.content, card.content)]},
               note)
    return card


def save_card(store: Store, actor: Actor, model: str, content: dict[str, Any],
              model_version: str | None = None, note: str | None = None) -> Any:
    """A card's whole content as edited in a form: the next version of the latest card, or a new
    Draft card when the model has none or its card is Archived (then for `model_version`)."""
    from modelwatch.tasks.cards import latest_card, patch_between

    latest = latest_card(store, model)
    if latest is None or latest.status == "Archived":
        return create_card(store, actor, model, content, model_version, note)
    return update_card(store, actor, model, patch_between(latest.content, content), note)


def clone_card(store: Store, actor: Actor, model: str, to_model: str, note: str | None = None) -> Any:
    """A new Draft card for `to_model` (its latest version) holding a copy of `model`'s latest card:
    what names the source model (model name, id, version) is left for the target to fill."""
    import copy

    from modelwatch.tasks.cards import get_card
    from modelwatch.tasks.store import check_slug

    check_slug(to_model, "target model name")
    if to_model == model:
        raise UserError(f"clone: the target must be another model than {model!r}")
    source = get_card(store, model)
    content = copy.deepcopy(source.content)
    overview = content.get("model_overview") or {}
    for field in ("model_name", "model_id", "model_version"):
        overview.pop(field, None)
    if overview:
        content["model_overview"] = overview
    else:
        content.pop("model_overview", None)
    return create_card(store, actor, to_model, content, None,
                       note or f"cloned from {model} card v{source.card_version}")


# ---- console accounts ----

def _account_state(account: Any) -> dict[str, Any]:
    return {"role": account.role, "disabled": account.disabled,
            "password": account.password_hash is not None}


def _keep_an_admin(store: Store, name: str, *, role: str | None = None,
                   disabled: bool | None = None, removed: bool = False) -> None:
    """Refuse a change that would leave the store without an enabled admin (nobody could manage the
    accounts from the console any more)."""
    from modelwatch.tasks.accounts import list_accounts

    def is_admin(account: Any) -> bool:
        return account.role == "admin" and not account.disabled

    accounts = list_accounts(store)
    if not any(is_admin(a) for a in accounts):
        return
    changes = {k: v for k, v in (("role", role), ("disabled", disabled)) if v is not None}
    after = [a.model_copy(update=changes) if a.name == name else a
             for a in accounts if not (removed and a.name == name)]
    if not any(is_admin(a) for a in after):
        raise UserError(f"{name} is the last enabled admin: make another admin first")


def add_user(store: Store, actor: Actor, name: str, role: str, password: str | None) -> Any:
    """Create a console account (see modelwatch.tasks.accounts.add_account)."""
    from modelwatch.tasks.accounts import add_account

    actor.require("users.manage")
    account = add_account(store, name, role, password, by=actor.name)
    _audit(store, actor, "users.add", None, name, None, _account_state(account))
    return account


def change_user(store: Store, actor: Actor, name: str, *, role: str | None = None,
                password: str | None = None, disabled: bool | None = None) -> Any:
    """Change an account's role, password or disabled flag (audited; never the hash itself)."""
    from modelwatch.tasks.accounts import change_account, check_role, get_account

    actor.require("users.manage")
    if role is not None:
        check_role(role)
    before = get_account(store, name)
    _keep_an_admin(store, name, role=role, disabled=disabled)
    after = change_account(store, name, role=role, password=password, disabled=disabled)
    action = ("users.set-password" if password is not None else "users.set-role" if role is not None
              else "users.disable" if disabled else "users.enable")
    _audit(store, actor, action, None, name, _account_state(before), _account_state(after))
    return after


def remove_user(store: Store, actor: Actor, name: str) -> Any:
    from modelwatch.tasks.accounts import get_account, remove_account

    actor.require("users.manage")
    get_account(store, name)
    _keep_an_admin(store, name, removed=True)
    account = remove_account(store, name)
    _audit(store, actor, "users.remove", None, name, _account_state(account), None)
    return account
