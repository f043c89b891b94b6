"""Published member lists (tgpcore.catalogs.members), the matched catalogue
(tgpcore.catalogs.matched) and the calibrated catalogue's stable ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from tgpcore.catalogs.matched import match_catalogue, membership_of
from tgpcore.catalogs.members import member_list, read_member_list, vizier_member_list
from tgpcore.catalogs.retry import RetryPolicy
from tgpcore.membership.published import published_membership
from tgpcore.photcal.products import finalise_catalogue

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N2420 = DATA / "ngc2420_gaia_members" / "NGC_2420_members_edr3.csv"
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, jitter=0.5, timeout=10.0)


def test_real_published_list_reads_with_archive_names():
    if not N2420.exists():
        pytest.skip(f"real member list not found at {N2420}")
    t = read_member_list(N2420)
    assert len(t) == 651
    assert {"source_id", "ra", "dec", "parallax", "pmra", "pmdec", "p_member"} <= set(t.colnames)
    assert t.meta["probability_column"] == "Pmemb"
    assert 0.51 <= float(np.min(t["p_member"])) and float(np.max(t["p_member"])) <= 1.0
    res = published_membership(t, Path("/tmp") / "tgp-test-published")
    c = res["summary"]["centroid"]
    # Almeida et al. 2023 give NGC 2420 a parallax of about 0.4 mas, pm (-1.2, -2.1) mas/yr
    assert 0.35 < c["parallax_mas"] < 0.45 and c["parallax_err_mas"] < 0.01
    assert -1.5 < c["pmra_masyr"] < -1.0 and -2.4 < c["pmdec_masyr"] < -1.8


def test_member_list_checks_and_clusters(tmp_path):
    t = Table({"Cluster": ["NGC_2420", "NGC_2420", "NGC_2682"], "GaiaDR2": [1, 2, 3],
               "RA_ICRS": [1.0, 1.1, 2.0], "DE_ICRS": [3.0, 3.1, 4.0], "proba": [90, 60, 100]})
    path = tmp_path / "members.csv"
    t.write(path)
    got = read_member_list(path, "NGC 2420")
    assert list(got["source_id"]) == [1, 2]
    assert list(got["p_member"]) == [0.9, 0.6]     # percentages read as such
    assert any("percentages" in n for n in got.meta["notes"])
    with pytest.raises(ValueError, match="no member of 'M 45'"):
        read_member_list(path, "M 45")
    with pytest.raises(FileNotFoundError, match="member list not found"):
        read_member_list(tmp_path / "nope.csv")
    Table({"name": ["a"], "Vmag": [10.0]}).write(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="bad.csv: a member list needs Gaia source ids"):
        read_member_list(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="needs the cluster's name"):
        member_list("vizier:cantat-gaudin2020")
    no_p = Table({"source_id": [5, 6], "ra": [1.0, 2.0], "dec": [1.0, 2.0]})
    no_p.write(tmp_path / "nop.ecsv")
    assert list(read_member_list(tmp_path / "nop.ecsv")["p_member"]) == [1.0, 1.0]


CG_MEMBERS_VOT = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
<RESOURCE name="J/A+A/640/A1"><TABLE name="J/A+A/640/A1/nodup">
<FIELD name="RA_ICRS" datatype="double" unit="deg"/><FIELD name="DE_ICRS" datatype="double" unit="deg"/>
<FIELD name="GaiaDR2" datatype="long"/><FIELD name="Plx" datatype="double" unit="mas"/>
<FIELD name="pmRA" datatype="double" unit="mas/yr"/><FIELD name="pmDE" datatype="double" unit="mas/yr"/>
<FIELD name="Gmag" datatype="double" unit="mag"/><FIELD name="BP-RP" datatype="double" unit="mag"/>
<FIELD name="proba" datatype="double"/><FIELD name="Cluster" datatype="char" arraysize="*"/>
<DATA><TABLEDATA>
<TR><TD>114.60</TD><TD>21.57</TD><TD>865001</TD><TD>0.41</TD><TD>-1.20</TD><TD>-2.10</TD><TD>14.1</TD><TD>0.9</TD><TD>1.0</TD><TD>NGC_2420</TD></TR>
<TR><TD>114.61</TD><TD>21.58</TD><TD>865002</TD><TD>0.39</TD><TD>-1.22</TD><TD>-2.08</TD><TD>15.3</TD><TD>0.8</TD><TD>0.7</TD><TD>NGC_2420</TD></TR>
</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>
"""


def test_published_list_from_vizier_is_cached(tmp_path):
    from test_catalogs import fake_vizier

    from tgpcore.catalogs.cache import DirectoryCache

    with fake_vizier(CG_MEMBERS_VOT) as (srv, svc):
        cache = DirectoryCache(tmp_path)
        t = vizier_member_list("cantat-gaudin2020", "NGC 2420", service=svc, policy=FAST,
                               cache=cache)
        assert list(t["source_id"]) == [865001, 865002] and list(t["p_member"]) == [1.0, 0.7]
        assert b"-source=J/A+A/640/A1/nodup" in srv.requests[0][2]
        assert b"Cluster==NGC_2420" in srv.requests[0][2]
        n = len(srv.requests)
        again = member_list("vizier:cantat-gaudin2020", "NGC 2420", service=svc, cache=cache,
                            cache_mode="offline")
        assert len(again) == 2 and len(srv.requests) == n


def _gaia(n: int = 5) -> Table:
    ra = 100.0 + np.arange(n) * 0.01
    return Table({"source_id": np.arange(1, n + 1, dtype=np.int64), "ra": ra,
                  "dec": np.full(n, 20.0), "ref_epoch": np.full(n, 2016.0),
                  "pmra": np.full(n, 50.0), "pmdec": np.zeros(n),
                  "pmra_error": np.full(n, 0.05), "pmdec_error": np.full(n, 0.05),
                  "parallax": np.full(n, 1.0), "phot_g_mean_mag": np.linspace(12, 16, n)})


def test_matched_catalogue_propagates_and_joins_memberships():
    gaia = _gaia()
    epoch = 2026.0          # 10 years: 500 mas of proper motion east
    dra = 0.5 / 3600.0 / np.cos(np.radians(20.0))
    ours = Table({"id": [1, 2, 3, 4], "ra": [100.0 + dra, 100.01 + dra, 100.02 + dra, 100.5],
                  "dec": [20.0, 20.0, 20.0, 20.0], "V": [12.0, 13.0, 14.0, 18.0],
                  "V_err": [0.01, 0.01, 0.01, 0.05]})
    members = Table({"source_id": np.array([1, 3], np.int64), "p_member": [0.95, 0.6]})
    out, summary = match_catalogue(ours, gaia, epoch, members)
    assert list(out["source_id"]) == [1, 2, 3, -1]
    assert summary["n_matched"] == 3 and summary["n_members_p50"] == 2
    assert np.allclose(out["gaia_sep_arcsec"][:3], 0.0, atol=0.05)
    p = np.asarray(out["p_member"])
    assert p[0] == 0.95 and p[1] == 0.0 and p[2] == 0.6 and np.isnan(p[3])
    assert out["parallax"].mask[3] and out["parallax"][0] == 1.0
    # without the proper motion, the same stars are 0.5" off: still matched (radius 5 sigma
    # of the propagated errors) but the epoch matters for tighter fields
    pos, how = membership_of(np.array([-1, -1]), np.array([100.0, 100.3]),
                             np.array([20.0, 20.0]),
                             Table({"ra": [100.0], "dec": [20.0], "p_member": [0.8]}))
    assert how.startswith("matched by position") and pos[0] == 0.8 and np.isnan(pos[1])


def test_finalised_catalogue_has_stable_ids_and_no_empty_rows():
    t = Table({"ra": [3.0, 1.0, 2.0, 4.0], "dec": [0.0, 0.0, 0.0, 0.0],
               "B": MaskedColumn([15.0, 0.0, 14.0, 0.0], mask=[False, True, False, True]),
               "V": MaskedColumn([14.0, 13.0, 0.0, 0.0], mask=[False, False, True, True])})
    out = finalise_catalogue(t, ["B", "V"])
    assert list(out["id"]) == [1, 2, 3] and list(out["ra"]) == [1.0, 2.0, 3.0]
    assert out.meta["n_dropped_no_magnitude"] == 1
    assert out.colnames[0] == "id"
