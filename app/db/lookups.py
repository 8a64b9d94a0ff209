"""Rows found by their keys, as nearly every package finds them: a model by name (404 if none), a
version's lineage.

Reads that only select rows of app/db/tables.py live here, below the packages that write those rows,
so that finding a row does not tie a package to the one that owns its logic: every route finds its
model by name, yet models create their version 0 and record production's move, and their jobs count
against them; datasets ask which versions a job's base descends from (to refuse deleting data it
reads) while versions, which record those versions, name the datasets they learned on.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Model, Version
from app.errors import NotFound


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


def get_model(session: Session, name: str) -> Model:
    model = session.scalar(select(Model).where(Model.name == name))
    if model is None:
        raise NotFound(f"no model {name!r}")
    return model
