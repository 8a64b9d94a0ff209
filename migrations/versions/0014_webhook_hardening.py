"""Webhook secrets encrypted at rest (`webhooks.secret` → `webhooks.secret_encrypted`), and hook ids never
reused (SQLite AUTOINCREMENT).

Each stored secret is encrypted with the service's key (app/webhooks/secrets.py: LIFELONG_WEBHOOK_SECRET_KEY,
else the key file in the var directory, made here if need be), so run this with the key the service will
run with. On SQLite the table is rebuilt with AUTOINCREMENT, which remembers the largest id ever given; ids
deleted before this revision and above the largest kept one are not known to it. Downgrading decrypts the
secrets back into `secret` (with the same key) and rebuilds the table without AUTOINCREMENT.

Revision ID: 0014
Revises: 0013
Create Date: 2027-01-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from app.settings import Settings
from app.webhooks.secrets import SecretBox

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

HOOKS = sa.table("webhooks", sa.column("id", sa.Integer()), sa.column("secret", sa.String(256)),
                 sa.column("secret_encrypted", sa.Text()))


def _box() -> SecretBox:
    settings = context.config.attributes.get("settings") or Settings()
    return SecretBox.of(settings)


def _recreate() -> str:
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table("webhooks", recreate=_recreate(), table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("secret_encrypted", sa.Text(), nullable=True))
    bind, box = op.get_bind(), _box()
    for hook_id, secret in bind.execute(sa.select(HOOKS.c.id, HOOKS.c.secret)).all():
        bind.execute(HOOKS.update().where(HOOKS.c.id == hook_id).values(secret_encrypted=box.seal(secret)))
    with op.batch_alter_table("webhooks", recreate=_recreate(), table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("secret_encrypted", existing_type=sa.Text(), nullable=False)
        batch.drop_column("secret")


def downgrade() -> None:
    with op.batch_alter_table("webhooks", recreate=_recreate()) as batch:
        batch.add_column(sa.Column("secret", sa.String(256), nullable=True))
    bind, box = op.get_bind(), _box()
    for hook_id, sealed in bind.execute(sa.select(HOOKS.c.id, HOOKS.c.secret_encrypted)).all():
        bind.execute(HOOKS.update().where(HOOKS.c.id == hook_id).values(secret=box.open(sealed)))
    with op.batch_alter_table("webhooks", recreate=_recreate()) as batch:
        batch.alter_column("secret", existing_type=sa.String(256), nullable=False)
        batch.drop_column("secret_encrypted")
