"""Product lineage: which products each product was made from.

One row per parent -> child edge, recorded in the child's run, so that ``tgp lineage`` can
answer "what was this mosaic made from" (ancestors) and "what must be redone if this flat
changes" (descendants). Product checksums get an index: lineage is found by the checksums a
product was made from.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "product_lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"],
                                name=op.f("fk_product_lineage_run_id_runs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["parent_id"], ["products.id"],
                                name=op.f("fk_product_lineage_parent_id_products"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["child_id"], ["products.id"],
                                name=op.f("fk_product_lineage_child_id_products"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_lineage")),
        sa.UniqueConstraint("parent_id", "child_id",
                            name=op.f("uq_product_lineage_parent_id_child_id")),
    )
    op.create_index(op.f("ix_product_lineage_child_id"), "product_lineage", ["child_id"])
    op.create_index(op.f("ix_products_checksum"), "products", ["checksum"])


def downgrade() -> None:
    op.drop_index(op.f("ix_products_checksum"), table_name="products")
    op.drop_index(op.f("ix_product_lineage_child_id"), table_name="product_lineage")
    op.drop_table("product_lineage")
