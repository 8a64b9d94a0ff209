"""Webhooks on PostgreSQL: migration 0010 goes up, down and up; the outbox rows commit and roll back with
the change they report; and loops claiming at once from threads (each its own connection, rows locked with
SELECT … FOR UPDATE SKIP LOCKED) never take one delivery twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from app.aliases.moves import Mover, move_alias
from app.db.engine import make_engine
from app.db.migrate import alembic_config
from app.db.tables import Model, utcnow
from app.settings import Settings
from app.webhooks.delivery import claim_due
from app.webhooks.secrets import SecretBox
from app.webhooks.service import HookRules, add_webhook
from app.webhooks.tables import WebhookDelivery
from scripts.cluster import Server


def _model_with_hook(sessions: sessionmaker[Session], name: str) -> int:
    with sessions.begin() as session:
        model = Model(name=name, architecture={}, seed=0, head=0)
        session.add(model)
        session.flush()
        add_webhook(session=session, model=model, url="http://127.0.0.1:9/hook", events=["alias.moved"], secret="s",
                    rules=HookRules(box=SecretBox([Fernet.generate_key()]), allow_private=True))
        return model.id


def _count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(WebhookDelivery))


def test_the_migration_goes_down_and_up(postgres: Server, sessions: sessionmaker[Session]) -> None:
    config = alembic_config(Settings(database_url=postgres.url))
    sessions.kw["bind"].dispose()
    command.downgrade(config, "0009")
    assert not {"webhooks", "webhook_deliveries"} & set(inspect(make_engine(Settings(database_url=postgres.url)))
                                                        .get_table_names())
    command.upgrade(config, "head")
    assert {"webhooks", "webhook_deliveries"} <= set(inspect(sessions.kw["bind"]).get_table_names())


def test_deliveries_commit_and_roll_back_with_their_move(sessions: sessionmaker[Session]) -> None:
    model_id = _model_with_hook(sessions, "rolled")
    before = _count(sessions)
    with sessions() as session:
        move_alias(session=session, model=session.get(Model, model_id), alias="canary", version=0, by=Mover(),
                   reason=None)
        session.rollback()
    assert _count(sessions) == before
    with sessions.begin() as session:
        move_alias(session=session, model=session.get(Model, model_id), alias="canary", version=0, by=Mover(),
                   reason=None)
    assert _count(sessions) == before + 1


def test_loops_claiming_at_once_never_take_one_delivery_twice(sessions: sessionmaker[Session]) -> None:
    model_id = _model_with_hook(sessions, "claimed")
    with sessions.begin() as session:
        for n in range(40):
            move_alias(session=session, model=session.get(Model, model_id), alias=f"a{n}", version=0, by=Mover(),
                       reason=None)
    now = utcnow()
    barrier = threading.Barrier(8)

    def claim() -> list[str]:
        barrier.wait()
        taken: list[str] = []
        while batch := claim_due(sessions, now=now, limit=3, lease_s=60):
            taken += [c.id for c in batch]
        return taken

    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: claim(), range(8)))
    taken = [delivery for claimed in claims for delivery in claimed]
    assert len(taken) == len(set(taken)) >= 40
    assert sum(1 for claimed in claims if claimed) > 1  # they did run at once
