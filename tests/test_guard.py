"""Every path parameter a deployment accepts is confined to its root (issue 25): inputs to
``TGP_DATA_ROOT``, outputs to ``TGP_OUT_ROOT``; the error names the parameter, never the
file's contents."""

from __future__ import annotations

import pytest
from prefect.states import State

from flows.full_run import FullRunParams
from flows.guard import confine_parameters
from flows.nightly import NightlyParams
from flows.service import guarded, run_state

INPUTS = ["profile", "grouping", "plan_rules", "gaia_file", "members", "reference_catalog",
          "photometric_reference", "standards_catalog"]


@pytest.fixture
def roots(tmp_path, monkeypatch):
    data, out = tmp_path / "data", tmp_path / "out"
    (data / "night").mkdir(parents=True)
    out.mkdir()
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n")
    monkeypatch.setenv("TGP_DATA_ROOT", str(data))
    monkeypatch.setenv("TGP_OUT_ROOT", str(out))
    return data, out, secret


def _set(params: FullRunParams, name: str, value: str) -> FullRunParams:
    """``params`` with the (possibly nested) field ``name`` set."""
    for field in type(params).model_fields:
        if field == name:
            return params.model_copy(update={name: value})
        inner = getattr(params, field)
        if hasattr(inner, "model_fields") and name in type(inner).model_fields:
            return params.model_copy(update={field: inner.model_copy(update={name: value})})
    raise AssertionError(f"no parameter {name}")


def test_inputs_inside_the_data_root_pass(roots):
    data, out, _ = roots
    (data / "g.ecsv").write_text("x")
    p = FullRunParams(data=str(data / "night"), out=str(out), gaia_file=str(data / "g.ecsv"),
                      members="vizier:cantat-gaudin2020", profile="caha_cafos")
    assert guarded(p).out == str(out)


@pytest.mark.parametrize("name", ["data", *INPUTS])
def test_each_input_parameter_outside_the_data_root_is_refused(roots, name):
    data, out, secret = roots
    p = _set(FullRunParams(data=str(data / "night"), out=str(out)), name, str(secret))
    with pytest.raises(ValueError) as info:
        guarded(p)
    msg = str(info.value)
    assert repr(name) in msg and "outside the data root" in msg
    assert "secret-hash" not in msg


def test_symlink_out_of_the_data_root_is_refused(roots):
    data, out, secret = roots
    (data / "link.toml").symlink_to(secret)
    p = FullRunParams(data=str(data / "night"), out=str(out), grouping=str(data / "link.toml"))
    with pytest.raises(ValueError, match="'grouping'"):
        guarded(p)


def test_nightly_inbox_and_gaia_file_are_confined(roots):
    data, out, secret = roots
    confine_parameters(NightlyParams(inbox=str(data), out=str(out),
                                     gaia_file="truth/gaia.ecsv"), relative_to=data / "night")
    with pytest.raises(ValueError, match="'inbox'"):
        confine_parameters(NightlyParams(inbox="/etc", out=str(out)))
    with pytest.raises(ValueError, match="'gaia_file'"):
        confine_parameters(NightlyParams(inbox=str(data), out=str(out), gaia_file=str(secret)))
    with pytest.raises(ValueError, match="'gaia_file'"):
        confine_parameters(NightlyParams(inbox=str(data), out=str(out),
                                         gaia_file="../../shadow"),
                           relative_to=data / "night")


@pytest.mark.parametrize("status,type_,name", [("succeeded", "COMPLETED", "Completed"),
                                               ("partial", "FAILED", "Partial"),
                                               ("failed", "FAILED", "Failed")])
def test_service_state_says_how_the_run_went(status, type_, name):
    st = run_state({"status": status, "run_id": "r1", "run_dir": "/o/r1",
                    "failed": {} if status == "succeeded" else
                    {"catalogs": "ConnectionError: archive down"}})
    assert isinstance(st, State)
    assert st.type.value == type_ and st.name == name
    if status != "succeeded":
        assert "catalogs: ConnectionError: archive down" in st.message
        assert status in st.message
