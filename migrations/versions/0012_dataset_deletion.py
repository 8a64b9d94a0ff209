"""Datasets that can be deleted: a retention date per dataset, a record of each deletion, tasks that outlive their data.

`datasets.retain_until` (NULL: LIFELONG_DATASET_RETENTION_DAYS decides) is when the sweeper deletes the
dataset. `dataset_deletions` keeps one row per deletion (the dataset's row itself is gone): when, why, the
blob it named and when that blob was purged. `tasks.train_dataset_id` and `eval_dataset_id` stop being
foreign keys to `datasets`: a task, and the versions that learned it, outlive the deletion of their data.

SQLite cannot drop a foreign key, so `tasks` is rebuilt from an explicit copy of its definition without
them (env.py turns foreign keys off, so the rebuild cascades nowhere); PostgreSQL drops the two
constraints by the names it reflects.

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _table(*, dataset_keys: bool) -> sa.Table:
    """`tasks` as 0001 made it, with or without the two foreign keys to `datasets`."""
    metadata = sa.MetaData()

    def dataset_key() -> tuple[sa.ForeignKey, ...]:
        return (sa.ForeignKey("datasets.id"),) if dataset_keys else ()

    return sa.Table(
        "tasks", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("versions.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("num_classes", sa.Integer(), nullable=False),
        sa.Column("train_dataset_id", sa.String(32), *dataset_key(), nullable=False),
        sa.Column("eval_dataset_id", sa.String(32), *dataset_key(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_tasks_model_id", "model_id"),
    )


def _dataset_keys(bind: sa.engine.Connection) -> list[str]:
    return [fk["name"] for fk in sa.inspect(bind).get_foreign_keys("tasks")
            if fk["referred_table"] == "datasets" and fk.get("name")]


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("datasets", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "dataset_deletions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("blob", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blob_purged_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_dataset_deletions_dataset_id", "dataset_deletions", ["dataset_id"])
    op.create_index("ix_dataset_deletions_blob", "dataset_deletions", ["blob"])
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("tasks", recreate="always", copy_from=_table(dataset_keys=False)):
            pass
    else:
        for name in _dataset_keys(bind):
            op.drop_constraint(name, "tasks", type_="foreignkey")


def downgrade() -> None:
    bind = op.get_bind()
    # On PostgreSQL the foreign keys come back only if every task's datasets still exist (a deletion
    # makes the downgrade fail); SQLite rebuilds the table with foreign keys off and does not check.
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("tasks", recreate="always", copy_from=_table(dataset_keys=True)):
            pass
    else:
        op.create_foreign_key("tasks_train_dataset_id_fkey", "tasks", "datasets", ["train_dataset_id"], ["id"])
        op.create_foreign_key("tasks_eval_dataset_id_fkey", "tasks", "datasets", ["eval_dataset_id"], ["id"])
    op.drop_table("dataset_deletions")
    with op.batch_alter_table("datasets", recreate="never") as batch_op:
        batch_op.drop_column("retain_until")
