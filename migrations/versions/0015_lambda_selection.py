"""A model's λ selection (`models.lambda_selection`): how λ "auto" chooses when a task request does not say.

{"rule": "constrained" | "mean", "new_task_tolerance"} (app/models/lambda_selection.py); NULL, as for every
model made before this revision, means the defaults (constrained, 0.02), which is what their requests
without a rule already got.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place, never by batch mode's copy of the table (see 0008: a copy of `models` would cascade).
    with op.batch_alter_table("models", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("lambda_selection", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models", recreate="never") as batch_op:
        batch_op.drop_column("lambda_selection")
