"""A stage may end 'partial': it produced some of what it was asked for, not all.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("running", "succeeded", "failed", "skipped", "not_built")
NEW = ("running", "succeeded", "partial", "failed", "skipped", "not_built")


def _swap(values: tuple[str, ...]) -> None:
    allowed = ", ".join(f"'{v}'" for v in values)
    with op.batch_alter_table("stage_events") as batch:
        batch.drop_constraint(op.f("ck_stage_events_status"), type_="check")
        batch.create_check_constraint(op.f("ck_stage_events_status"), f"status IN ({allowed})")


def upgrade() -> None:
    _swap(NEW)


def downgrade() -> None:
    op.execute("UPDATE stage_events SET status = 'failed' WHERE status = 'partial'")
    _swap(OLD)
