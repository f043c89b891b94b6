"""Initial schema: runs, frames, calibration plan, products, stage events, QC, cache, nights.

Revision ID: 0001
Revises:
Create Date: 2025-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{column}"))


def _run_fk(table: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f(f"fk_{table}_run_id_runs"),
                                   ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        _ts("created_at", nullable=False),
        _ts("started_at"),
        _ts("finished_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("data_dir", sa.Text(), nullable=True),
        sa.Column("out_dir", sa.Text(), nullable=True),
        sa.Column("profile", sa.String(255), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("software_version", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        _one_of("runs", "status", ("running", "succeeded", "failed", "partial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_table(
        "cache_entries",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("request", sa.JSON(), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        _ts("created_at", nullable=False),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_cache_entries")),
    )
    op.create_table(
        "frames",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("filter", sa.String(64), nullable=True),
        sa.Column("exptime_s", sa.Float(), nullable=True),
        sa.Column("object", sa.String(255), nullable=True),
        sa.Column("cluster", sa.String(255), nullable=True),
        sa.Column("pointing", sa.String(255), nullable=True),
        sa.Column("group_key", sa.String(255), nullable=True),
        sa.Column("binning", sa.String(16), nullable=True),
        sa.Column("naxis1", sa.Integer(), nullable=True),
        sa.Column("naxis2", sa.Integer(), nullable=True),
        sa.Column("date_obs", sa.String(64), nullable=True),
        sa.Column("airmass", sa.Float(), nullable=True),
        sa.Column("profile", sa.String(255), nullable=True),
        sa.Column("header", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _one_of("frames", "kind", ("bias", "dark", "flat", "science", "standard", "unknown")),
        _one_of("frames", "status", ("accepted", "rejected")),
        _run_fk("frames"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_frames")),
        sa.UniqueConstraint("run_id", "path", name=op.f("uq_frames_run_id_path")),
    )
    op.create_index(op.f("ix_frames_sha256"), "frames", ["sha256"])
    op.create_table(
        "nights",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        _ts("processed_at"),
        _one_of("nights", "status", ("done", "failed", "running")),
        _run_fk("nights", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nights")),
        sa.UniqueConstraint("path", name=op.f("uq_nights_path")),
    )
    op.create_table(
        "plan_masters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("filter", sa.String(64), nullable=True),
        sa.Column("binning", sa.String(16), nullable=True),
        sa.Column("shape", sa.String(32), nullable=True),
        sa.Column("exptime_s", sa.Float(), nullable=True),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("depends", sa.JSON(), nullable=True),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        _one_of("plan_masters", "kind", ("bias", "dark", "flat")),
        _run_fk("plan_masters"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_masters")),
        sa.UniqueConstraint("run_id", "key", name=op.f("uq_plan_masters_run_id_key")),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("checksum", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("input_checksums", sa.JSON(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("software_version", sa.String(64), nullable=True),
        _ts("created_at", nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _one_of("products", "status", ("ok", "failed")),
        _run_fk("products"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("run_id", "key", name=op.f("uq_products_run_id_key")),
    )
    op.create_index(op.f("ix_products_key"), "products", ["key"])
    op.create_table(
        "stage_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        _ts("started_at", nullable=False),
        _ts("finished_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        _one_of("stage_events", "status",
                ("running", "succeeded", "failed", "skipped", "not_built")),
        _run_fk("stage_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_events")),
    )
    op.create_index(op.f("ix_stage_events_run_id_stage"), "stage_events", ["run_id", "stage"])
    op.create_table(
        "plan_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("frame_id", sa.Integer(), nullable=False),
        sa.Column("bias_key", sa.String(255), nullable=True),
        sa.Column("dark_key", sa.String(255), nullable=True),
        sa.Column("dark_scale", sa.Float(), nullable=True),
        sa.Column("flat_key", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=False),
        _one_of("plan_entries", "status", ("ok", "refused")),
        sa.ForeignKeyConstraint(["frame_id"], ["frames.id"],
                                name=op.f("fk_plan_entries_frame_id_frames"), ondelete="CASCADE"),
        _run_fk("plan_entries"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_entries")),
        sa.UniqueConstraint("run_id", "frame_id", name=op.f("uq_plan_entries_run_id_frame_id")),
    )
    op.create_table(
        "qc_metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("frame_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(["frame_id"], ["frames.id"],
                                name=op.f("fk_qc_metrics_frame_id_frames"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"],
                                name=op.f("fk_qc_metrics_product_id_products"), ondelete="CASCADE"),
        _run_fk("qc_metrics"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qc_metrics")),
    )
    op.create_index(op.f("ix_qc_metrics_run_id_key"), "qc_metrics", ["run_id", "key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_qc_metrics_run_id_key"), table_name="qc_metrics")
    op.drop_table("qc_metrics")
    op.drop_table("plan_entries")
    op.drop_index(op.f("ix_stage_events_run_id_stage"), table_name="stage_events")
    op.drop_table("stage_events")
    op.drop_index(op.f("ix_products_key"), table_name="products")
    op.drop_table("products")
    op.drop_table("plan_masters")
    op.drop_table("nights")
    op.drop_index(op.f("ix_frames_sha256"), table_name="frames")
    op.drop_table("frames")
    op.drop_table("cache_entries")
    op.drop_table("runs")
