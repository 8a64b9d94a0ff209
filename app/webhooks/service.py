"""Webhooks as the API offers them: register, list, get, delete, and the delivery log of one hook.

Registering checks what a hook may be (app/webhooks/targets.py: a target that resolves to public addresses;
at most LIFELONG_MAX_WEBHOOKS_PER_MODEL per model) and stores its secret encrypted (app/webhooks/secrets.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.tables import Model
from app.errors import Conflict, Invalid, NotFound
from app.settings import Settings
from app.webhooks.secrets import SecretBox
from app.webhooks.tables import Webhook, WebhookDelivery
from app.webhooks.targets import TargetRefused, check_target


@dataclass(frozen=True)
class HookRules:
    """What registering a hook checks and how it keeps the secret, from the settings."""

    box: SecretBox
    allow_private: bool = False
    max_per_model: int = 20

    @classmethod
    def of(cls, settings: Settings) -> HookRules:
        return cls(box=SecretBox.of(settings), allow_private=settings.webhook_allow_private,
                   max_per_model=settings.max_webhooks_per_model)


def add_webhook(*, session: Session, model: Model, url: str, events: list[str], secret: str,
                rules: HookRules) -> Webhook:
    """A hook of `model`: from this transaction on, each event named in `events` is delivered to `url`.
    422 for a target that does not resolve to public addresses, 409 past the model's number of hooks."""
    try:
        check_target(url, allow_private=rules.allow_private)
    except TargetRefused as error:
        raise Invalid(f"url: {error}") from error
    # The model's row held first (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers), so
    # two registrations racing cannot both take the last place.
    session.execute(select(Model.id).where(Model.id == model.id).with_for_update())
    count = session.scalar(select(func.count()).select_from(Webhook).where(Webhook.model_id == model.id))
    if count >= rules.max_per_model:
        raise Conflict(f"model {model.name!r} has {count} webhooks, the limit (LIFELONG_MAX_WEBHOOKS_PER_MODEL);"
                       " delete one first")
    hook = Webhook(model_id=model.id, url=url, events=list(events), secret_encrypted=rules.box.seal(secret))
    session.add(hook)
    session.flush()
    return hook


def list_webhooks(*, session: Session, model: Model) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.model_id == model.id).order_by(Webhook.id)))


def get_webhook(*, session: Session, model: Model, webhook_id: int) -> Webhook:
    hook = session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.model_id == model.id))
    if hook is None:
        raise NotFound(f"model {model.name!r} has no webhook {webhook_id}")
    return hook


def delete_webhook(*, session: Session, model: Model, webhook_id: int) -> None:
    """Remove the hook and its deliveries, sent or not: nothing more is sent to it (one being sent right
    now may still arrive)."""
    hook = get_webhook(session=session, model=model, webhook_id=webhook_id)
    # Explicit, though the foreign key cascades: a database without enforced foreign keys keeps no orphans.
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    session.delete(hook)


def list_deliveries(*, session: Session, model: Model, webhook_id: int, state: str | None,
                    limit: int) -> list[WebhookDelivery]:
    """The hook's deliveries, newest first."""
    hook = get_webhook(session=session, model=model, webhook_id=webhook_id)
    query = (select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
             .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit))
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    return list(session.scalars(query))
