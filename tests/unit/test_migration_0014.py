"""Migration 0014 on the legacy database: hook secrets stored in plain text before it come out encrypted
(decrypting to what they were, with the service's key), go back to plain text on downgrade, and the rebuilt
table never gives a deleted hook's id again."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from alembic import command

from app.db.migrate import alembic_config
from app.settings import Settings
from app.webhooks.secrets import SecretBox

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_0006"


def test_0014_encrypts_the_stored_secrets_and_downgrades_them_back(tmp_path: Path) -> None:
    var = tmp_path / "var"
    shutil.copytree(FIXTURE, var)
    settings = Settings(var_dir=var)
    config, database = alembic_config(settings), var / "lifelong.sqlite3"
    command.upgrade(config, "0013")
    with sqlite3.connect(database) as connection:
        [model_id] = connection.execute("SELECT id FROM models").fetchone()
        for n, secret in enumerate(["first secret", "second secret"], start=1):
            connection.execute("INSERT INTO webhooks (id, model_id, url, events, secret, created_at) VALUES "
                               "(?, ?, 'http://127.0.0.1:9/h', '[\"alias.moved\"]', ?, '2027-01-01 00:00:00')",
                               (n, model_id, secret))

    command.upgrade(config, "head")
    box = SecretBox.of(settings)
    with sqlite3.connect(database) as connection:
        sealed = dict(connection.execute("SELECT id, secret_encrypted FROM webhooks"))
        assert "secret" not in {row[1] for row in connection.execute("PRAGMA table_info(webhooks)")}
        connection.execute("DELETE FROM webhooks WHERE id = 2")
        connection.execute("INSERT INTO webhooks (model_id, url, events, secret_encrypted, created_at) VALUES "
                           "(?, 'http://127.0.0.1:9/h', '[]', ?, '2027-01-02 00:00:00')", (model_id, box.seal("x")))
        assert max(row[0] for row in connection.execute("SELECT id FROM webhooks")) == 3  # not 2 again
        connection.execute("DELETE FROM webhooks WHERE id = 3")
    assert {k: box.open(v) for k, v in sealed.items()} == {1: "first secret", 2: "second secret"}
    assert all("secret" not in value for value in sealed.values())

    command.downgrade(config, "0013")
    with sqlite3.connect(database) as connection:
        assert dict(connection.execute("SELECT id, secret FROM webhooks")) == {1: "first secret"}
