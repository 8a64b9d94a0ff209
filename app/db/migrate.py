"""Bring the database schema to the latest Alembic revision, from code (the service does it at start).

The Alembic scripts ship inside the package (`migrations/`), so this works from an installed
package as well as from a checkout; `alembic.ini` at the repository root is for the alembic CLI.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.settings import Settings

# Beside the `app` package both in a checkout and in site-packages (pyproject ships `migrations`).
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Percent signs in URLs (encoded passwords) would be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    config.attributes["settings"] = settings
    return config


def upgrade_database(settings: Settings) -> None:
    command.upgrade(alembic_config(settings), "head")
