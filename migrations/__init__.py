"""Alembic migrations of the service's database; `app.db.migrate.upgrade_database` applies them."""
