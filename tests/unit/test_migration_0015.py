"""Migration 0015 on the legacy database: models made before it get a NULL λ selection (the defaults), and
the column goes again on downgrade."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from alembic import command

from app.db.migrate import alembic_config
from app.models.lambda_selection import LambdaSelection
from app.settings import Settings

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_0006"


def columns(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[1] for row in connection.execute("PRAGMA table_info(models)")}


def test_0015_adds_a_null_lambda_selection_read_as_the_defaults_and_downgrades(tmp_path: Path) -> None:
    var = tmp_path / "var"
    shutil.copytree(FIXTURE, var)
    config, database = alembic_config(Settings(var_dir=var)), var / "lifelong.sqlite3"
    command.upgrade(config, "0014")
    assert "lambda_selection" not in columns(database)

    command.upgrade(config, "0015")
    with sqlite3.connect(database) as connection:
        stored = [row[0] for row in connection.execute("SELECT lambda_selection FROM models")]
    assert stored and all(value is None for value in stored)
    assert LambdaSelection.of(None).model_dump() == {"rule": "constrained", "new_task_tolerance": 0.02}

    command.downgrade(config, "0014")
    assert "lambda_selection" not in columns(database)
