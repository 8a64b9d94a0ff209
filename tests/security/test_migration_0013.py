"""Migration 0013 (keys scoped to models) on a database with keys made before it: each keeps working and
reaches every model; a downgrade revokes the scoped keys (they would reach every model) and keeps the rest."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from app.auth.keys import create_key, find_key, model_scope_of
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config
from app.settings import Settings


def test_keys_made_before_0013_reach_every_model_and_survive_a_round_trip(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    config = alembic_config(settings)
    command.upgrade(config, "0012")
    engine = make_engine(settings)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO api_keys (prefix, name, scope, secret_sha256, created_at) VALUES "
                                   "('abcd1234', 'old', 'read', :sha, CURRENT_TIMESTAMP)"), {"sha": "0" * 64})
    command.upgrade(config, "0013")
    with engine.connect() as connection:
        old = connection.execute(sa.text("SELECT models, model_prefix FROM api_keys WHERE name = 'old'")).one()
    assert tuple(old) == (None, None)
    with make_session_factory(engine).begin() as session:
        token = create_key(session=session, scope="write", name="new", models=["b", "a"], model_prefix="team-").token
        plain = create_key(session=session, scope="read", name="plain").token
    with engine.connect() as connection:
        found = find_key(connection=connection, token=token)
        assert found is not None and sorted(model_scope_of(found).names or ()) == ["a", "b"]
        assert model_scope_of(found).reaches("team-x") and not model_scope_of(found).reaches("c")
        stored = connection.execute(sa.text("SELECT models FROM api_keys WHERE name = 'plain'")).scalar()
        assert stored is None  # SQL NULL, not a JSON null
    command.downgrade(config, "0012")
    with engine.connect() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("api_keys")}
        assert "models" not in columns and "model_prefix" not in columns
        assert connection.execute(sa.text("SELECT count(*) FROM api_keys")).scalar() == 3
    command.upgrade(config, "0013")
    with engine.connect() as connection:
        # revoked: without its scope it would reach every model
        assert find_key(connection=connection, token=token) is None
        found = find_key(connection=connection, token=plain)
        assert found is not None and model_scope_of(found).every_model
    engine.dispose()
