"""Product lineage in the run database (tgpcore.rundb.products) on SQLite and PostgreSQL:
parents given or found among a product's inputs, ancestors and descendants, ``tgp lineage``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tgpcore.io.checksum import product_key, sha256_file
from tgpcore.rundb import Product, ProductLineage, RunDB, session_scope
from tgpcore.rundb.products import format_lineage


def _file(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_text(f"content of {name}\n")
    return str(path)


def _record(db: RunDB, run_id: str, kind: str, path: str | None, inputs: dict,
            **kw: object) -> int:
    key = product_key(kind, inputs, {}, "test")
    checksum = sha256_file(path) if path else None
    return db.record_product(run_id, kind, key, path, checksum, inputs, {}, "test", **kw)


def _night(db: RunDB, tmp_path: Path) -> tuple[str, dict[str, int]]:
    """bias -> flat_V, flat_B; frames c1 (bias, flat_V), c2 (bias, flat_B); stacks s1 (c1),
    s2 (c2); mosaic m (s1, s2); catalogue k (m). Parents are given by id, path or found
    among the inputs (keys of masters, checksums of files)."""
    run = db.start_run("/data/night", "/out", "tgpsim", {}, "test")
    p = {n: _file(tmp_path, f"{n}.fits") for n in ("bias", "flat_V", "flat_B", "c1", "c2",
                                                    "s1", "s2", "m", "k")}
    ids: dict[str, int] = {}
    ids["bias"] = _record(db, run, "master_bias", p["bias"], {"members": ["0" * 64]})
    bias_key = db.resolve_product(ids["bias"]).key
    for f in ("flat_V", "flat_B"):  # the bias by its key among the inputs
        ids[f] = _record(db, run, "master_flat", p[f], {"members": [f], "bias": bias_key})
    ids["c1"] = _record(db, run, "calibrated", p["c1"], {"frame": "1" * 64},
                        parents=[ids["bias"], p["flat_V"]])  # by id and by path
    ids["c2"] = _record(db, run, "calibrated", p["c2"], {"frame": "2" * 64},
                        parents=[str(ids["bias"]), db.resolve_product(ids["flat_B"]).key])
    for s, c in (("s1", "c1"), ("s2", "c2")):  # the frames by their files' checksums
        ids[s] = _record(db, run, "stack", p[s], {"frames": [sha256_file(p[c])]})
    ids["m"] = _record(db, run, "mosaic", p["m"],
                       {"stacks": sorted(sha256_file(p[s]) for s in ("s1", "s2"))})
    ids["k"] = _record(db, run, "calibrated_catalog", p["k"], {"catalog": sha256_file(p["m"])})
    return run, ids


def _ids(products) -> list[int]:
    return [p.id for p in products]


def test_made_from_and_depending_on(rundb: RunDB, tmp_path: Path) -> None:
    _, ids = _night(rundb, tmp_path)
    name = {v: k for k, v in ids.items()}
    made_from = [name[i] for i in _ids(rundb.products_made_from(ids["m"]))]
    assert made_from[:2] == ["s1", "s2"], "parents come first"
    assert set(made_from) == {"s1", "s2", "c1", "c2", "bias", "flat_V", "flat_B"}
    assert len(made_from) == len(set(made_from)), "the bias reached three ways is listed once"

    redo = [name[i] for i in _ids(rundb.products_depending_on(ids["flat_V"]))]
    assert redo == ["c1", "s1", "m", "k"], "only what the V flat went into, nearest first"
    assert set(_ids(rundb.products_depending_on(ids["bias"]))) == set(ids.values()) - {ids["bias"]}
    assert rundb.products_made_from(ids["bias"]) == []
    assert rundb.products_depending_on(ids["k"]) == []
    assert _ids(rundb.parents_of(ids["c1"])) == [ids["bias"], ids["flat_V"]]
    assert _ids(rundb.children_of(ids["s1"])) == [ids["m"]]
    # the flats' bias was found among their inputs by its key; raw frames are not products
    assert _ids(rundb.parents_of(ids["flat_B"])) == [ids["bias"]]


def test_lookup_by_path_key_or_checksum(rundb: RunDB, tmp_path: Path) -> None:
    _, ids = _night(rundb, tmp_path)
    m = rundb.resolve_product(ids["m"])
    for ref in (m.path, Path(m.path), m.key, m.checksum, str(m.id), m):
        assert rundb.resolve_product(ref).id == m.id
        assert _ids(rundb.products_made_from(ref)) == _ids(rundb.products_made_from(m.id))
    with pytest.raises(KeyError, match="no product"):
        rundb.resolve_product(str(tmp_path / "nothing.fits"))
    with pytest.raises(KeyError, match="no product"):
        rundb.resolve_product(10**9)


def test_unknown_parent_records_nothing(rundb: RunDB, tmp_path: Path) -> None:
    run, ids = _night(rundb, tmp_path)
    before = len(rundb.products(run))
    with pytest.raises(KeyError):
        _record(rundb, run, "stack", _file(tmp_path, "s3.fits"), {},
                parents=[ids["c1"], str(tmp_path / "not-a-product.fits")])
    assert len(rundb.products(run)) == before, "product and lineage go in one transaction"


def test_recording_again_replaces_the_parents(rundb: RunDB, tmp_path: Path) -> None:
    run, ids = _night(rundb, tmp_path)
    s1 = rundb.resolve_product(ids["s1"])
    again = rundb.record_product(run, "stack", s1.key, s1.path, s1.checksum, s1.input_checksums,
                                 {}, "test", parents=[ids["c1"], ids["c2"]])
    assert again == ids["s1"]
    assert _ids(rundb.parents_of(ids["s1"])) == [ids["c1"], ids["c2"]]
    rundb.record_product(run, "stack", s1.key, s1.path, s1.checksum, s1.input_checksums,
                         {}, "test", parents=[])
    assert rundb.parents_of(ids["s1"]) == []
    assert ids["s1"] not in _ids(rundb.products_made_from(ids["m"])[2:])


def test_a_reused_product_links_within_its_run(rundb: RunDB, tmp_path: Path) -> None:
    """A second run reuses the masters and a calibrated frame (recorded again in that run):
    lineage in that run links its own rows, and a product is never its own parent."""
    run1, ids = _night(rundb, tmp_path)
    run2 = rundb.start_run("/data/night", "/out", "tgpsim", {}, "test")
    again = {}
    for n in ("bias", "flat_V", "c1"):
        p = rundb.resolve_product(ids[n])
        again[n] = rundb.record_product(run2, p.kind, p.key, p.path, p.checksum,
                                        p.input_checksums, {}, "test")
    assert rundb.parents_of(again["bias"]) == [], "not the first run's copy of itself"
    assert _ids(rundb.parents_of(again["flat_V"])) == [again["bias"]]
    assert rundb.parents_of(again["c1"]) == [], "its masters were given, not among its inputs"
    s = _record(rundb, run2, "stack", _file(tmp_path, "s_run2.fits"),
                {"frames": [rundb.resolve_product(again["c1"]).checksum]})
    assert _ids(rundb.parents_of(s)) == [again["c1"]], "this run's row of the frame"
    assert rundb.resolve_product(ids["c1"], run_id=run1).run_id == run1
    assert rundb.resolve_product(rundb.resolve_product(ids["c1"]).path, run_id=run2).id == \
        again["c1"]


def test_a_file_changed_in_place_is_a_parent_of_itself(rundb: RunDB, tmp_path: Path) -> None:
    """A stack whose WCS is written into its own file (recorded again as ``solved_stack``,
    with the same path and checksum): the solved stack is made from the stack; a catalogue
    keyed by its own file's checksum, recorded by two runs, is not its own parent."""
    run, ids = _night(rundb, tmp_path)
    s1 = rundb.resolve_product(ids["s1"])
    solved = _record(rundb, run, "solved_stack", s1.path, {"stack": s1.checksum})
    assert _ids(rundb.parents_of(solved)) == [ids["s1"]]
    gaia = _file(tmp_path, "gaia.ecsv")
    first = _record(rundb, run, "gaia_catalog", gaia, {"catalog": sha256_file(gaia)})
    run2 = rundb.start_run("/data/night", "/out", "tgpsim", {}, "test")
    second = _record(rundb, run2, "gaia_catalog", gaia, {"catalog": sha256_file(gaia)})
    assert rundb.parents_of(first) == [] and rundb.parents_of(second) == []


def test_edges_are_rows_of_the_run_and_go_with_their_products(rundb: RunDB,
                                                                tmp_path: Path) -> None:
    run, ids = _night(rundb, tmp_path)
    with session_scope(rundb.engine) as s:
        n = s.query(ProductLineage).filter_by(run_id=run).count()
    assert n == 11  # 2 flats, c1 x2, c2 x2, 2 stacks, mosaic x2, catalogue
    with session_scope(rundb.engine) as s:
        s.delete(s.get(Product, ids["m"]))
    with session_scope(rundb.engine) as s:
        assert s.query(ProductLineage).filter_by(run_id=run).count() == 8
    assert rundb.parents_of(ids["k"]) == []


def test_tree_and_cli(db_url: str, rundb: RunDB, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _, ids = _night(rundb, tmp_path)
    tree = rundb.lineage_tree(ids["m"])
    text = format_lineage(tree)
    lines = text.splitlines()
    assert lines[0].startswith("mosaic ") and f"#{ids['m']}," in lines[0]
    assert sum(1 for d, _ in tree.walk() if d == 1) == 2
    assert sum("master_bias" in line for line in lines) == 4, "under c1, c2 and both flats"
    assert "shown in full above" not in text, "no product with parents is reached twice"
    down = format_lineage(rundb.lineage_tree(ids["bias"], down=True))
    assert down.count("shown in full above") == 3, "the mosaic, c1 and c2 reached again"
    assert down.count("mosaic") == 2 and down.count("calibrated_catalog") == 1
    assert [n.product.kind for d, n in rundb.lineage_tree(ids["flat_V"], down=True).walk()] \
        == ["master_flat", "calibrated", "stack", "mosaic", "calibrated_catalog"]

    from flows.cli import main

    monkeypatch.setenv("TGP_DATABASE_URL", db_url)
    assert main(["lineage", rundb.resolve_product(ids["m"]).path, "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == text
    assert main(["lineage", str(ids["flat_B"]), "--down", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("master_flat ") and f"#{ids['flat_B']}," in out[0]
    assert any("mosaic" in line for line in out) and not any("flat_V" in line for line in out)
    assert main(["lineage", str(tmp_path / "nothing.fits"), "--out", str(tmp_path)]) == 1
