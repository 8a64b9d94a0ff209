"""A model's shadow as stored: set it, read it, end it, and add what a replay counted.

One row per model (`shadows`). Counts are added under the row's lock by the API process that replayed
the rows; a replay of a version the shadow no longer names (set again meanwhile) counts nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.aliases.moves import PRODUCTION, alias_version
from app.db.tables import Model, Shadow, utcnow
from app.errors import Invalid, NotFound
from app.shadow.schemas import Disagreement, ShadowOut, ShadowTask

MOST_DISAGREEMENTS = 20
SEPARATOR = "\t"  # between production's and the shadow's class in a disagreement's key


def set_shadow(*, session: Session, model: Model, alias: str, fraction: float) -> Shadow:
    """Start (or restart, with counts at zero) the model's shadow on the version `alias` names now."""
    if alias == PRODUCTION:
        raise Invalid("the shadow answers beside production: name another alias (typically candidate)")
    version = alias_version(session=session, model=model, alias=alias)
    if version is None:
        raise NotFound(f"model {model.name!r} has no alias {alias!r}")
    session.execute(delete(Shadow).where(Shadow.model_id == model.id))
    row = Shadow(model_id=model.id, alias=alias, version=version, fraction=fraction, compared=0, agreed=0, dropped=0,
                 tasks={}, disagreements={}, started_at=utcnow())
    session.add(row)
    session.flush()
    return row


def get_shadow(*, session: Session, model: Model) -> Shadow:
    row = session.scalar(select(Shadow).where(Shadow.model_id == model.id))
    if row is None:
        raise NotFound(f"model {model.name!r} has no shadow (it ended when its alias moved, or was never set)")
    return row


def end_shadow(*, session: Session, model: Model) -> None:
    session.delete(get_shadow(session=session, model=model))


@dataclass
class Counts:
    """What one batch of replays found, to be added to the row."""

    compared: int = 0
    agreed: int = 0
    dropped: int = 0
    tasks: Counter = field(default_factory=Counter)  # (task, "compared" | "agreed") → rows
    disagreements: Counter = field(default_factory=Counter)  # (production, shadow) → rows

    def add_rows(self, production: list[str], shadow: list[str], tasks: list[str]) -> None:
        for answered, replayed, task in zip(production, shadow, tasks, strict=True):
            same = answered == replayed
            self.compared, self.agreed = self.compared + 1, self.agreed + same
            self.tasks[(task, "compared")] += 1
            self.tasks[(task, "agreed")] += same
            if not same:
                self.disagreements[(answered, replayed)] += 1


def add_counts(*, session: Session, model_id: int, version: int, counts: Counts) -> bool:
    """Add `counts` to the model's shadow if it still shadows `version`; False when it does not."""
    row = session.scalar(select(Shadow).where(Shadow.model_id == model_id).with_for_update())
    if row is None or row.version != version:
        return False
    row.compared += counts.compared
    row.agreed += counts.agreed
    row.dropped += counts.dropped
    tasks = {name: dict(value) for name, value in row.tasks.items()}
    for (task, what), rows in counts.tasks.items():
        tasks.setdefault(task, {"compared": 0, "agreed": 0})[what] += rows
    disagreements = dict(row.disagreements)
    for (answered, replayed), rows in counts.disagreements.items():
        key = f"{answered}{SEPARATOR}{replayed}"
        disagreements[key] = disagreements.get(key, 0) + rows
    row.tasks, row.disagreements = tasks, disagreements
    return True


def shadow_out(*, model: Model, row: Shadow) -> ShadowOut:
    most = sorted(row.disagreements.items(), key=lambda item: (-item[1], item[0]))[:MOST_DISAGREEMENTS]
    return ShadowOut(
        model=model.name, alias=row.alias, version=row.version, fraction=row.fraction, compared=row.compared,
        dropped=row.dropped, agreement=row.agreed / row.compared if row.compared else None,
        tasks={name: ShadowTask(compared=value["compared"],
                                agreement=value["agreed"] / value["compared"] if value["compared"] else None)
               for name, value in row.tasks.items()},
        disagreements=[Disagreement(production=key.split(SEPARATOR)[0], shadow=key.split(SEPARATOR)[1], count=count)
                       for key, count in most],
        started_at=row.started_at)
