"""The delivery loop: claim due deliveries under a lease, POST each signed, record what came of it.

It runs beside jobs, never in them: a daemon thread of each worker's main process (workers/tasks.py),
which trains nothing, so a slow or dead receiver costs a job nothing. A delivery is claimed by a
conditional UPDATE that sets its lease (`lease_until`) only if no live lease is on it, inside a
transaction that on PostgreSQL first locks the candidate rows with SELECT … FOR UPDATE SKIP LOCKED (on
SQLite, BEGIN IMMEDIATE serialises the claims), so two loops never send one delivery at once. The
POST happens outside any transaction; the outcome is written afterwards. A sender that dies mid-send
leaves its lease to run out and the delivery is sent again: at least once, under the same
`X-Lifelong-Delivery` id, which is how receivers drop repeats.

Retries: any answer but 2xx, a refused connection or a timeout is a failed attempt, retried after
`webhook_backoff_s` × 2^(attempts−1), at most `webhook_backoff_max_s`, until `webhook_max_attempts`
attempts have failed; the delivery is then `failed` and stays in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import make_engine, make_session_factory
from app.db.tables import utcnow
from app.settings import Settings
from app.webhooks.tables import Webhook, WebhookDelivery

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Lifelong-Signature"
ATTEMPT_LOG_LENGTH = 20
USER_AGENT = "lifelong-webhooks/1"


def sign(secret: str, body: bytes) -> str:
    """The `X-Lifelong-Signature` value: `sha256=` and the hex HMAC-SHA256 of the raw body under the hook's
    secret, as GitHub's `X-Hub-Signature-256`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_s(attempts: int, settings: Settings) -> float:
    """The wait after the `attempts`-th failed attempt: 1, 2, 4 … × webhook_backoff_s, capped."""
    return min(settings.webhook_backoff_s * 2.0 ** min(attempts - 1, 60), settings.webhook_backoff_max_s)


@dataclass(frozen=True)
class Claimed:
    """A delivery this loop holds the lease of, with what sending it needs."""

    id: str
    event: str
    body: str
    url: str
    secret: str
    attempt: int  # this attempt's number, from 1


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: no answer (refused, timed out, not HTTP)
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _unleased(now: datetime) -> object:
    return or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now)


def any_due(sessions: sessionmaker[Session], now: datetime) -> bool:
    """Whether a delivery is due: a read, so that an idle loop never takes SQLite's write lock."""
    with sessions() as session:
        return session.scalar(select(WebhookDelivery.id).where(
            WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now, _unleased(now)).limit(1)
        ) is not None


def claim_due(sessions: sessionmaker[Session], *, now: datetime, limit: int, lease_s: float) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest due first, counting the attempt each is about to get."""
    until = now + timedelta(seconds=lease_s)
    with sessions.begin() as session:
        candidates = list(session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now, _unleased(now))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at).limit(limit)
            .with_for_update(skip_locked=True)))
        taken = []
        for delivery_id in candidates:
            result = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending", _unleased(now))
                .values(lease_until=until, attempts=WebhookDelivery.attempts + 1)
                .execution_options(synchronize_session=False))
            if result.rowcount == 1:
                taken.append(delivery_id)
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.event, WebhookDelivery.body, WebhookDelivery.attempts,
                   Webhook.url, Webhook.secret)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id).where(WebhookDelivery.id.in_(taken))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at))
        return [Claimed(id=r.id, event=r.event, body=r.body, url=r.url, secret=r.secret, attempt=r.attempts)
                for r in rows]


def send(http: httpx.Client, claimed: Claimed) -> Outcome:
    """POST the delivery's body, signed; the answer's body is never read (a receiver's reply is not ours)."""
    body = claimed.body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Lifelong-Delivery": claimed.id, "X-Lifelong-Event": claimed.event,
               SIGNATURE_HEADER: sign(claimed.secret, body)}
    try:
        with http.stream("POST", claimed.url, content=body, headers=headers) as response:
            status = response.status_code
    except Exception as error:  # noqa: BLE001 - refused, timed out, or a URL httpx will not take: a failed attempt
        return Outcome(None, f"{type(error).__name__}: {error}"[:500])
    return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}")


def record_outcome(sessions: sessionmaker[Session], claimed: Claimed, outcome: Outcome, settings: Settings) -> str:
    """Write what came of an attempt and release the lease; returns the delivery's state ("gone": the hook
    was deleted meanwhile)."""
    now = utcnow()
    with sessions.begin() as session:
        row = session.get(WebhookDelivery, claimed.id, with_for_update=True)
        if row is None:
            return "gone"
        entry = {"at": now.isoformat(), "attempt": claimed.attempt, "status": outcome.status, "error": outcome.error}
        row.attempt_log = [*row.attempt_log, entry][-ATTEMPT_LOG_LENGTH:]
        row.last_status, row.last_error, row.lease_until = outcome.status, outcome.error, None
        if row.state != "pending":  # another loop finished it after this one's lease ran out
            return row.state
        if outcome.delivered:
            row.state, row.delivered_at, row.next_attempt_at = "delivered", now, None
        elif row.attempts >= settings.webhook_max_attempts:
            row.state, row.next_attempt_at = "failed", None
        else:
            row.next_attempt_at = now + timedelta(seconds=backoff_s(row.attempts, settings))
        return row.state


def deliver_due(sessions: sessionmaker[Session], read_sessions: sessionmaker[Session], http: httpx.Client,
                settings: Settings, pool: ThreadPoolExecutor) -> int:
    """One round: send every due delivery (up to a batch), `webhook_concurrency` at a time; returns how many."""
    now = utcnow()
    if not any_due(read_sessions, now):
        return 0
    claimed = claim_due(sessions, now=now, limit=4 * settings.webhook_concurrency, lease_s=settings.webhook_lease_s)

    def attempt(delivery: Claimed) -> None:
        outcome = send(http, delivery)
        state = record_outcome(sessions, delivery, outcome, settings)
        if state == "failed":
            log.warning("webhook delivery %s (%s to %s) failed %d times: %s; giving up", delivery.id,
                        delivery.event, delivery.url, delivery.attempt, outcome.error)
        elif not outcome.delivered:
            log.info("webhook delivery %s (%s to %s), attempt %d: %s; will retry", delivery.id, delivery.event,
                     delivery.url, delivery.attempt, outcome.error)

    list(pool.map(attempt, claimed))  # waits for all, raising the first error
    return len(claimed)


def start_delivery(settings: Settings) -> threading.Event:
    """Start the delivery loop in a daemon thread, on engines of its own; set the returned event to stop it."""
    sessions = make_session_factory(make_engine(settings))
    read_sessions = make_session_factory(make_engine(settings, reader=True))
    timeout = httpx.Timeout(settings.webhook_timeout_s, connect=min(2.0, settings.webhook_timeout_s))
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=timeout, follow_redirects=False) as http, \
                ThreadPoolExecutor(settings.webhook_concurrency, thread_name_prefix="lifelong-webhook") as pool:
            while not stop.is_set():
                try:
                    sent = deliver_due(sessions, read_sessions, http, settings, pool)
                except Exception:  # noqa: BLE001 - a database hiccup: try again next round
                    log.warning("sending webhook deliveries failed", exc_info=True)
                    sent = 0
                if not sent:  # a full round may have left more due: go again at once
                    stop.wait(settings.webhook_poll_s)

    threading.Thread(target=run, name="lifelong-webhooks", daemon=True).start()
    return stop
