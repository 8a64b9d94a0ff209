"""θ in parts: a version names its θ's groups (trunk blocks, heads) as separate content-addressed
blobs, so that versions and models share what did not change (app/versions/theta.py).

Existing versions keep `theta_parts` NULL: their `theta_blob` is one safetensors file with all of θ,
and it is read as before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("theta_parts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("theta_parts")
