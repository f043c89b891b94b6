"""The nova.astrometry.net step against a fake server on 127.0.0.1 (never the real service).

The fake server fails the first upload with HTTP 503 (the step must retry), then answers like
nova: login, submission, job status, WCS file. The API key must appear in no log line, message
or result.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from tgpcore.astrometry.cascade import SolveRequest, solve

KEY = "sekrit-key-0123456789"


def _true_wcs() -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [97.5, 24.5]
    w.wcs.crpix = [128.5, 128.5]
    w.wcs.cd = np.array([[-0.5 / 3600, 0.0], [0.0, 0.5 / 3600]])
    return w


class FakeNova(BaseHTTPRequestHandler):
    uploads = 0
    logins: list[str] = []

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _json(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        form = parse_qs(self.rfile.read(n).decode())
        payload = json.loads(form["request-json"][0])
        if self.path == "/api/login":
            FakeNova.logins.append(payload.get("apikey"))
            return self._json({"status": "success", "session": "s1"})
        if self.path == "/api/url_upload":
            FakeNova.uploads += 1
            if FakeNova.uploads == 1:
                return self._json({"status": "error"}, code=503)
            assert payload["session"] == "s1" and len(payload["x"]) >= 5
            return self._json({"status": "success", "subid": 11})
        self._json({"status": "error"}, code=404)

    def do_GET(self):
        if self.path == "/api/submissions/11":
            return self._json({"jobs": [22]})
        if self.path == "/api/jobs/22/info":
            return self._json({"status": "success"})
        if self.path == "/wcs_file/22":
            body = _true_wcs().to_header().tostring().encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        self._json({"status": "error"}, code=404)


@pytest.fixture()
def fake_nova():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNova)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeNova.uploads, FakeNova.logins = 0, []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _request(**kw) -> SolveRequest:
    xy = np.random.default_rng(0).uniform(10, 240, (30, 2))
    return SolveRequest(xy=xy, shape=(256, 256), header=fits.Header(), scale_arcsec=0.5,
                        hint_ra=97.5, hint_dec=24.5, **kw)


def test_nova_retries_and_never_leaks_the_key(fake_nova, monkeypatch, caplog, capsys):
    monkeypatch.setenv("TGP_ASTROMETRY_API_KEY", KEY)
    monkeypatch.setenv("TGP_ASTROMETRY_URL", fake_nova)
    caplog.set_level(logging.DEBUG)
    req = _request(options={"nova": {"base_delay_s": 0.05, "solve_timeout_s": 20}})
    sol, attempts = solve(req, steps=("header", "nova"), timeouts={"nova": 60})
    assert sol.ok and sol.solver == "nova", attempts
    assert FakeNova.uploads == 2  # the 503 was retried
    assert FakeNova.logins and FakeNova.logins[-1] == KEY  # the key did reach the service
    w = sol.wcs
    assert np.allclose(w.wcs.crval, [97.5, 24.5])
    text = caplog.text + json.dumps(attempts) + json.dumps(sol.summary()) + str(capsys.readouterr())
    assert KEY not in text


def test_nova_without_key_fails_cleanly(monkeypatch):
    monkeypatch.delenv("TGP_ASTROMETRY_API_KEY", raising=False)
    sol, attempts = solve(_request(), steps=("nova",))
    assert not sol.ok and "TGP_ASTROMETRY_API_KEY" in sol.reason


def test_nova_unreachable_server_fails_with_scrubbed_reason(monkeypatch):
    monkeypatch.setenv("TGP_ASTROMETRY_API_KEY", KEY)
    monkeypatch.setenv("TGP_ASTROMETRY_URL", "http://127.0.0.1:9")  # discard port: refused
    req = _request(options={"nova": {"base_delay_s": 0.01, "attempts": 2}})
    sol, _ = solve(req, steps=("nova",), timeouts={"nova": 30})
    assert not sol.ok and KEY not in sol.reason


def test_nova_is_not_contacted_offline(monkeypatch):
    """TGP_OFFLINE: the public service is never contacted (a local server still is)."""
    monkeypatch.setenv("TGP_ASTROMETRY_API_KEY", KEY)
    monkeypatch.setenv("TGP_OFFLINE", "1")
    monkeypatch.setenv("TGP_ASTROMETRY_URL", "http://nova.astrometry.net")

    def no_network(*a, **k):
        raise AssertionError("the network was used although TGP_OFFLINE is set")

    monkeypatch.setattr("socket.socket.connect", no_network)
    sol, _ = solve(_request(), steps=("nova",), timeouts={"nova": 30})
    assert not sol.ok and "TGP_OFFLINE" in sol.reason and "nova.astrometry.net" in sol.reason


def test_nova_down_the_cascade_falls_through_to_the_next_solver(monkeypatch):
    """The astrometry service is down (connection refused): its failure is recorded with a
    scrubbed reason and the next solver in the (user-ordered) cascade solves the image."""
    monkeypatch.setenv("TGP_ASTROMETRY_API_KEY", KEY)
    monkeypatch.setenv("TGP_ASTROMETRY_URL", "http://127.0.0.1:9")
    header = fits.Header(_true_wcs().to_header())
    req = SolveRequest(xy=np.random.default_rng(0).uniform(10, 240, (30, 2)), shape=(256, 256),
                       header=header, scale_arcsec=0.5, hint_ra=97.5, hint_dec=24.5,
                       options={"nova": {"base_delay_s": 0.01, "attempts": 2}})
    sol, attempts = solve(req, steps=("nova", "header"), timeouts={"nova": 30})
    assert [a["solver"] for a in attempts] == ["nova", "header"]
    assert not attempts[0]["ok"] and attempts[0]["reason"] and KEY not in attempts[0]["reason"]
    assert sol.ok and sol.solver == "header"
    assert np.allclose(sol.wcs.wcs.crval, [97.5, 24.5])
