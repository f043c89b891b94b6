"""Products: the files the stages write, keyed for reuse across runs, and their lineage.

A product's parents are the products it was made from. They are recorded with it: given
(``parents=``), or found among its inputs (``input_checksums``): every input that is the key
or the file checksum of a recorded product names a parent. So a calibrated frame's parents
are its masters, a stack's its calibrated frames, a mosaic's its stacks, without the stages
saying more than what they already key their products by.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import Session

from tgpcore.io.checksum import sha256_file
from tgpcore.rundb.coltypes import utcnow
from tgpcore.rundb.models import PRODUCT_STATUSES, Product, ProductLineage
from tgpcore.rundb.store import Store, check, chunks

ProductRef = Union[int, str, os.PathLike, Product]  # noqa: UP007 - a runtime alias
"""A product named by its id, its file path, its key or file checksum, or itself."""

_DIGEST = re.compile(r"[0-9a-f]{64}")


def _digests(value: Any) -> Iterator[str]:
    """Every SHA-256 hex string in a JSON-like value (nested dicts and lists)."""
    if isinstance(value, str):
        if _DIGEST.fullmatch(value):
            yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _digests(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _digests(v)


def _pick(candidates: list[Product], run_id: str | None) -> Product | None:
    """The candidate of this run if any, else the latest ``ok`` one, else the latest."""
    if not candidates:
        return None
    return max(candidates, key=lambda p: (p.run_id == run_id, p.status == "ok",
                                          p.created_at, p.id))


def _direction(down: bool) -> tuple[Any, Any]:
    """(this end, next end) of a lineage edge, walking to children if ``down``."""
    if down:
        return ProductLineage.parent_id, ProductLineage.child_id
    return ProductLineage.child_id, ProductLineage.parent_id


@dataclass
class LineageNode:
    """A product in a lineage tree, with the products next to it in the walk's direction
    (its parents going up, its children going down).

    ``repeated`` marks a product already shown elsewhere in the tree, whose own links are
    not shown again.
    """

    product: Product
    links: list[LineageNode] = field(default_factory=list)
    repeated: bool = False

    def walk(self, depth: int = 0) -> Iterator[tuple[int, LineageNode]]:
        """(depth, node) of this node and every node below it, depth first."""
        yield depth, self
        for link in self.links:
            yield from link.walk(depth + 1)


class ProductStore(Store):
    """Products by run and by key."""

    def record_product(self, run_id: str, kind: str, key: str, path: str | os.PathLike | None,
                       checksum: str | None, input_checksums: Mapping[str, Any] | None,
                       params: Mapping[str, Any] | None, software_version: str | None,
                       status: str = "ok",
                       parents: Sequence[ProductRef] | None = None) -> int:
        """Record a product and its parents; recording the same key again in a run updates
        its row and records its parents anew.

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
        parents : sequence of int, str, path-like or Product, optional
            The products it was made from, by id, path, key or checksum (see
            :meth:`resolve_product`). By default, the products whose key or file checksum is
            among ``input_checksums`` (one per input: this run's if there is one, else the
            latest), leaving out this product's own key as recorded by other runs.
            ``[]`` records none.

        Returns
        -------
        int
            The product id.

        Raises
        ------
        KeyError
            If a parent given in ``parents`` is not a recorded product.
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
            if parents is not None:
                parent_ids = [self._resolve(s, ref, run_id).id for ref in parents]
            elif status == "ok":
                parent_ids = self._parents_from_inputs(s, product, input_checksums)
            else:
                parent_ids = []
            self._link(s, run_id, product.id, parent_ids)
            return product.id

    # lineage --------------------------------------------------------------------------------

    @staticmethod
    def _link(s: Session, run_id: str, child_id: int, parent_ids: Sequence[int]) -> None:
        s.execute(delete(ProductLineage).where(ProductLineage.child_id == child_id))
        rows = [{"run_id": run_id, "parent_id": p, "child_id": child_id}
                for p in dict.fromkeys(parent_ids) if p != child_id]
        if rows:
            s.execute(insert(ProductLineage), rows)

    @staticmethod
    def _parents_from_inputs(s: Session, child: Product,
                             inputs: Mapping[str, Any] | None) -> list[int]:
        digests = list(dict.fromkeys(_digests(inputs or {})))
        found: dict[str, list[Product]] = {}
        for chunk in chunks(digests):
            stmt = select(Product).where(
                Product.status == "ok", Product.id != child.id,
                or_(Product.key.in_(chunk), Product.checksum.in_(chunk)))
            for p in s.scalars(stmt):
                if p.key == child.key:
                    continue  # the same product, recorded by another run
                for d in {p.key, p.checksum} & set(chunk):
                    found.setdefault(d, []).append(p)
        picked = (_pick(found.get(d, []), child.run_id) for d in digests)
        return [p.id for p in picked if p is not None]

    @staticmethod
    def _resolve(s: Session, ref: ProductRef, run_id: str | None = None) -> Product:
        if isinstance(ref, Product):
            ref = ref.id
        if isinstance(ref, str) and ref.isdigit():
            ref = int(ref)
        if isinstance(ref, int):
            product = s.get(Product, ref)
            if product is None:
                raise KeyError(f"no product with id {ref}")
            return product
        text = os.fspath(ref)
        if _DIGEST.fullmatch(text):
            for col in (Product.key, Product.checksum):
                product = _pick(list(s.scalars(select(Product).where(col == text))), run_id)
                if product is not None:
                    return product
        paths = list(dict.fromkeys([text, os.path.abspath(text), str(Path(text).resolve())]))
        product = _pick(list(s.scalars(select(Product).where(Product.path.in_(paths)))), run_id)
        if product is None:
            raise KeyError(f"no product recorded as {text!r} (an id, path, key or checksum)")
        return product

    def resolve_product(self, ref: ProductRef, run_id: str | None = None) -> Product:
        """The product named by an id, a file path, a key or a file checksum.

        Several rows can name one file (a product reused by later runs is recorded in each):
        the one of ``run_id`` is taken if there is one, else the latest ``ok`` one.

        Raises
        ------
        KeyError
            If no product matches.
        """
        with self._session() as s:
            return self._resolve(s, ref, run_id)

    def _edges(self, start: int, down: bool) -> list[tuple[int, int]]:
        """(from, to) edges reachable from ``start``: towards parents, or children if
        ``down``; breadth first, each product expanded once."""
        near, far = _direction(down)
        edges: list[tuple[int, int]] = []
        seen, frontier = {start}, [start]
        with self._session() as s:
            while frontier:
                nxt: list[int] = []
                for chunk in chunks(frontier):
                    stmt = (select(near, far).where(near.in_(chunk))
                            .order_by(near, ProductLineage.id))
                    for a, b in s.execute(stmt):
                        edges.append((a, b))
                        if b not in seen:
                            seen.add(b)
                            nxt.append(b)
                frontier = nxt
        return edges

    def _load(self, ids: Sequence[int]) -> dict[int, Product]:
        out: dict[int, Product] = {}
        with self._session() as s:
            for chunk in chunks(list(ids)):
                out.update({p.id: p for p in s.scalars(select(Product)
                                                        .where(Product.id.in_(chunk)))})
        return out

    def _related(self, product: ProductRef, down: bool) -> list[Product]:
        start = self.resolve_product(product).id
        order = list(dict.fromkeys(b for _, b in self._edges(start, down)))
        order = [i for i in order if i != start]
        rows = self._load(order)
        return [rows[i] for i in order]

    def _next(self, product: ProductRef, down: bool) -> list[Product]:
        near, far = _direction(down)
        with self._session() as s:
            pid = self._resolve(s, product).id
            return list(s.scalars(select(Product).join(ProductLineage, far == Product.id)
                                  .where(near == pid).order_by(ProductLineage.id)))

    def parents_of(self, product: ProductRef) -> list[Product]:
        """The products this product was made from, directly."""
        return self._next(product, down=False)

    def children_of(self, product: ProductRef) -> list[Product]:
        """The products made from this product, directly."""
        return self._next(product, down=True)

    def products_made_from(self, product: ProductRef) -> list[Product]:
        """Every product this one was made from, parents first, then theirs (ancestors).

        "What was this mosaic made from": its stacks, their calibrated frames, their masters.
        """
        return self._related(product, down=False)

    def products_depending_on(self, product: ProductRef) -> list[Product]:
        """Every product made from this one, children first, then theirs (descendants).

        "What must be redone if this flat changes": the frames calibrated with it, the stacks
        of those, the mosaics and catalogues after them.
        """
        return self._related(product, down=True)

    def lineage_tree(self, product: ProductRef, down: bool = False) -> LineageNode:
        """The lineage of a product as a tree: its parents (or children if ``down``), theirs,
        and so on. A product reached twice is shown once in full and then marked
        ``repeated``."""
        start = self.resolve_product(product)
        edges = self._edges(start.id, down)
        links: dict[int, list[int]] = {}
        for a, b in edges:
            links.setdefault(a, []).append(b)
        rows = self._load(list({b for _, b in edges}))
        rows[start.id] = start
        shown: set[int] = set()

        def build(pid: int, path: tuple[int, ...]) -> LineageNode:
            node = LineageNode(rows[pid])
            if pid in shown:
                node.repeated = bool(links.get(pid))
                return node
            shown.add(pid)
            node.links = [build(b, (*path, pid)) for b in links.get(pid, [])
                          if b not in path]
            return node

        return build(start.id, ())

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


def format_lineage(tree: LineageNode) -> str:
    """A lineage tree as indented text, one product a line: kind, file, id, run."""

    def label(node: LineageNode) -> str:
        p = node.product
        where = p.path if p.path else f"key {p.key[:12]}…"
        status = "" if p.status == "ok" else f" [{p.status}]"
        more = " (shown in full above)" if node.repeated else ""
        return f"{p.kind}  {where}  (#{p.id}, run {p.run_id[:8]}){status}{more}"

    lines = [label(tree)]

    def add(node: LineageNode, prefix: str) -> None:
        for i, link in enumerate(node.links):
            last = i == len(node.links) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{label(link)}")
            add(link, prefix + ("    " if last else "│   "))

    add(tree, "")
    return "\n".join(lines)
