"""API keys scoped to models: `api_keys.models` (a JSON list of names) and `api_keys.model_prefix`.

Both NULL, as on every key made before, means every model (app/auth/scoping.py). The downgrade revokes
the keys that have a scope before dropping it: they would otherwise reach every model.

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("models", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("model_prefix", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # CAST: a JSON null (written by code that stored None as JSON) is no scope either; json has no `=` on PostgreSQL.
    op.execute("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE revoked_at IS NULL AND "
               "(model_prefix IS NOT NULL OR (models IS NOT NULL AND CAST(models AS TEXT) != 'null'))")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("model_prefix")
        batch_op.drop_column("models")
