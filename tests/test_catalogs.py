"""Catalogue access without the network: retries, caches, credentials, files, VizieR.

Every service here is a fake HTTP server on 127.0.0.1 answering with astroquery's recorded
responses (a real Gaia DR3 VOTable, a real VizieR VOTable) or a small hand-written VOTable with
the real column names of Cantat-Gaudin et al. (2020).
"""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import astroquery
import numpy as np
import pytest
from astropy.table import Table

from tgpcore.catalogs import (
    CatalogUnavailableError,
    DirectoryCache,
    GaiaArchive,
    GaiaConeRequest,
    GaiaCredentials,
    MissingColumnError,
    RetriesExhaustedError,
    RetryPolicy,
    VizierService,
    call_with_retries,
    cantat_gaudin_2020_cluster,
    gaia_cone_adql,
    gaia_credentials_from_env,
    query_gaia_cone,
    query_vizier,
    read_catalog_file,
)
from tgpcore.catalogs.columns import GAIA_QUERY_COLUMNS

AQ = Path(astroquery.__file__).parent
GAIA_VOT = (AQ / "gaia/tests/data/1710099405832VAL-result.vot").read_bytes()  # 2 real DR3 rows
VIZ_XML = (AQ / "vizier/tests/data/viz.xml").read_bytes()
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, jitter=0.5, timeout=10.0)

CG2020_VOT = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE name="J/A+A/640/A1"><TABLE name="J/A+A/640/A1/table1">
<FIELD name="Cluster" datatype="char" arraysize="*"/>
<FIELD name="RA_ICRS" datatype="double" unit="deg"/><FIELD name="DE_ICRS" datatype="double" unit="deg"/>
<FIELD name="plx" datatype="double" unit="mas"/><FIELD name="pmRA_" datatype="double" unit="mas/yr"/>
<FIELD name="pmDE" datatype="double" unit="mas/yr"/><FIELD name="AgeNN" datatype="double"/>
<FIELD name="AVNN" datatype="double" unit="mag"/><FIELD name="DMNN" datatype="double" unit="mag"/>
<DATA><TABLEDATA><TR><TD>NGC_2682</TD><TD>132.846</TD><TD>11.814</TD><TD>1.135</TD>
<TD>-10.986</TD><TD>-2.964</TD><TD>9.63</TD><TD>0.07</TD><TD>9.75</TD></TR></TABLEDATA></DATA>
</TABLE></RESOURCE></VOTABLE>
"""


class FakeService(http.server.ThreadingHTTPServer):
    """A TAP / VizieR stand-in: ``fail_first`` requests get HTTP 503, then ``body``."""

    def __init__(self, body: bytes, fail_first: int = 0, always_fail: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body, self.fail_first, self.always_fail = body, fail_first, always_fail
        self.requests: list[tuple[str, str, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FakeService

    def _send(self, code: int, body: bytes = b"", headers: tuple = ()) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/x-votable+xml")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _failing(self) -> bool:
        srv = self.server
        n_posts = sum(1 for r in srv.requests if r[0] == "POST")
        return srv.always_fail or n_posts <= srv.fail_first

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append(("POST", self.path, body))
        if self._failing():
            self._send(503, b"<html><body>Service Unavailable</body></html>")
        elif self.path.endswith("/tap/async"):  # TAP: a job, then its phase and result
            self._send(303, headers=[("Location", f"{self.server.url}tap-server/tap/async/J1")])
        else:
            self._send(200, self.server.body)

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(("GET", self.path, b""))
        if self.path.endswith("/phase"):
            self._send(200, b"COMPLETED")
        elif self.path.endswith("/results/result"):
            self._send(200, self.server.body)
        else:
            self._send(404)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def service(request) -> Iterator[FakeService]:
    body, fail_first, always = getattr(request, "param", (GAIA_VOT, 0, False))
    srv = FakeService(body, fail_first, always)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@contextmanager
def fake_vizier(body: bytes) -> Iterator[tuple[FakeService, VizierService]]:
    """A :class:`FakeService` answering ``body``, serving in a thread until the block ends, and
    a :class:`VizierService` that asks it."""
    srv = FakeService(body)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv, VizierService(server=f"127.0.0.1:{srv.server_port}", scheme="http",
                                 timeout_s=5)
    finally:
        srv.shutdown()


def _cone(srv: FakeService, **kw) -> Table:
    sleeps: list[float] = []
    t = query_gaia_cone(132.8, 11.8, 0.1, archive=GaiaArchive(srv.url, socket_timeout_s=5),
                        policy=FAST, sleep=sleeps.append, **kw)
    t.meta["sleeps"] = sleeps
    return t


# --- retries ------------------------------------------------------------------------------

def test_call_with_retries_backs_off_then_succeeds():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset by peer")
        return "ok"

    assert call_with_retries(flaky, attempts=4, base_delay=1.0, max_delay=1.5, jitter=0.0,
                             timeout=None, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and sleeps == [1.0, 1.5]  # 1 s, then 2 s capped at 1.5 s


def test_call_with_retries_jitter_shortens_delays():
    import random

    sleeps: list[float] = []
    with pytest.raises(RetriesExhaustedError) as exc:
        call_with_retries(lambda: (_ for _ in ()).throw(TimeoutError("slow")), attempts=4,
                          base_delay=1.0, max_delay=30.0, jitter=0.5, timeout=None,
                          sleep=sleeps.append, rng=random.Random(1), what="thing")
    assert exc.value.attempts == 4 and "thing failed after 4 attempt(s)" in str(exc.value)
    assert all(0.5 * 2**k <= s <= 2**k for k, s in enumerate(sleeps)) and len(sleeps) == 3


def test_call_with_retries_does_not_retry_bugs_or_client_errors():
    calls = []

    def bug():
        calls.append(1)
        raise ValueError("bad ADQL")

    with pytest.raises(ValueError):
        call_with_retries(bug, attempts=5, sleep=lambda s: None)
    assert len(calls) == 1
    with pytest.raises(OSError):
        call_with_retries(lambda: (_ for _ in ()).throw(OSError("Error 400:\nsyntax")),
                          attempts=5, sleep=lambda s: None)


def test_call_with_retries_times_out_a_hung_attempt():
    import time

    with pytest.raises(RetriesExhaustedError) as exc:
        call_with_retries(lambda: time.sleep(5), attempts=2, base_delay=0.0, timeout=0.2,
                          sleep=lambda s: None)
    assert isinstance(exc.value.last_error, TimeoutError)


# --- Gaia against a fake TAP server --------------------------------------------------------

def test_gaia_cone_parses_recorded_dr3_answer(service):
    t = _cone(service)
    assert len(t) == 2 and t.meta["tgp_origin"] == "network"
    assert {"source_id", "pmra", "parallax_error", "ruwe", "phot_g_mean_mag"} <= set(t.colnames)
    assert t["pmra"].unit == "mas / yr"
    posts = [r for r in service.requests if r[0] == "POST"]
    assert posts[0][1] == "/tap-server/tap/async"
    assert b"CONTAINS" in posts[0][2] and b"TOP" not in posts[0][2]  # no 2000-row cap


@pytest.mark.parametrize("service", [(GAIA_VOT, 2, False)], indirect=True)
def test_gaia_retries_a_failing_then_succeeding_server(service):
    t = _cone(service)
    assert len(t) == 2
    assert sum(r[0] == "POST" for r in service.requests) == 3  # 503, 503, then the job
    assert len(t.meta["sleeps"]) == 2


@pytest.mark.parametrize("service", [(GAIA_VOT, 0, True)], indirect=True)
def test_gaia_always_failing_server_is_a_clear_error(service, tmp_path):
    with pytest.raises(CatalogUnavailableError, match=r"failed after 3 attempt\(s\).*503|"
                                                      r"failed after 3 attempt\(s\)"):
        _cone(service, cache=DirectoryCache(tmp_path))
    assert sum(r[0] == "POST" for r in service.requests) == 3


def test_gaia_cache_then_offline_then_fallback(tmp_path):
    cache = DirectoryCache(tmp_path / "cache")
    ok = FakeService(GAIA_VOT)
    threading.Thread(target=ok.serve_forever, daemon=True).start()
    try:
        first = _cone(ok, cache=cache)
        n_requests = len(ok.requests)
        again = _cone(ok, cache=cache)  # a re-run needs no network
        assert len(ok.requests) == n_requests and again.meta["tgp_origin"] == "cache"
        assert list(again["source_id"]) == list(first["source_id"])
    finally:
        ok.shutdown()
        ok.server_close()
    bad = FakeService(b"", always_fail=True)
    threading.Thread(target=bad.serve_forever, daemon=True).start()
    try:
        stale = _cone(bad, cache=cache, cache_mode="refresh")  # archive down: cached answer
        assert stale.meta["tgp_origin"] == "cache-fallback" and len(stale) == 2
        offline = _cone(bad, cache=cache, cache_mode="offline")
        assert offline.meta["tgp_origin"] == "cache"
        with pytest.raises(CatalogUnavailableError, match="offline mode and no cached answer"):
            query_gaia_cone(0.0, 0.0, 0.1, cache=cache, cache_mode="offline")
    finally:
        bad.shutdown()
        bad.server_close()


def test_gaia_cache_in_the_run_database(service, rundb):
    t = _cone(service, cache=rundb)
    n = len(service.requests)
    again = _cone(service, cache=rundb)
    assert again.meta["tgp_origin"] == "cache" and len(service.requests) == n
    assert list(again["source_id"]) == list(t["source_id"])


def test_cache_key_depends_on_release_centre_radius_columns():
    base = GaiaConeRequest("dr3", 10.0, 20.0, 0.5, ("ra", "dec"))
    keys = {base.key(), GaiaConeRequest("dr2", 10.0, 20.0, 0.5, ("ra", "dec")).key(),
            GaiaConeRequest("dr3", 10.1, 20.0, 0.5, ("ra", "dec")).key(),
            GaiaConeRequest("dr3", 10.0, 20.0, 0.6, ("ra", "dec")).key(),
            GaiaConeRequest("dr3", 10.0, 20.0, 0.5, ("ra",)).key()}
    assert len(keys) == 5
    assert GaiaConeRequest("dr3", 10.0 + 1e-12, 20.0, 0.5, ("ra", "dec")).key() == base.key()


def test_adql_per_release():
    dr3 = gaia_cone_adql(GaiaConeRequest("dr3", 1.0, 2.0, 0.3, GAIA_QUERY_COLUMNS["dr3"], 18.0))
    assert "FROM gaiadr3.gaia_source" in dr3 and "phot_g_mean_mag <= 18.000" in dr3
    dr2 = gaia_cone_adql(GaiaConeRequest("dr2", 1.0, 2.0, 0.3, GAIA_QUERY_COLUMNS["dr2"]))
    assert "LEFT OUTER JOIN gaiadr2.ruwe AS r" in dr2 and "r.ruwe" in dr2
    with pytest.raises(ValueError, match="unknown Gaia release"):
        gaia_cone_adql(GaiaConeRequest("dr9", 1.0, 2.0, 0.3, ("ra",)))


def test_directory_cache_expiry(tmp_path):
    c = DirectoryCache(tmp_path)
    c.cache_put("k1", "gaia", {"a": 1}, b"abc")
    c.cache_put("k2", "gaia", None, b"old", ttl_s=-1.0)
    assert c.cache_get("k1") == b"abc" and c.cache_get("k2") is None
    assert c.cache_get("missing") is None


# --- credentials ----------------------------------------------------------------------------

def test_credentials_from_environment_only_and_never_shown(monkeypatch, service, caplog):
    assert gaia_credentials_from_env({}) is None
    creds = gaia_credentials_from_env({"TGP_GAIA_USER": "alice",
                                       "TGP_GAIA_PASSWORD": "s3cr3t-pw"})
    assert creds == GaiaCredentials("alice", "s3cr3t-pw")
    assert "s3cr3t-pw" not in repr(creds) and "s3cr3t-pw" not in str(creds)
    archive = GaiaArchive(service.url, credentials=creds, socket_timeout_s=2)
    assert "s3cr3t-pw" not in repr(archive)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CatalogUnavailableError) as exc:  # login goes over HTTPS: fails here
        query_gaia_cone(1.0, 2.0, 0.1, archive=archive, policy=FAST, sleep=lambda s: None)
    assert "Gaia login as 'alice' failed" in str(exc.value)
    assert "s3cr3t-pw" not in str(exc.value) and "s3cr3t-pw" not in caplog.text


# --- offline files --------------------------------------------------------------------------

def _gaia_like(n: int = 5) -> Table:
    rng = np.random.default_rng(0)
    return Table({"source_id": np.arange(n, dtype=np.int64), "ra": rng.uniform(0, 1, n),
                  "dec": rng.uniform(0, 1, n), "parallax": rng.uniform(0, 2, n),
                  "pmra": rng.normal(0, 3, n), "pmdec": rng.normal(0, 3, n),
                  "phot_g_mean_mag": rng.uniform(12, 19, n)})


@pytest.mark.parametrize("suffix,fmt", [(".csv", "ascii.csv"), (".ecsv", "ascii.ecsv"),
                                        (".vot", "votable"), (".fits", "fits")])
def test_read_catalog_file_formats(tmp_path, suffix, fmt):
    path = tmp_path / f"cone{suffix}"
    _gaia_like().write(path, format=fmt)
    t = read_catalog_file(path, ("source_id", "pmra", "parallax"))
    assert len(t) == 5 and t["pmra"].unit == "mas / yr" and t.meta["source_file"] == str(path)


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "cone.csv"
    t = _gaia_like()
    t.remove_column("pmdec")
    t.write(path, format="ascii.csv")
    with pytest.raises(MissingColumnError) as exc:
        read_catalog_file(path, ("source_id", "ra", "dec", "pmra", "pmdec"))
    assert str(path) in str(exc.value) and "'pmdec'" in str(exc.value)


def test_vizier_style_names_are_understood(tmp_path):
    t = Table({"Source": [1, 2], "RA_ICRS": [1.0, 2.0], "DE_ICRS": [3.0, 4.0],
               "Plx": [1.0, 1.1], "e_Plx": [0.1, 0.1], "pmRA": [1.0, 2.0], "pmDE": [0.0, 1.0],
               "Gmag": [15.0, 16.0], "BP-RP": [0.8, 0.9]})
    path = tmp_path / "viz.ecsv"
    t.write(path)
    out = read_catalog_file(path, ("source_id", "ra", "dec", "parallax", "pmra", "pmdec"))
    assert {"parallax_error", "phot_g_mean_mag", "bp_rp"} <= set(out.colnames)


def test_real_m67_file_reads():
    path = Path(__file__).resolve().parents[1] / "../shared/data/gaia_m67/NGC2682_M67-result.csv"
    if not path.exists():
        pytest.skip(f"real Gaia cone not present at {path}")
    t = read_catalog_file(path, ("source_id", "ra", "dec", "parallax", "pmra", "pmdec"))
    assert len(t) == 10718 and "ruwe" in t.colnames


# --- VizieR ---------------------------------------------------------------------------------

@pytest.mark.parametrize("service", [(VIZ_XML, 1, False)], indirect=True)
def test_vizier_recorded_answer_with_retry(service, tmp_path):
    svc = VizierService(server=f"127.0.0.1:{service.server_port}", scheme="http", timeout_s=5)
    cache = DirectoryCache(tmp_path)
    t = query_vizier("I/40/catalog", ra_deg=10.0, dec_deg=20.0, radius_deg=0.1, service=svc,
                     cache=cache, policy=FAST, sleep=lambda s: None)
    assert t.meta["vizier_catalog"] == "I/40/catalog" and "Vmag" in t.colnames
    assert len(service.requests) == 2  # one 503, then the answer
    again = query_vizier("I/40/catalog", ra_deg=10.0, dec_deg=20.0, radius_deg=0.1,
                         service=svc, cache=cache)
    assert again.meta["tgp_origin"] == "cache" and len(service.requests) == 2


@pytest.mark.parametrize("service", [(CG2020_VOT, 0, False)], indirect=True)
def test_cantat_gaudin_2020_lookup(service):
    svc = VizierService(server=f"127.0.0.1:{service.server_port}", scheme="http", timeout_s=5)
    t = cantat_gaudin_2020_cluster("NGC 2682", service=svc, policy=FAST)
    assert list(t["Cluster"]) == ["NGC_2682"] and abs(t["pmRA_"][0] + 10.986) < 1e-9
    sent = service.requests[0][2]
    assert b"-source=J/A+A/640/A1/table1" in sent and b"Cluster==NGC_2682" in sent
