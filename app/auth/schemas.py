"""Request and response shapes of API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models.schemas import NAME_PATTERN


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    scope: Literal["read", "write", "admin"]
    name: str | None = Field(None, pattern=NAME_PATTERN)


class KeyOut(BaseModel):
    id: int
    prefix: str
    name: str | None
    scope: str
    created_at: datetime
    revoked_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="the token, shown this once: send it as Authorization: Bearer <key>")
