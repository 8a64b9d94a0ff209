"""Webhooks in process over a SQLite file: the outbox rows are written by the transaction of the change
they report (and vanish with its rollback), claims never overlap, and the delivery round against a real
receiver signs, retries with backoff under one id, and gives up after the last attempt. Migration 0010 goes
up from 0009, down and up again."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import select

from app.aliases.moves import Mover
from app.aliases.promotion import PromotionPolicy
from app.aliases.service import set_alias
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config
from app.db.tables import Model, utcnow
from app.jobs.context import JobContext
from app.jobs.runner import run_job
from app.jobs.service import cancel_job
from app.models.service import delete_model
from app.settings import Settings
from app.store import LocalBlobStore
from app.webhooks.delivery import backoff_s, claim_due, deliver_due
from app.webhooks.events import publish_job_events
from app.webhooks.service import HookRules, add_webhook
from app.webhooks.signing import sign
from app.webhooks.slots import Slots
from app.webhooks.tables import Webhook, WebhookDelivery
from tests.conftest import wait_for
from tests.receiver import Receiver
from tests.unit.in_process import job_context, queue_train_job, small_model
from workers.kinds import JOB_KINDS

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_0006"
ALL = ["job.finished", "version.created", "alias.moved"]


@pytest.fixture
def context(tmp_path: Path) -> JobContext:
    settings = Settings(var_dir=tmp_path / "var", webhook_backoff_s=0.05, webhook_backoff_max_s=0.2,
                        webhook_max_attempts=4, webhook_allow_private=True)
    publish_job_events()  # as the worker and the API wire it
    return job_context(tmp_path, settings)


def _model(ctx: JobContext, name: str = "m", policy: str = "auto") -> Model:
    return small_model(ctx, name, promotion=PromotionPolicy(policy))


def _hook(ctx: JobContext, model: Model, events: list[str], url: str = "http://127.0.0.1:9/hook",
          secret: str = "s3cret") -> int:
    with ctx.sessions.begin() as session:
        return add_webhook(session=session, model=model, url=url, events=events, secret=secret,
                           rules=HookRules.of(ctx.settings)).id


def _queued(ctx: JobContext, task: str = "t") -> str:
    return queue_train_job(ctx, evaluate_on_train=True, task=task, epochs=1, **{"lambda": 1.0})


def _deliveries(ctx: JobContext, hook_id: int | None = None) -> list[WebhookDelivery]:
    with ctx.sessions() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.created_at)
        if hook_id is not None:
            query = query.where(WebhookDelivery.webhook_id == hook_id)
        return list(session.scalars(query))


def test_a_job_writes_its_events_with_its_version(context: JobContext) -> None:
    model = _model(context)
    every, finished_only = _hook(context, model, ALL), _hook(context, model, ["job.finished"])
    _hook(context, _model(context, "other"), ALL)  # another model's hook hears nothing of this one
    job_id = _queued(context)
    assert run_job(context, job_id) == "succeeded"

    rows = _deliveries(context, every)
    assert [row.event for row in rows] == ["version.created", "alias.moved", "job.finished"]
    assert all(row.state == "pending" and row.attempts == 0 for row in rows)
    bodies = [json.loads(row.body) for row in rows]
    assert [b["id"] for b in bodies] == [row.id for row in rows] and {b["model"] for b in bodies} == {"m"}
    created, moved, finished = (b["data"] for b in bodies)
    assert (created["version"], created["kind"], created["task"], created["parent"], created["job"]) == (
        1, "train", "t", 0, job_id)
    assert (moved["alias"], moved["from"], moved["to"], moved["by"], moved["job"]) == (
        "production", 0, 1, f"job {job_id}", job_id)
    assert (finished["job"], finished["kind"], finished["state"], finished["error"]) == (
        job_id, "train", "succeeded", None)
    assert finished["result"]["version"] == 1 and finished["result"]["promotion"]["promoted"] is True
    assert [row.event for row in _deliveries(context, finished_only)] == ["job.finished"]
    assert len(_deliveries(context)) == 4


def test_a_rolled_back_change_emits_nothing(context: JobContext) -> None:
    model = _model(context)
    hook = _hook(context, model, ALL)
    with context.sessions() as session:
        set_alias(session=session, model=session.get(Model, model.id), alias="canary", version=0,
                  by=Mover(key_prefix="abc"), reason="try")
        assert len(session.scalars(select(WebhookDelivery)).all()) == 1  # written, in this transaction only
        session.rollback()
    assert _deliveries(context) == []
    with context.sessions.begin() as session:
        set_alias(session=session, model=session.get(Model, model.id), alias="canary", version=0,
                  by=Mover(key_prefix="abc"), reason="go")
    [row] = _deliveries(context, hook)
    data = json.loads(row.body)["data"]
    assert (data["alias"], data["from"], data["to"], data["by"], data["reason"]) == ("canary", None, 0, "key abc", "go")


def test_a_cancelled_job_is_a_finished_job(context: JobContext) -> None:
    hook = _hook(context, _model(context), ["job.finished"])
    job_id = _queued(context)
    with context.sessions.begin() as session:
        cancel_job(session=session, job_id=job_id)
    [row] = _deliveries(context, hook)
    data = json.loads(row.body)["data"]
    assert (data["job"], data["state"], data["result"], data["error"]) == (job_id, "cancelled", None, None)


def test_deleting_a_model_deletes_its_hooks_and_their_deliveries(context: JobContext) -> None:
    model = _model(context)
    _hook(context, model, ALL)
    kept = _hook(context, _model(context, "other"), ALL)
    for name in ("m", "other"):
        with context.sessions.begin() as session:
            owner = session.scalar(select(Model).where(Model.name == name))
            set_alias(session=session, model=owner, alias="canary", version=0, by=Mover(), reason=None)
    with context.sessions.begin() as session:
        delete_model(session=session, name="m")
    with context.sessions() as session:
        assert [hook.id for hook in session.scalars(select(Webhook))] == [kept]
    assert [row.webhook_id for row in _deliveries(context)] == [kept]


def test_two_loops_never_claim_one_delivery(context: JobContext) -> None:
    model = _model(context)
    _hook(context, model, ALL)
    with context.sessions.begin() as session:
        for version in range(6):
            set_alias(session=session, model=session.get(Model, model.id), alias=f"a{version}", version=0, by=Mover(),
                      reason=None)
    now = utcnow()
    barrier = threading.Barrier(3)

    def claim() -> list[str]:
        barrier.wait()
        return [c.id for c in claim_due(context.sessions, now=now, limit=4, lease_s=30)]

    with ThreadPoolExecutor(3) as pool:
        claims = list(pool.map(lambda _: claim(), range(3)))
    taken = [delivery for claimed in claims for delivery in claimed]
    assert len(taken) == len(set(taken)) == 6  # every one once, none twice
    assert claim_due(context.sessions, now=now, limit=10, lease_s=30) == []  # all leased
    # A loop that died mid-send: its leases run out, and the deliveries are taken again, as attempt 2.
    again = claim_due(context.sessions, now=now + timedelta(seconds=31), limit=10, lease_s=30)
    assert sorted(c.id for c in again) == sorted(taken) and {c.attempt for c in again} == {2}


@pytest.fixture
def round_of(context: JobContext) -> Iterator:  # noqa: ANN001
    reader = make_session_factory(make_engine(context.settings, reader=True))
    slots = Slots(2, 2)
    with httpx.Client(timeout=2.0) as http, ThreadPoolExecutor(2) as pool:
        yield lambda: deliver_due(context.sessions, reader, http, context.settings, pool, slots)


def test_a_failing_receiver_gets_the_same_delivery_until_it_answers_2xx(context: JobContext, round_of) -> None:
    answers = {1: 500, 2: 404}  # then 200
    with Receiver(status=lambda n, _path: answers.get(n, 200)) as receiver:
        model = _model(context)
        hook = _hook(context, model, ["alias.moved"], url=receiver.url(), secret="k3y")
        with context.sessions.begin() as session:
            set_alias(session=session, model=session.get(Model, model.id), alias="canary", version=0, by=Mover(),
                      reason=None)

        def delivered() -> bool:
            round_of()
            return _deliveries(context, hook)[0].state == "delivered"

        wait_for(delivered, deadline_s=10, what="the delivery to succeed")
        [row] = _deliveries(context, hook)
        [(delivery_id, requests)] = receiver.deliveries().items()
    assert delivery_id == row.id and len(requests) == 3 == row.attempts
    assert {r.body for r in requests} == {row.body.encode()}  # byte for byte the same body each time
    assert all(r.signed_with("k3y") and not r.signed_with("other") for r in requests)
    assert {r.headers["x-lifelong-event"] for r in requests} == {"alias.moved"}
    assert requests[0].headers["x-lifelong-signature"] == sign("k3y", row.body.encode())
    assert [(e["attempt"], e["status"]) for e in row.attempt_log] == [(1, 500), (2, 404), (3, 200)]
    assert (row.last_status, row.last_error, row.next_attempt_at) == (200, None, None)
    # backoff: the second retry waited about twice as long as the first
    first_wait, second_wait = requests[1].at - requests[0].at, requests[2].at - requests[1].at
    assert first_wait >= 0.05 and second_wait >= 0.1


def test_a_receiver_that_never_answers_is_given_up_after_the_last_attempt(context: JobContext, round_of) -> None:
    closed = Receiver()  # never started: its port refuses connections
    model = _model(context)
    hook = _hook(context, model, ["alias.moved"], url=closed.url())
    with context.sessions.begin() as session:
        set_alias(session=session, model=session.get(Model, model.id), alias="canary", version=0, by=Mover(),
                  reason=None)

    def given_up() -> bool:
        round_of()
        return _deliveries(context, hook)[0].state == "failed"

    wait_for(given_up, deadline_s=10, what="the delivery to be given up")
    [row] = _deliveries(context, hook)
    assert row.attempts == context.settings.webhook_max_attempts == len(row.attempt_log)
    assert row.last_status is None and "ConnectError" in row.last_error and row.next_attempt_at is None
    assert round_of() == 0  # nothing left to send


def test_backoff_doubles_up_to_its_cap() -> None:
    settings = Settings(webhook_backoff_s=1.0, webhook_backoff_max_s=10.0)
    assert [backoff_s(n, settings) for n in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]
    assert backoff_s(10_000, settings) == 10


def _tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _counts(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
                for table in ("models", "versions", "jobs", "alias_moves")}


def test_migration_0010_up_from_0009_down_and_up_again(tmp_path: Path) -> None:
    var = tmp_path / "var"
    shutil.copytree(FIXTURE, var)
    settings = Settings(var_dir=var, webhook_allow_private=True)
    database = var / "lifelong.sqlite3"
    config = alembic_config(settings)
    command.upgrade(config, "0009")
    before = _counts(database)
    assert not _tables(database) & {"webhooks", "webhook_deliveries"}

    command.upgrade(config, "head")
    assert {"webhooks", "webhook_deliveries"} <= _tables(database) and _counts(database) == before
    context = JobContext(sessions=make_session_factory(make_engine(settings)), store=LocalBlobStore(var / "blobs"),
                         settings=settings, kinds=JOB_KINDS)
    with context.sessions() as session:
        model = session.scalars(select(Model)).one()
    hook = _hook(context, model, ["alias.moved"])
    with context.sessions.begin() as session:
        set_alias(session=session, model=session.get(Model, model.id), alias="canary", version=1, by=Mover(),
                  reason=None)
    assert len(_deliveries(context, hook)) == 1
    context.sessions.kw["bind"].dispose()
    after = _counts(database)

    command.downgrade(config, "0009")
    assert not _tables(database) & {"webhooks", "webhook_deliveries"} and _counts(database) == after
    command.upgrade(config, "head")
    assert {"webhooks", "webhook_deliveries"} <= _tables(database) and _counts(database) == after
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM webhooks").fetchone() == (0,)
