"""Rows found by their keys, as nearly every package finds them: a model by name and a version by
number (404 if none), a version's lineage; and the lock on a model's row that serialises its moves.

Reads that only select rows of app/db/tables.py live here, below the packages that write those rows,
so that finding a row does not tie a package to the one that owns its logic: every route finds its
model by name, yet models create their version 0 and record production's move, and their jobs count
against them; datasets ask which versions a job's base descends from (to refuse deleting data it
reads) while versions, which record those versions, name the datasets they learned on; aliases
check the version they move to and hold the model's row while they move, as versions do when a job
promotes one through aliases.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Model, Version
from app.errors import NotFound


def get_model(session: Session, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise NotFound(f"no model {name!r}")
    return model


def get_version(session: Session, model: Model, number: int) -> Version:
    version = session.scalar(select(Version).where(Version.model_id == model.id, Version.number == number))
    if version is None:
        raise NotFound(f"model {model.name!r} has no version {number}")
    return version


def list_versions(session: Session, model: Model) -> list[Version]:
    return list(session.scalars(select(Version).where(Version.model_id == model.id).order_by(Version.number)))


def lineage(session: Session, model: Model, number: int) -> list[Version]:
    """The versions from version 0 to `number`, following parents."""
    by_number = {v.number: v for v in list_versions(session, model)}
    chain: list[Version] = []
    current: int | None = number
    while current is not None:
        chain.append(by_number[current])
        current = by_number[current].parent
    return chain[::-1]


def lock_model(session: Session, model_id: int) -> None:
    """Hold the model's row until the transaction ends, so that its head moves one at a time.

    On PostgreSQL this is SELECT … FOR UPDATE: workers on different hosts that finish jobs of one
    model at once queue here, and each then sees the head and the version numbers the one before it
    committed. SQLite has no row locks; there the writer's BEGIN IMMEDIATE serialises all writes.
    """
    session.execute(select(Model.id).where(Model.id == model_id).with_for_update())
