"""Task-free answers, flips and drift reports.

Each version's class statistics and fitted predictors, a model's choice of them, and each train
version's flips against its parent.

`versions.class_statistics` lists, per task in the order learned, the blob of its class statistics
(app/mas/class_statistics.py) and whether they were measured with this version's trunk;
`versions.task_free` names the fitted predictors' blobs and their held-back and eval scores;
`models.task_free` is the model's option (predictor, unknown_rate, projection). All three are NULL for
rows written before: such a version answers only requests that name a task, until a later train job
measures its tasks again. `versions.flips` is {task: {"negative", "positive", "n"}} on each earlier task's
eval set against the parent; NULL for versions made before (not measured). `drift_reports` keeps every
drift report; `models.drift_alpha` their level (NULL: 0.01); `shadows` each model's shadow and its counts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place, never by batch mode's copy of the table (see 0008: a copy of `models` would cascade).
    with op.batch_alter_table("versions", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("class_statistics", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("task_free", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("flips", sa.JSON(), nullable=True))
    with op.batch_alter_table("models", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("task_free", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("drift_alpha", sa.Float(), nullable=True))
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(32), nullable=False, unique=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("drift", sa.Boolean(), nullable=False),
        sa.Column("nearest_task", sa.String(64), nullable=True),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_drift_reports_model_id", "drift_reports", ["model_id"])
    op.create_table(
        "shadows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("compared", sa.Integer(), nullable=False),
        sa.Column("agreed", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("disagreements", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_drift_reports_created_at", "drift_reports", ["created_at"])


def downgrade() -> None:
    op.drop_table("shadows")
    op.drop_table("drift_reports")
    with op.batch_alter_table("models", recreate="never") as batch_op:
        batch_op.drop_column("drift_alpha")
        batch_op.drop_column("task_free")
    with op.batch_alter_table("versions", recreate="never") as batch_op:
        batch_op.drop_column("flips")
        batch_op.drop_column("task_free")
        batch_op.drop_column("class_statistics")
