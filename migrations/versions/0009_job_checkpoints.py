"""Resumable train jobs: the job row names its latest checkpoint (a blob) and the step it was taken at;
what a train job found that its result shows (the λ "auto" chose, every λ tried); and where its
progress stands within the run (epoch of epochs, λ trial of trials).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkpoint_blob", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("checkpoint_step", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("result_details", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("progress_detail", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("progress_detail")
        batch_op.drop_column("result_details")
        batch_op.drop_column("checkpoint_step")
        batch_op.drop_column("checkpoint_blob")
