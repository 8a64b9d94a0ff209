"""Request and response shapes of webhooks and their delivery log. No answer carries a hook's secret."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
    field_validator,
)

from app.webhooks.events import EVENTS, EventName
from app.webhooks.tables import Webhook, WebhookDelivery

DeliveryState = Literal["pending", "delivered", "failed"]
# What a hook's URL may be, said in the OpenAPI as exactly what is accepted: http(s), a host name or IPv4
# address, a port within 0–65535, and a path and query of printable ASCII.
PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = rf"^https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:{PORT})?([/?][!-~]*)?$"
_HTTP_URL = TypeAdapter(HttpUrl)


def _http_url(url: str) -> str:
    if re.fullmatch(URL_PATTERN, url) is None:
        raise ValueError("must be an http or https URL with a host name or IPv4 address (https://example.com/hook)")
    _HTTP_URL.validate_python(url)  # the pattern makes this a formality
    return url


HookUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_http_url),
                    Field(json_schema_extra={"pattern": URL_PATTERN})]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: HookUrl = Field(description="http(s) URL the events are POSTed to")
    events: list[EventName] = Field(min_length=1, max_length=len(EVENTS), json_schema_extra={"uniqueItems": True},
                                    description="the events to send, each once")
    secret: str = Field(min_length=1, max_length=256, description="HMAC-SHA256 key of X-Lifelong-Signature; "
                        "stored to sign with, never shown again")

    @field_validator("events")
    @classmethod
    def _distinct(cls, events: list[str]) -> list[str]:
        if len(set(events)) != len(events):
            raise ValueError("events must not repeat")
        return events


class WebhookOut(BaseModel):
    id: int
    model: str
    url: str
    events: list[str]
    created_at: datetime

    @classmethod
    def of(cls, hook: Webhook, model: str) -> WebhookOut:
        return cls(id=hook.id, model=model, url=hook.url, events=list(hook.events), created_at=hook.created_at)


class AttemptOut(BaseModel):
    at: datetime
    attempt: int
    status: int | None = Field(description="the receiver's HTTP status; None: no answer (see error)")
    error: str | None


class DeliveryOut(BaseModel):
    id: str = Field(description="the X-Lifelong-Delivery id, the same on every retry")
    event: str
    state: DeliveryState = Field(description="pending (to be sent or retried), delivered (a 2xx), or failed "
                                 "(out of attempts)")
    attempts: int
    last_status: int | None = Field(description="the HTTP status of the last attempt; None: no answer")
    last_error: str | None = Field(description="why the last attempt failed: a status, a refused connection, a timeout")
    next_attempt_at: datetime | None = Field(description="when it is sent next; None once delivered or failed")
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptOut] = Field(description="the latest attempts, oldest first")
    payload: dict[str, Any] = Field(description="the body sent, as JSON")

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> DeliveryOut:
        return cls(id=delivery.id, event=delivery.event, state=delivery.state, attempts=delivery.attempts,
                   last_status=delivery.last_status, last_error=delivery.last_error,
                   next_attempt_at=delivery.next_attempt_at if delivery.state == "pending" else None,
                   delivered_at=delivery.delivered_at, created_at=delivery.created_at,
                   attempt_log=[AttemptOut(**entry) for entry in delivery.attempt_log],
                   payload=json.loads(delivery.body))
