"""Aliases and promotion: movable names for versions, the history of their moves, a policy per model.

`models.head` stays, as the storage of the alias `production`; other aliases get a table of their own
(`aliases`), and every move of any alias a row of `alias_moves`. Each existing model's production is
recorded as one move (from nothing to its head, "carried over by migration 0008"), so that its history
starts where the aliases did. `models.promotion` is the model's promotion policy: existing models get
`auto`, the behaviour they had (every successful job moves production; also the column's default, for
rows written by code older than this), while the service creates new models `guarded` unless told.
`jobs.promotion` keeps what the policy made of a job's version; NULL for jobs that finished before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

AUTO = {"policy": "auto", "max_forgetting": 0.05, "min_accuracy": None}

models = sa.table("models", sa.column("id", sa.Integer), sa.column("head", sa.Integer))


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("model_id", "name", name="uq_aliases_model_name"),
    )
    op.create_index("ix_aliases_model_id", "aliases", ["model_id"])
    alias_moves = op.create_table(
        "alias_moves",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("key_prefix", sa.String(16), nullable=True),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("reason", sa.String(2000), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alias_moves_model_id", "alias_moves", ["model_id"])
    # Added in place, never by batch mode's copy of the table: with SQLite's foreign keys on, dropping the
    # old `models` would cascade to every version, task and job. The default fills existing rows.
    with op.batch_alter_table("models", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("promotion", sa.JSON(), nullable=False,
                                      server_default=sa.text(f"'{json.dumps(AUTO)}'")))
    with op.batch_alter_table("jobs", recreate="never") as batch_op:
        batch_op.add_column(sa.Column("promotion", sa.JSON(), nullable=True))

    connection = op.get_bind()
    rows = connection.execute(sa.select(models.c.id, models.c.head)).all()
    now = datetime.now(UTC)
    if rows:
        connection.execute(alias_moves.insert(), [
            {"model_id": row.id, "alias": "production", "from_version": None, "to_version": row.head,
             "reason": "carried over by migration 0008", "at": now} for row in rows
        ])


def downgrade() -> None:
    """Back to one head per model: production is kept (it is `models.head`); other aliases, the history
    and the policies are dropped."""
    for table in ("jobs", "models"):  # in place, as in the upgrade (SQLite ≥ 3.35 drops columns)
        with op.batch_alter_table(table, recreate="never") as batch_op:
            batch_op.drop_column("promotion")
    op.drop_index("ix_alias_moves_model_id", table_name="alias_moves")
    op.drop_table("alias_moves")
    op.drop_index("ix_aliases_model_id", table_name="aliases")
    op.drop_table("aliases")
