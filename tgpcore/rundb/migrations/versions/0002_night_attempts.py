"""Night attempts: one row per try of a scheduled deployment at a night folder.

``nights`` keeps the current state of each night (done, failed, running); ``night_attempts``
keeps the history, so a night that failed is retried a bounded number of times and a claim
left by a killed worker can be told from one that is still running.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "night_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("night_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('done', 'failed', 'running')",
                           name=op.f("ck_night_attempts_status")),
        sa.ForeignKeyConstraint(["night_id"], ["nights.id"],
                                name=op.f("fk_night_attempts_night_id_nights"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"],
                                name=op.f("fk_night_attempts_run_id_runs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_night_attempts")),
    )
    op.create_index(op.f("ix_night_attempts_night_id"), "night_attempts", ["night_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_night_attempts_night_id"), table_name="night_attempts")
    op.drop_table("night_attempts")
