"""SQLAlchemy models of the run database.

One row per run, per inventoried frame, per calibration-plan master and entry, per product,
per stage event and per QC figure; the parent -> child edges between products; plus a cache of network answers, the list of nights a
scheduled deployment has processed and its attempts at each. The schema itself is created by the Alembic migrations
in ``tgpcore/rundb/migrations``; keep both in step (``alembic revision --autogenerate``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tgpcore.rundb.coltypes import UTCDateTime, utcnow

RUN_STATUSES = ("running", "succeeded", "failed", "partial", "abandoned")
FRAME_KINDS = ("bias", "dark", "flat", "science", "standard", "unknown")
FRAME_STATUSES = ("accepted", "rejected")
MASTER_KINDS = ("bias", "dark", "flat")
PLAN_STATUSES = ("ok", "refused")
PRODUCT_STATUSES = ("ok", "failed")
STAGE_STATUSES = ("running", "succeeded", "partial", "failed", "skipped", "not_built")
NIGHT_STATUSES = ("done", "failed", "running")
ALARM_LEVELS = ("warning", "error")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


class Base(DeclarativeBase):
    """Declarative base; constraint names follow :data:`NAMING_CONVENTION`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSON(none_as_null=True),
        list[Any]: JSON(none_as_null=True),
    }

    def __repr__(self) -> str:
        identity = inspect(self).identity
        pk = ", ".join(map(repr, identity)) if identity else "pending"
        return f"<{type(self).__name__} {pk}>"


class Run(Base):
    """One pipeline run over one night's data."""

    __tablename__ = "runs"
    __table_args__ = (_one_of("status", RUN_STATUSES),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    data_dir: Mapped[str | None] = mapped_column(Text)
    out_dir: Mapped[str | None] = mapped_column(Text)
    profile: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any] | None]
    software_version: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[dt.datetime | None]
    pid: Mapped[int | None]
    host: Mapped[str | None] = mapped_column(String(255))


class Frame(Base):
    """One raw file found by the inventory, accepted or rejected (with the reason)."""

    __tablename__ = "frames"
    __table_args__ = (
        UniqueConstraint("run_id", "path"),
        _one_of("kind", FRAME_KINDS),
        _one_of("status", FRAME_STATUSES),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16), default="unknown")
    filter: Mapped[str | None] = mapped_column(String(64))
    exptime_s: Mapped[float | None] = mapped_column(Float)
    object: Mapped[str | None] = mapped_column(String(255))
    cluster: Mapped[str | None] = mapped_column(String(255))
    pointing: Mapped[str | None] = mapped_column(String(255))
    group_key: Mapped[str | None] = mapped_column(String(255))
    binning: Mapped[str | None] = mapped_column(String(16))
    naxis1: Mapped[int | None]
    naxis2: Mapped[int | None]
    date_obs: Mapped[str | None] = mapped_column(String(64))
    airmass: Mapped[float | None] = mapped_column(Float)
    profile: Mapped[str | None] = mapped_column(String(255))
    header: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    reason: Mapped[str | None] = mapped_column(Text)


class PlanMaster(Base):
    """A master calibration frame the plan asks for: members, matching rule, what it needs.

    ``depends`` names the masters it is built with, e.g. ``{"bias": "bias_1x1_1024x1024"}``.
    """

    __tablename__ = "plan_masters"
    __table_args__ = (UniqueConstraint("run_id", "key"), _one_of("kind", MASTER_KINDS))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    filter: Mapped[str | None] = mapped_column(String(64))
    binning: Mapped[str | None] = mapped_column(String(16))
    shape: Mapped[str | None] = mapped_column(String(32))
    exptime_s: Mapped[float | None] = mapped_column(Float)
    members: Mapped[list[Any]] = mapped_column(default=list)
    depends: Mapped[dict[str, Any] | None]
    rule: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[Any]] = mapped_column(default=list)


class PlanEntry(Base):
    """Which masters one frame is calibrated with, or why it is refused."""

    __tablename__ = "plan_entries"
    __table_args__ = (UniqueConstraint("run_id", "frame_id"), _one_of("status", PLAN_STATUSES))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    frame_id: Mapped[int] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    bias_key: Mapped[str | None] = mapped_column(String(255))
    dark_key: Mapped[str | None] = mapped_column(String(255))
    dark_scale: Mapped[float | None] = mapped_column(Float)
    flat_key: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="ok")
    reason: Mapped[str | None] = mapped_column(Text)
    warnings: Mapped[list[Any]] = mapped_column(default=list)


class Product(Base):
    """A file a task wrote, keyed by kind, input checksums, parameters and software version.

    ``size_bytes`` (not in the first sketch of the schema) lets a lookup check that the file
    on disk is still the one recorded without re-hashing it.
    """

    __tablename__ = "products"
    __table_args__ = (UniqueConstraint("run_id", "key"), _one_of("status", PRODUCT_STATUSES))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255), index=True)
    path: Mapped[str | None] = mapped_column(Text)
    checksum: Mapped[str | None] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    input_checksums: Mapped[dict[str, Any] | None]
    params: Mapped[dict[str, Any] | None]
    software_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="ok")


class ProductLineage(Base):
    """One edge of the product graph: ``child`` was made from ``parent`` (in run ``run_id``).

    Recorded with the child (:meth:`tgpcore.rundb.products.ProductStore.record_product`);
    a child recorded again gets its parents anew.
    """

    __tablename__ = "product_lineage"
    __table_args__ = (UniqueConstraint("parent_id", "child_id"), Index(None, "child_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    parent_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    child_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))


class StageEvent(Base):
    """One stage of one run: when it ran, how it ended and its counters."""

    __tablename__ = "stage_events"
    __table_args__ = (
        Index(None, "run_id", "stage"),
        _one_of("status", STAGE_STATUSES),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    counters: Mapped[dict[str, Any] | None]
    message: Mapped[str | None] = mapped_column(Text)


class QCMetric(Base):
    """A quality-control figure of a run, optionally about one frame or one product.

    (run_id, frame_id, product_id, key) is unique by construction in
    :meth:`tgpcore.rundb.repository.RunDB.add_qc`, not by a constraint, since NULLs are
    distinct in SQL unique constraints.
    """

    __tablename__ = "qc_metrics"
    __table_args__ = (Index(None, "run_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id", ondelete="CASCADE"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(32))


class AlarmRecord(Base):
    """An alarm raised by a stage (:class:`tgpcore.qc.alarms.Alarm`)."""

    __tablename__ = "alarms"
    __table_args__ = (Index(None, "run_id"), _one_of("level", ALARM_LEVELS))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CacheEntry(Base):
    """A cached answer of a network service (Gaia, VizieR, nova.astrometry.net)."""

    __tablename__ = "cache_entries"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    service: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any] | None]
    response: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]


class Night(Base):
    """A raw night directory and whether a scheduled deployment has processed it."""

    __tablename__ = "nights"
    __table_args__ = (UniqueConstraint("path"), _one_of("status", NIGHT_STATUSES))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    processed_at: Mapped[dt.datetime | None]


class NightAttempt(Base):
    """One try of a scheduled deployment at a night (who, when, how it ended, which run)."""

    __tablename__ = "night_attempts"
    __table_args__ = (Index(None, "night_id"), _one_of("status", NIGHT_STATUSES))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    night_id: Mapped[int] = mapped_column(ForeignKey("nights.id", ondelete="CASCADE"))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    worker: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    message: Mapped[str | None] = mapped_column(Text)
