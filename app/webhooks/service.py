"""Webhooks as the API offers them: register, list, get, delete, and the delivery log of one hook."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.db.tables import Model
from app.errors import NotFound
from app.webhooks.tables import Webhook, WebhookDelivery


def add_webhook(session: Session, model: Model, *, url: str, events: list[str], secret: str) -> Webhook:
    """A hook of `model`: from this transaction on, each event named in `events` is delivered to `url`."""
    hook = Webhook(model_id=model.id, url=url, events=list(events), secret=secret)
    session.add(hook)
    session.flush()
    return hook


def list_webhooks(session: Session, model: Model) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.model_id == model.id).order_by(Webhook.id)))


def get_webhook(session: Session, model: Model, webhook_id: int) -> Webhook:
    hook = session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.model_id == model.id))
    if hook is None:
        raise NotFound(f"model {model.name!r} has no webhook {webhook_id}")
    return hook


def delete_webhook(session: Session, model: Model, webhook_id: int) -> None:
    """Remove the hook and its deliveries, sent or not: nothing more is sent to it (one being sent right
    now may still arrive)."""
    hook = get_webhook(session, model, webhook_id)
    # Explicit, though the foreign key cascades: a database without enforced foreign keys keeps no orphans.
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    session.delete(hook)


def list_deliveries(session: Session, model: Model, webhook_id: int, *, state: str | None,
                    limit: int) -> list[WebhookDelivery]:
    """The hook's deliveries, newest first."""
    hook = get_webhook(session, model, webhook_id)
    query = (select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
             .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit))
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    return list(session.scalars(query))
