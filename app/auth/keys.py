"""API keys as stored things: create (the token is returned once), list, revoke, and check a token.

A token is `ll_<prefix>_<secret>`: the prefix finds the row (and names the key in lists), the
secret is 32 random bytes of which only the sha256 is stored, compared with `hmac.compare_digest`.
A high-entropy secret needs no slow password hash: nothing can be guessed from its sha256.
With no key ever created the service runs open (loopback only, see `check_bind`); once one exists,
even revoked, every request needs a valid key, so revoking the last key never reopens the server.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, Row, bindparam, select
from sqlalchemy.orm import Session

from app.auth.scoping import ModelScope
from app.db.tables import ApiKey, utcnow
from app.errors import Conflict, NotFound
from app.names import NAME_PATTERN

SCOPES = ("read", "write", "admin")
TOKEN_PREFIX = "ll"


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    token: str  # shown once, never stored


def create_key(*, session: Session, scope: str, name: str | None = None, models: list[str] | None = None,
               model_prefix: str | None = None) -> NewKey:
    """A new key; `models` and/or `model_prefix` limit the models it reaches (app/auth/scoping.py), neither
    gives it every model."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {list(SCOPES)}")
    if name is not None and not re.fullmatch(NAME_PATTERN, name):
        raise ValueError("a key's name is lower-case letters, digits, '_' and '-', up to 64")
    models = check_model_scope(models=models, model_prefix=model_prefix)
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    key = ApiKey(prefix=prefix, name=name, scope=scope, models=models, model_prefix=model_prefix,
                 secret_sha256=_digest(secret))
    session.add(key)
    session.flush()
    return NewKey(key, f"{TOKEN_PREFIX}_{prefix}_{secret}")


def check_model_scope(*, models: list[str] | None, model_prefix: str | None) -> list[str] | None:
    """The model names a key is scoped to, sorted and once each; ValueError for a scope that names nothing
    (an empty list, an empty prefix) or a name no model can have."""
    if models is not None:
        if not models:
            raise ValueError("a key's models list names at least one model (leave it out for every model)")
        for model in models:
            if not re.fullmatch(NAME_PATTERN, model):
                raise ValueError(f"{model!r} is not a model name: lower-case letters, digits, '_' and '-', up to 64")
        models = sorted(set(models))
    if model_prefix is not None and not re.fullmatch(NAME_PATTERN, model_prefix):
        raise ValueError("a key's model prefix is the start of a model name: lower-case letters, digits, '_' and"
                         " '-', up to 64 (leave it out for every model)")
    return models


def model_scope_of(key: ApiKey | Row) -> ModelScope:
    return ModelScope.of(key.models, key.model_prefix)


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(*, session: Session, key_id: int, by: int | None = None) -> ApiKey:
    """Revoke a key; an admin key cannot revoke itself (a typo would lock its holder out): another admin
    key, or `lifelong keys revoke` on the server, can."""
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if by == key.id:
        raise Conflict(f"API key {key_id} is the key making this request: revoke it with another admin key"
                       " or `lifelong keys revoke` on the server")
    if key.revoked_at is not None:
        raise Conflict(f"API key {key_id} was already revoked")
    key.revoked_at = utcnow()
    return key


# Built once: a key is checked on every request, and building a statement cost more than running it.
_ANY_KEY = select(ApiKey.id).limit(1)
_KEY_BY_PREFIX = select(ApiKey.id, ApiKey.scope, ApiKey.models, ApiKey.model_prefix, ApiKey.secret_sha256,
                        ApiKey.revoked_at).where(
    ApiKey.prefix == bindparam("prefix"))


def any_key_exists(connection: Session | Connection) -> bool:
    return connection.scalar(_ANY_KEY) is not None


def find_key(*, connection: Session | Connection, token: str) -> Row | None:
    """The live key a token belongs to (its id, scope and model scope), or None (unknown, malformed, wrong secret or
    revoked). Columns, not an ORM row: a Core connection reads them at half the cost of a session."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    key = connection.execute(_KEY_BY_PREFIX, {"prefix": parts[1]}).first()
    if key is None or not hmac.compare_digest(key.secret_sha256, _digest(parts[2])):
        return None
    return key if key.revoked_at is None else None


def allows(*, granted: str, needed: str) -> bool:
    return SCOPES.index(granted) >= SCOPES.index(needed)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(*, session: Session, host: str, allow_open_network: bool) -> str | None:
    """Why the API must not listen on `host`, or None: an open server stays on loopback."""
    if is_loopback(host) or allow_open_network or any_key_exists(session):
        return None
    return (
        f"refusing to listen on {host!r}: no API key exists, so the API would be open to anyone who can"
        " reach it. Create a key first (`lifelong keys create --scope admin`), listen on 127.0.0.1, or set"
        " LIFELONG_ALLOW_OPEN_NETWORK=true if something in front of the API authenticates."
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
