"""What a prediction reads from the database: the model and the version it names, in one SELECT.

Reading them as ORM rows took two SELECTs of whole rows (a version's row carries its accuracy,
importance and how it was made, all JSON to decode) and cost a 1-row prediction more than its forward
pass. One join of the few columns a prediction uses reads the same thing in one statement, so in one
snapshot even without a transaction. When the join finds nothing, the lookup by parts runs to say
what is missing, with the answers it always gave (no model, no alias, no version).

The API keeps what it found for LIFELONG_AUTH_CACHE_S seconds (`find_recent_target`): an alias moved or
a version added through the API process counts at once (its commit clears the cache), one moved by
another process (a worker promoting a version, a second API) within that lifetime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from app.aliases.moves import PRODUCTION
from app.aliases.service import resolve_version
from app.architectures.spec import ArchitectureSpec
from app.db.lookups import get_model, get_version
from app.db.tables import Alias, Model, Version
from app.timed_cache import TimedCache


@dataclass(frozen=True)
class Target:
    """The version a prediction runs, as plain values (nothing to expire or reload)."""

    model: str
    architecture: ArchitectureSpec  # validated when the model was made
    version_id: int
    number: int
    tasks: list[dict[str, Any]]
    theta_blob: str
    task_free: dict[str, Any] | None = None  # the version's fitted task-free predictors (None: none)
    options: dict[str, Any] | None = None  # the model's task-free options

    @cached_property
    def task_entries(self) -> dict[str, dict[str, Any]]:
        """Each task's entry (its classes) by name; kept with the target, as it is, between requests."""
        return {entry["name"]: entry for entry in self.tasks}

    @cached_property
    def network_key(self) -> tuple[str, str]:
        """What the network cache knows this version's network by: its architecture and θ."""
        return json.dumps(self.architecture, sort_keys=True), self.theta_blob


def find_target(session: Session, model_name: str, *, version: int | None, alias: str | None) -> Target:
    """The version named by number, by alias, or production when neither is given; 404/422 as before."""
    if version is not None and alias is not None:
        query, params = None, {}
    elif version is not None:
        query, params = _BY_NUMBER, {"name": model_name, "number": version}
    elif (alias or PRODUCTION) == PRODUCTION:
        query, params = _PRODUCTION, {"name": model_name}
    else:
        query, params = _BY_ALIAS, {"name": model_name, "alias": alias}
    # Through the session's connection: the statements are built once, and no ORM rows are made.
    row = query is not None and session.connection().execute(query, params).first()
    if not row:  # say why, as the lookup by parts does (and find it, were it added meanwhile)
        model = get_model(session, model_name)
        number = resolve_version(session=session, model=model, version=version, alias=alias)
        get_version(session, model, number)
        row = session.connection().execute(_BY_NUMBER, {"name": model_name, "number": number}).one()
    return Target(*row)


def recent_target(cache: TimedCache, model_name: str, *, task: str | None, version: int | None,
                  alias: str | None) -> Target | None:
    """The target kept in `cache`, unless it lacks `task` (or, with no task, task-free predictors): only a
    refusal could come of that, and a version that a worker promoted just now may have them."""
    target = cache.get((model_name, version, alias))
    if target is None:
        return None
    return target if (task in target.task_entries if task is not None else target.task_free) else None


def find_recent_target(cache: TimedCache, session: Session, model_name: str, *, task: str | None,
                       version: int | None,
                       alias: str | None) -> Target:
    """`recent_target`, else `find_target`, kept in `cache` for the next request."""
    target = recent_target(cache, model_name, task=task, version=version, alias=alias)
    if target is None:
        read_in = cache.generation
        target = find_target(session, model_name, version=version, alias=alias)
        cache.put((model_name, version, alias), target, read_in=read_in)
    return target


def _target_query(number: Any, *, by_alias: bool = False) -> Select:
    """Model and version columns where the version's number is `number` (a parameter or a column)."""
    query = select(Model.name, Model.architecture, Version.id, Version.number, Version.tasks, Version.theta_blob,
                   Version.task_free, Model.task_free)
    if by_alias:
        query = query.join(Alias, (Alias.model_id == Model.id) & (Alias.name == bindparam("alias")))
    return query.join(Version, (Version.model_id == Model.id) & (Version.number == number)).where(
        Model.name == bindparam("name"))


_BY_NUMBER = _target_query(bindparam("number"))
_PRODUCTION = _target_query(Model.head)  # production is the model's head (app/aliases/moves.py)
_BY_ALIAS = _target_query(Alias.version, by_alias=True)
