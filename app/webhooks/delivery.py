"""The delivery loop: claim due deliveries under a lease, POST each signed, record what came of it.

It runs beside jobs, never in them: a daemon thread of each worker's main process (workers/tasks.py),
which trains nothing, so a slow or dead receiver costs a job nothing. A delivery is claimed by a
conditional UPDATE that sets its lease (`lease_until`) only if no live lease is on it, inside a
transaction that on PostgreSQL first locks the candidate rows with SELECT … FOR UPDATE SKIP LOCKED (on
SQLite, BEGIN IMMEDIATE serialises the claims), so two loops never send one delivery at once. The
POST happens outside any transaction; the outcome is written afterwards. A sender that dies mid-send
leaves its lease to run out and the delivery is sent again: at least once, under the same
`X-Lifelong-Delivery` id, which is how receivers drop repeats.

One slow receiver delays only itself: each target (scheme, host and port of a hook's URL) has its own
`webhook_target_concurrency` slots within the loop's `webhook_concurrency`, each send has its own
`webhook_timeout_s`, and the loop never waits for a round to finish: it claims what the free slots can
take, skipping deliveries whose target is busy, and a slot set free starts the next. Before each send the
target's host is resolved again and refused if it now points at a private address (app/webhooks/targets.py).

Retries: any answer but 2xx, a refused connection, a timeout or a refused target is a failed attempt,
retried after `webhook_backoff_s` × 2^(attempts−1), at most `webhook_backoff_max_s`, until
`webhook_max_attempts` attempts have failed; the delivery is then `failed` and stays in the log.

Signatures (app/webhooks/signing.py): `X-Lifelong-Signature` signs the body as API.md fixes it, and
`X-Lifelong-Timestamp-Signature: t=<unix time>,v1=<hex>` signs "<t>.<body>" at each attempt, so that a
receiver refusing a `t` older than the replay window (5 minutes) cannot be replayed an old delivery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import make_engine, make_session_factory
from app.db.tables import utcnow
from app.settings import Settings
from app.webhooks.secrets import SecretBox, SecretKeyError
from app.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_SIGNATURE_HEADER, sign, sign_timestamped
from app.webhooks.slots import Slots, target_of
from app.webhooks.tables import Webhook, WebhookDelivery
from app.webhooks.targets import TargetRefused, check_target

log = logging.getLogger(__name__)

ATTEMPT_LOG_LENGTH = 20
USER_AGENT = "lifelong-webhooks/1"
# Pages of due deliveries one claim looks through for targets with a free slot.
CLAIM_PAGES = 8

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
    secret_encrypted: str
    attempt: int  # this attempt's number, from 1

    @property
    def target(self) -> str:
        return target_of(self.url)


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: no answer (refused, timed out, not HTTP, target refused)
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _unleased(now: datetime) -> object:
    return or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now)


def _due(now: datetime) -> tuple[object, ...]:
    return WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now, _unleased(now)


def any_due(sessions: sessionmaker[Session], now: datetime) -> bool:
    """Whether a delivery is due: a read, so that an idle loop never takes SQLite's write lock."""
    with sessions() as session:
        return session.scalar(select(WebhookDelivery.id).where(*_due(now)).limit(1)) is not None


def claim_due(sessions: sessionmaker[Session], *, now: datetime, limit: int, lease_s: float,
              slots: Slots | None = None) -> list[Claimed]:
    """Lease up to `limit` due deliveries, oldest due first, counting the attempt each is about to get. With
    `slots`, only deliveries whose target has a free slot are taken (the slot with them); a hook whose target
    is full is passed over, and the next page of due deliveries looked at, so one slow target's backlog never
    hides the others'."""
    until, taken, passed = now + timedelta(seconds=lease_s), [], set()
    with sessions.begin() as session:
        for _ in range(CLAIM_PAGES):
            page = session.execute(
                select(WebhookDelivery.id, WebhookDelivery.webhook_id, Webhook.url)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(*_due(now), WebhookDelivery.webhook_id.not_in(passed), WebhookDelivery.id.not_in(taken))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at).limit(4 * limit)
                .with_for_update(skip_locked=True, of=WebhookDelivery)).all()
            for row in page:
                if len(taken) == limit:
                    break
                if row.webhook_id in passed:
                    continue
                if slots is not None and not slots.take(target_of(row.url)):
                    passed.add(row.webhook_id)
                    continue
                if _lease(session, row.id, now, until):
                    taken.append(row.id)
                elif slots is not None:
                    slots.give(target_of(row.url))
            if len(taken) == limit or len(page) < 4 * limit:
                break
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.event, WebhookDelivery.body, WebhookDelivery.attempts,
                   Webhook.url, Webhook.secret_encrypted)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id).where(WebhookDelivery.id.in_(taken))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at))
        return [Claimed(id=r.id, event=r.event, body=r.body, url=r.url, secret_encrypted=r.secret_encrypted,
                        attempt=r.attempts) for r in rows]


def _lease(session: Session, delivery_id: str, now: datetime, until: datetime) -> bool:
    """Set the delivery's lease if no live one is on it (another loop may have taken it a moment ago)."""
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending", _unleased(now))
        .values(lease_until=until, attempts=WebhookDelivery.attempts + 1)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def send(http: httpx.Client, claimed: Claimed, *, secret: str, allow_private: bool) -> Outcome:
    """POST the delivery's body, signed; the answer's body is never read (a receiver's reply is not ours). The
    target is resolved and checked first: DNS may have changed since the hook was made."""
    try:
        check_target(claimed.url, allow_private=allow_private)
    except TargetRefused as error:
        return Outcome(None, f"refused: {error}"[:500])
    body = claimed.body.encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Lifelong-Delivery": claimed.id, "X-Lifelong-Event": claimed.event,
               SIGNATURE_HEADER: sign(secret, body),
               TIMESTAMP_SIGNATURE_HEADER: sign_timestamped(secret, body, int(time.time()))}
    try:
        with http.stream("POST", claimed.url, content=body, headers=headers) as response:
            status = response.status_code
    except Exception as error:  # noqa: BLE001 - refused, timed out, or a URL httpx will not take: a failed attempt
        return Outcome(None, f"{type(error).__name__}: {error}"[:500])
    return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}")


def attempt(claimed: Claimed, *, http: httpx.Client, box: SecretBox, settings: Settings) -> Outcome:
    """One attempt of a claimed delivery: decrypt the secret, send."""
    try:
        secret = box.open(claimed.secret_encrypted)
    except SecretKeyError as error:
        return Outcome(None, str(error)[:500])
    return send(http, claimed, secret=secret, allow_private=settings.webhook_allow_private)


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
                settings: Settings, pool: ThreadPoolExecutor, slots: Slots) -> int:
    """Start as many due deliveries as the free slots take, each in `pool`; returns how many were started.
    It does not wait for them: each gives its slot back when its outcome is written."""
    now = utcnow()
    free = slots.free()
    if free <= 0 or not any_due(read_sessions, now):
        return 0
    box = SecretBox.of(settings)
    claimed = claim_due(sessions, now=now, limit=free, lease_s=settings.webhook_lease_s, slots=slots)
    for delivery in claimed:
        pool.submit(_send_and_record, delivery, sessions=sessions, settings=settings, slots=slots,
                    send_one=lambda d: attempt(d, http=http, box=box, settings=settings))
    return len(claimed)


def _send_and_record(delivery: Claimed, *, sessions: sessionmaker[Session], settings: Settings, slots: Slots,
                     send_one: Callable[[Claimed], Outcome]) -> None:
    try:
        outcome = send_one(delivery)
        state = record_outcome(sessions, delivery, outcome, settings)
        if state == "failed":
            log.warning("webhook delivery %s (%s to %s) failed %d times: %s; giving up", delivery.id,
                        delivery.event, delivery.url, delivery.attempt, outcome.error)
        elif not outcome.delivered:
            log.info("webhook delivery %s (%s to %s), attempt %d: %s; will retry", delivery.id, delivery.event,
                     delivery.url, delivery.attempt, outcome.error)
    except Exception:  # noqa: BLE001 - a database hiccup: the lease runs out and the delivery is sent again
        log.warning("recording webhook delivery %s failed", delivery.id, exc_info=True)
    finally:
        slots.give(delivery.target)


def start_delivery(settings: Settings) -> threading.Event:
    """Start the delivery loop in a daemon thread, on engines of its own; set the returned event to stop it."""
    sessions = make_session_factory(make_engine(settings))
    read_sessions = make_session_factory(make_engine(settings, reader=True))
    timeout = httpx.Timeout(settings.webhook_timeout_s, connect=min(2.0, settings.webhook_timeout_s))
    slots = Slots(settings.webhook_concurrency, settings.webhook_target_concurrency)
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=timeout, follow_redirects=False) as http, \
                ThreadPoolExecutor(settings.webhook_concurrency, thread_name_prefix="lifelong-webhook") as pool:
            while not stop.is_set():
                try:
                    started = deliver_due(sessions, read_sessions, http, settings, pool, slots)
                except Exception:  # noqa: BLE001 - a database hiccup: try again next round
                    log.warning("sending webhook deliveries failed", exc_info=True)
                    started = 0
                if not started:  # nothing due, or every due one's target busy: until a slot frees or a poll
                    slots.wait_freed(settings.webhook_poll_s)

    threading.Thread(target=run, name="lifelong-webhooks", daemon=True).start()
    return stop
