"""The webhook tables: a model's hooks, and the outbox of their deliveries (one row per event per hook).

A delivery row is written in the transaction of the change it reports (app/webhooks/events.py) with its
whole body, so every retry sends the same bytes under the same id. `lease_until` is the claim of the
loop sending it (app/webhooks/delivery.py): a row whose lease has not run out is left alone by the
others, and one whose sender died is taken again once it has. Deleting a hook (or its model) deletes
its deliveries with it, by cascade; its id is never given to another hook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.tables import Base, utcnow


class Webhook(Base):
    __tablename__ = "webhooks"
    # AUTOINCREMENT: SQLite would otherwise give a new hook the id of the last one deleted, and a receiver or
    # a client still holding that id would take the new hook for the old (PostgreSQL never reuses one).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]]  # names from app.webhooks.events.EVENTS
    # The HMAC key of every delivery's signature, so it cannot be stored hashed: encrypted instead, with a
    # key kept outside the database (app/webhooks/secrets.py). No answer of the API contains it.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # X-Lifelong-Delivery, the same on each retry
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)  # the JSON sent, exactly the bytes signed
    state: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed (out of attempts)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # None once delivered or failed
    lease_until: Mapped[datetime | None]
    last_status: Mapped[int | None]  # the HTTP status of the last attempt; None: no answer
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The latest attempts, oldest first: [{"at", "status", "error"}].
    attempt_log: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
