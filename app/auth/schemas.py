"""Request and response shapes of API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.names import NAME_PATTERN


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scope: Literal["read", "write", "admin"]
    name: str | None = Field(None, pattern=NAME_PATTERN)
    models: list[Annotated[str, Field(pattern=NAME_PATTERN)]] | None = Field(
        None, min_length=1, max_length=1000,
        description="the models this key reaches (with model_prefix: those too); leave both out for every model")
    model_prefix: str | None = Field(None, pattern=NAME_PATTERN,
                                     description="the key reaches the models whose names start with this")


class KeyOut(BaseModel):
    id: int
    prefix: str
    name: str | None
    scope: str
    models: list[str] | None = Field(description="the models the key reaches by name; null with model_prefix "
                                                 "null: every model")
    model_prefix: str | None
    created_at: datetime
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="the token, shown this once: send it as Authorization: Bearer <key>")
