"""Queues: a model's default queue (cpu or gpu), and per job the queue it went to, the worker that
ran it and the device it ran on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(length=8), nullable=False, server_default="cpu"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue", sa.String(length=8), nullable=False, server_default="cpu"))
        batch_op.add_column(sa.Column("worker", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("device", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("device")
        batch_op.drop_column("worker")
        batch_op.drop_column("queue")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("queue")
