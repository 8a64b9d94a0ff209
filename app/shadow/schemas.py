"""Request and response shapes of a shadow."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.names import NAME_PATTERN


class ShadowIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # "not production" is in the schema (a JSON Schema `not`), so that a client generated from the OpenAPI
    # knows it; the service refuses it with a message naming the alternative.
    alias: str = Field(pattern=NAME_PATTERN, json_schema_extra={"not": {"const": "production"}},
                       description="the alias whose version answers in the shadow (typically candidate), not "
                                   "production")
    fraction: float = Field(gt=0, le=1, allow_inf_nan=False,
                            description="the share of production's prediction requests replayed on it")


class ShadowTask(BaseModel):
    compared: int
    agreement: float | None


class Disagreement(BaseModel):
    production: str = Field(description="production's class (its name, or task/index)")
    shadow: str
    count: int


class ShadowOut(BaseModel):
    model: str
    alias: str
    version: int = Field(description="the version the alias named when the shadow was set")
    fraction: float
    compared: int = Field(description="rows answered by both")
    dropped: int = Field(description="rows sampled but not replayed: the replay queue was full")
    agreement: float | None = Field(description="the share of compared rows both answered alike")
    tasks: dict[str, ShadowTask] = Field(description="per task (of production's answer)")
    disagreements: list[Disagreement] = Field(description="the most frequent, most first (at most 20)")
    started_at: datetime
