"""Bring the database schema to the latest Alembic revision, from code (the service does it at start).

The Alembic scripts ship inside the package (`migrations/`), so this works from an installed
package as well as from a checkout; `alembic.ini` at the repository root is for the alembic CLI.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from app.settings import Settings

MIGRATIONS = Path(migrations.__file__).resolve().parent


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Percent signs in URLs (encoded passwords) would be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    config.attributes["settings"] = settings
    return config


def upgrade_database(settings: Settings) -> None:
    command.upgrade(alembic_config(settings), "head")
