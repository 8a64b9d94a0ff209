"""HTTP routes of webhooks: register (write), list and get (read, never the secret), delete (write),
and a hook's delivery log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from app.auth.deps import ReadScope, WriteScope
from app.db.lookups import get_model
from app.deps import SessionDep, SettingsDep
from app.webhooks import service
from app.webhooks.schemas import DeliveryOut, DeliveryState, WebhookIn, WebhookOut

router = APIRouter(prefix="/v1/models/{name}/webhooks", tags=["webhooks"], dependencies=[ReadScope])

# A database integer: a larger id names no hook (422), rather than overflowing the query.
WebhookId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookOut, dependencies=[WriteScope])
def add_webhook(name: str, body: WebhookIn, session: SessionDep, settings: SettingsDep,
                response: Response) -> WebhookOut:
    """Send the model's `events` to `url`, signed with `secret` (X-Lifelong-Signature: sha256=<hex HMAC> of the
    body; X-Lifelong-Timestamp-Signature: t=<unix time>,v1=<hex HMAC of "t.body">). 422 for a URL whose host
    resolves to a loopback, private, link-local or metadata address (unless LIFELONG_WEBHOOK_ALLOW_PRIVATE);
    409 past LIFELONG_MAX_WEBHOOKS_PER_MODEL hooks."""
    model = get_model(session, name)
    hook = service.add_webhook(session=session, model=model, url=str(body.url), events=list(body.events),
                               secret=body.secret, rules=service.HookRules.of(settings))
    session.commit()
    response.headers["Location"] = f"/v1/models/{model.name}/webhooks/{hook.id}"
    return WebhookOut.of(hook, model.name)


@router.get("", response_model=list[WebhookOut])
def list_webhooks(name: str, session: SessionDep) -> list[WebhookOut]:
    model = get_model(session, name)
    return [WebhookOut.of(hook, model.name) for hook in service.list_webhooks(session=session, model=model)]


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(name: str, webhook_id: WebhookId, session: SessionDep) -> WebhookOut:
    model = get_model(session, name)
    return WebhookOut.of(service.get_webhook(session=session, model=model, webhook_id=webhook_id), model.name)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[WriteScope])
def delete_webhook(name: str, webhook_id: WebhookId, session: SessionDep) -> Response:
    """Remove the hook with its delivery log; nothing more is sent to it."""
    service.delete_webhook(session=session, model=get_model(session, name), webhook_id=webhook_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryOut])
def list_deliveries(
    name: str, webhook_id: WebhookId, session: SessionDep, state: DeliveryState | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeliveryOut]:
    """The hook's deliveries, newest first: event, id, attempts, last status or error, next attempt, and
    when delivered."""
    deliveries = service.list_deliveries(session=session, model=get_model(session, name), webhook_id=webhook_id,
                                         state=state, limit=limit)
    return [DeliveryOut.of(delivery) for delivery in deliveries]
