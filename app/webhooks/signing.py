"""The two signatures of a delivery, HMAC-SHA256 under the hook's secret.

`X-Lifelong-Signature: sha256=<hex>` signs the body alone (API.md fixes it; GitHub's X-Hub-Signature-256).
A body signed alone can be replayed as it is for ever, so `X-Lifelong-Timestamp-Signature:
t=<unix seconds>,v1=<hex>` signs f"{t}.{body}" as Stripe-Signature does: a receiver recomputes v1 and
refuses a `t` more than REPLAY_WINDOW_S away from its clock (scripts/webhook_receiver.py, docs/webhooks.md).
Each attempt is signed when it is sent, so a retry hours later carries a fresh `t`.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Lifelong-Signature"
TIMESTAMP_SIGNATURE_HEADER = "X-Lifelong-Timestamp-Signature"
# How far a delivery's `t` may be from the receiver's clock (either way) before it is refused as a replay.
REPLAY_WINDOW_S = 300


def sign(secret: str, body: bytes) -> str:
    """The `X-Lifelong-Signature` value: `sha256=` and the hex HMAC-SHA256 of the raw body under the hook's
    secret, as GitHub's `X-Hub-Signature-256`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_timestamped(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Lifelong-Timestamp-Signature` value: `t=<timestamp>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
    signed = str(timestamp).encode() + b"." + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
