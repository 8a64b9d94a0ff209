"""Per-task importance (MAS.md §4) and provenance.

A version kept Ω as a frozen sum (earlier tasks' means) and one open estimate (a sum with its count,
credited to the last task). It now keeps one estimate per task in `importance_parts`. Existing versions
are carried over without reading a blob: the frozen sum becomes one estimate named "(earlier tasks)"
with n = 1 (its mean is itself), and the open estimate becomes the last task's, with its count. Their
Ω for the next task is unchanged. `made_by` (how a version was made) starts NULL for existing rows.

The downgrade puts the frozen sum and the open estimate back together, which needs the blob store:
the frozen sum is Σ S_t/n_t of every estimate but the last, written as a new blob.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from app.mas.accumulation import TaskImportance, total_importance
from app.mas.tensors_io import tensors_from_bytes, tensors_to_bytes

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

EARLIER_TASKS = "(earlier tasks)"
EMPTY_BLOB = hashlib.sha256(tensors_to_bytes({})).hexdigest()

versions = sa.table(
    "versions",
    sa.column("id", sa.Integer), sa.column("tasks", sa.JSON), sa.column("importance_parts", sa.JSON),
    sa.column("omega_frozen_blob", sa.String), sa.column("omega_open_blob", sa.String),
    sa.column("n_open", sa.Integer),
)


def parts_of(frozen_blob: str, open_blob: str, n_open: int, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-task form of one old version's importance."""
    parts: list[dict[str, Any]] = []
    if frozen_blob != EMPTY_BLOB:
        parts.append({"task": EARLIER_TASKS, "blob": frozen_blob, "n": 1, "measure": None})
    if n_open > 0:
        last = tasks[-1]["name"] if tasks else EARLIER_TASKS
        if parts and last == EARLIER_TASKS:  # an open estimate with no task to own it: keep both apart
            last = f"{EARLIER_TASKS} open"
        parts.append({"task": last, "blob": open_blob, "n": n_open, "measure": None})
    return parts


def upgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("importance_parts", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("made_by", sa.JSON(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(versions.c.id, versions.c.omega_frozen_blob, versions.c.omega_open_blob,
                                        versions.c.n_open, versions.c.tasks)).all()
    for row in rows:
        parts = parts_of(row.omega_frozen_blob, row.omega_open_blob, row.n_open, row.tasks or [])
        connection.execute(versions.update().where(versions.c.id == row.id).values(importance_parts=parts))
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.alter_column("importance_parts", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_column("omega_frozen_blob")
        batch_op.drop_column("omega_open_blob")
        batch_op.drop_column("n_open")


def _blob_store() -> Any:
    from app.settings import Settings
    from app.store import open_blob_store

    return open_blob_store(context.config.attributes.get("settings") or Settings())


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("omega_frozen_blob", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("omega_open_blob", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("n_open", sa.Integer(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(versions.c.id, versions.c.importance_parts)).all()
    store = _blob_store() if rows else None
    if store is not None:
        store.put(tensors_to_bytes({}))  # the empty Ω a row without an estimate names
    for row in rows:
        parts = row.importance_parts or []
        frozen_blob, open_blob, n_open = EMPTY_BLOB, EMPTY_BLOB, 0
        if parts:
            *earlier, last = parts
            if earlier:
                estimates = (TaskImportance(tensors_from_bytes(store.get(p["blob"])), p["n"]) for p in earlier)
                frozen_blob = store.put(tensors_to_bytes(total_importance(estimates)))
            open_blob, n_open = last["blob"], last["n"]
        connection.execute(versions.update().where(versions.c.id == row.id).values(
            omega_frozen_blob=frozen_blob, omega_open_blob=open_blob, n_open=n_open))
    with op.batch_alter_table("versions", schema=None) as batch_op:
        for name, kind in (("omega_frozen_blob", sa.String(64)), ("omega_open_blob", sa.String(64)),
                           ("n_open", sa.Integer())):
            batch_op.alter_column(name, existing_type=kind, nullable=False)
        batch_op.drop_column("made_by")
        batch_op.drop_column("importance_parts")
