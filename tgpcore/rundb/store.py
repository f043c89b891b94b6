"""What every part of the run-database repository shares: the engine, short sessions, and a
few helpers for checking and writing rows.

Each part (:mod:`~tgpcore.rundb.runs`, :mod:`~tgpcore.rundb.products`, …) is a small
:class:`Store` over one engine; :class:`tgpcore.rundb.repository.RunDB` composes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from tgpcore.rundb.engine import session_scope
from tgpcore.rundb.models import Base

CHUNK = 500  # rows per IN (...) list; well below SQLite's bound-parameter limit


class Store:
    """One concern of the run database over a shared engine.

    Every method opens and closes its own short transaction. Objects returned are detached
    with their attributes loaded, so they can be used after the call.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        An engine on a migrated database, e.g. from :func:`tgpcore.rundb.open_db`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    def _serialise(self, session: Session, name: str) -> None:
        """Make concurrent read-then-write sections on ``name`` run one at a time.

        On PostgreSQL this takes a transaction-level advisory lock; SQLite transactions are
        already serialised by ``BEGIN IMMEDIATE`` (see :func:`tgpcore.rundb.make_engine`).
        """
        serialise(session, name)


def serialise(session: Session, name: str) -> None:
    """Take a transaction-level lock on ``name`` (PostgreSQL; a no-op on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                        {"name": f"tgp-rundb:{name}"})


def check(value: str, allowed: Sequence[str], what: str) -> None:
    """Raise ValueError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def check_columns(record: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    """Raise ValueError if ``record`` has a key not in ``allowed``."""
    unknown = set(record) - allowed
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def finite(value: float | None) -> float | None:
    """``value`` as a float, with NaN as ``None`` (SQL NULL)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def as_dict(obj: Base) -> dict[str, Any]:
    """A row's columns as a plain dict."""
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}


def upsert(session: Session, model: type[Base], rows: list[dict[str, Any]],
           index_elements: tuple[str, ...]) -> None:
    """Insert rows, or update the given columns of rows that exist (by a unique key).

    PostgreSQL and SQLite use ``INSERT ... ON CONFLICT DO UPDATE``; other databases a
    query followed by inserts and updates. Rows with the same set of keys go in one
    statement.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    table = model.__table__
    name = session.get_bind().dialect.name
    for cols, group in groups.items():
        # One lock order for every writer, so concurrent upserts of one run cannot deadlock.
        group.sort(key=lambda r: tuple(r[c] for c in index_elements))
        update_cols = [c for c in cols if c not in index_elements]
        if name in ("postgresql", "sqlite"):
            if name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert
            else:
                from sqlalchemy.dialects.sqlite import insert
            stmt = insert(table)
            if update_cols:
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(index_elements),
                    set_={c: stmt.excluded[c] for c in update_cols})
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=list(index_elements))
            session.execute(stmt, group)
            continue
        for row in group:
            where = [table.c[c] == row[c] for c in index_elements]
            exists = session.execute(select(*[table.c[c] for c in index_elements])
                                     .where(*where)).first()
            if exists is None:
                session.execute(table.insert(), [row])
            elif update_cols:
                session.execute(table.update().where(*where)
                                .values({c: row[c] for c in update_cols}))
