"""Issue 13: a prediction finds its version in one SELECT, with nothing cached, so an alias moved or a
version promoted by another process counts at the very next request, and the refusals stay as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from app.aliases.moves import Mover
from app.aliases.service import set_alias
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import upgrade_database
from app.errors import Invalid, NotFound
from app.models.service import get_model
from app.predictions.lookup import find_target
from app.settings import Settings
from app.store import LocalBlobStore
from tests.unit.tiny_model import train_tiny_model


def test_the_lookup_follows_aliases_moved_by_another_process_and_refuses_as_before(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    upgrade_database(settings)
    writer = make_session_factory(make_engine(settings))  # another process's engine: nothing shared
    reader_engine = make_engine(settings, reader=True)
    reader = make_session_factory(reader_engine)
    store = LocalBlobStore(tmp_path / "var" / "blobs")
    train_tiny_model(writer, store, settings, rows=20)

    def move(alias: str, version: int) -> None:
        with writer() as session:
            set_alias(session, get_model(session, "m"), alias, version, by=Mover(), reason=None)
            session.commit()

    def number(version: int | None = None, alias: str | None = None) -> int:
        with reader() as session:
            return find_target(session, "m", version=version, alias=alias).number

    statements: list[str] = []
    event.listen(reader_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert number() == number(alias="production") == 1
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2  # one each
    assert number(version=0) == 0
    move("candidate", 0)
    assert number(alias="candidate") == 0
    move("candidate", 1)
    assert number(alias="candidate") == 1
    move("production", 0)
    assert number() == 0
    with reader() as session:
        target = find_target(session, "m", version=1, alias=None)
    assert (target.model, target.architecture["kind"], [t["name"] for t in target.tasks]) == ("m", "mlp", ["t"])

    with reader() as session:
        for kwargs, refusal in [({"version": None, "alias": None, "model_name": "nope"}, "no model 'nope'"),
                                ({"version": None, "alias": "nope"}, "has no alias 'nope'"),
                                ({"version": 7, "alias": None}, "has no version 7")]:
            with pytest.raises(NotFound, match=refusal):
                find_target(session, kwargs.pop("model_name", "m"), **kwargs)
        with pytest.raises(Invalid, match="not both"):
            find_target(session, "m", version=1, alias="candidate")
