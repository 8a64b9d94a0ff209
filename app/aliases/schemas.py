"""Request and response shapes of aliases and their history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.db.tables import MAX_VERSION, AliasMove
from app.request_schema import Integer


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    version: Integer = Field(ge=0, le=MAX_VERSION, description="the version the alias names from now on")
    reason: str | None = Field(None, max_length=2000, description="why, kept in the alias's history")


class AliasOut(BaseModel):
    alias: str
    version: int
    updated_at: datetime | None = Field(description="when it last moved (None: before aliases were recorded)")


class AliasMoveOut(BaseModel):
    alias: str
    at: datetime
    from_: int | None = Field(alias="from", description="the version it named before (None: it did not exist)")
    to: int | None = Field(description="the version it names since (None: it was deleted)")
    by: str | None = Field(description="'key <prefix>' (the API key), 'job <id>', or None (a server without keys)")
    key: str | None = Field(description="the API key's prefix")
    job: str | None = Field(description="the job that moved it")
    reason: str | None

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def of(cls, move: AliasMove) -> AliasMoveOut:
        by = f"key {move.key_prefix}" if move.key_prefix else f"job {move.job_id}" if move.job_id else None
        return cls(alias=move.alias, at=move.at, from_=move.from_version, to=move.to_version, by=by,
                   key=move.key_prefix, job=move.job_id, reason=move.reason)
