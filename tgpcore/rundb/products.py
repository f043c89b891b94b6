"""Products: the files the stages write, keyed for reuse across runs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tgpcore.io.checksum import sha256_file
from tgpcore.rundb.coltypes import utcnow
from tgpcore.rundb.models import PRODUCT_STATUSES, Product
from tgpcore.rundb.store import Store, check


class ProductStore(Store):
    """Products by run and by key."""

    def record_product(self, run_id: str, kind: str, key: str, path: str | os.PathLike | None,
                       checksum: str | None, input_checksums: Mapping[str, Any] | None,
                       params: Mapping[str, Any] | None, software_version: str | None,
                       status: str = "ok") -> int:
        """Record a product; recording the same key again in a run updates its row.

        Parameters
        ----------
        run_id : str
        kind : str
            E.g. ``'master_bias'``, ``'calibrated'``, ``'stack'``.
        key : str
            Cache key: a digest of kind, input checksums, parameters and software version.
        path : path-like or None
            The product file (absolute paths let later runs find it from anywhere).
        checksum : str or None
            SHA-256 of the product file.
        input_checksums, params : mapping or None
        software_version : str or None
        status : {'ok', 'failed'}

        Returns
        -------
        int
            The product id.
        """
        check(status, PRODUCT_STATUSES, "product status")
        path_s = os.fspath(path) if path is not None else None
        size = None
        if path_s is not None and status == "ok":
            try:
                size = os.stat(path_s).st_size
            except FileNotFoundError:
                size = None
        values = {
            "kind": kind, "path": path_s, "checksum": checksum, "size_bytes": size,
            "input_checksums": dict(input_checksums) if input_checksums is not None else None,
            "params": dict(params) if params is not None else None,
            "software_version": software_version, "status": status, "created_at": utcnow(),
        }
        with self._session() as s:
            self._serialise(s, f"product:{run_id}:{key}")
            product = s.scalars(select(Product).where(Product.run_id == run_id,
                                                      Product.key == key)).first()
            if product is None:
                product = Product(run_id=run_id, key=key, **values)
                s.add(product)
            else:
                for name, value in values.items():
                    setattr(product, name, value)
            s.flush()
            return product.id

    def find_product(self, key: str) -> Product | None:
        """Return the latest ``ok`` product with this key, from any run, still on disk.

        A product counts as still there when its file exists with the recorded size; the
        checksum is not recomputed (see :meth:`verify_product`).
        """
        stmt = (select(Product).where(Product.key == key, Product.status == "ok")
                .order_by(Product.created_at.desc(), Product.id.desc()))
        with self._session() as s:
            candidates = list(s.scalars(stmt))
        for product in candidates:
            if product.path is None:
                continue
            try:
                size = os.stat(product.path).st_size
            except OSError:
                continue
            if product.size_bytes is None or size == product.size_bytes:
                return product
        return None

    def refresh_product(self, key: str, path: str | os.PathLike) -> int:
        """Record the new checksum and size of a product file changed in place on purpose
        (a WCS written into a stack), on every ``ok`` row of ``key`` that points at it, so
        that later runs still find and trust it. Returns the number of rows updated."""
        path_s = os.fspath(path)
        checksum, size = sha256_file(path_s), os.stat(path_s).st_size
        with self._session() as s:
            rows = list(s.scalars(select(Product).where(Product.key == key,
                                                        Product.path == path_s,
                                                        Product.status == "ok")))
            for product in rows:
                product.checksum, product.size_bytes = checksum, size
            return len(rows)

    @staticmethod
    def verify_product(product: Product) -> bool:
        """Return whether the product file exists and its SHA-256 matches the recorded one."""
        if product.path is None or product.checksum is None or not Path(product.path).is_file():
            return False
        return sha256_file(product.path) == product.checksum

    def products(self, run_id: str, kind: str | None = None) -> list[Product]:
        """Return the products recorded by a run, optionally of one kind."""
        stmt = select(Product).where(Product.run_id == run_id).order_by(Product.id)
        if kind is not None:
            stmt = stmt.where(Product.kind == kind)
        with self._session() as s:
            return list(s.scalars(stmt))

    def product_counts(self, run_id: str) -> dict[str, int]:
        """A run's products counted by status."""
        with self._session() as s:
            return dict(s.execute(select(Product.status, func.count())
                                  .where(Product.run_id == run_id)
                                  .group_by(Product.status)).all())
