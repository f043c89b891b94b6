"""docker-compose.yml, the Dockerfile and deployments/prefect.yaml agree with the settings the
code reads (there is no Docker engine here, so the files are parsed and cross-checked)."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path, PurePosixPath

import prefect
import pytest
import yaml
from prefect.flows import Flow
from sqlalchemy.engine import make_url

import flows.guard
import flows.nightly
import flows.settings
import tasks.report
import tgpcore.astrometry.nova
import tgpcore.catalogs.credentials
import tgpcore.settings
from flows.runners import WORKER_PRE_SPAWN_ENV

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"postgres", "prefect-server", "worker", "dask-scheduler", "dask-worker"}
TGP_SERVICES = ("worker", "dask-worker")  # containers that run tgp code


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def deployments() -> dict:
    return yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())


def _env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _words(command: str | list[str]) -> list[str]:
    return command if isinstance(command, list) else shlex.split(command)


def _option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def _code_settings() -> set[str]:
    """Every environment variable the code reads as a tgp setting."""
    names = {v for m in (tgpcore.settings, flows.settings, flows.nightly, flows.guard,
                         tgpcore.catalogs.credentials)
             for k, v in vars(m).items() if k.startswith("ENV_") and isinstance(v, str)}
    return names | {tgpcore.astrometry.nova.KEY_ENV, *tasks.report.SECRET_ENV_VARS}


def _mounted(svc: dict, path: str) -> str | None:
    """The host source of the volume that holds ``path`` in the container, if any."""
    for vol in svc.get("volumes", []):
        source, target = vol.split(":")[:2]
        if PurePosixPath(path).is_relative_to(target):
            return source
    return None


def test_services_and_tgp_settings(compose):
    services = compose["services"]
    assert set(services) == SERVICES
    known = _code_settings()
    assert {"TGP_DATABASE_URL", "TGP_OUT_ROOT", "TGP_INBOX", "TGP_DASK_ADDRESS",
            "TGP_OFFLINE"} <= known
    for name, svc in services.items():
        unknown = {k for k in _env(svc) if k.startswith("TGP_")} - known
        assert not unknown, f"{name} sets variables no code reads: {unknown}"
    worker, dask_worker = (_env(services[s]) for s in TGP_SERVICES)
    # the Dask workers write products and records too: same database, roots and API
    assert worker == dask_worker
    for var in ("TGP_DATABASE_URL", "TGP_OUT_ROOT", "TGP_INBOX", "TGP_DASK_ADDRESS",
                "PREFECT_API_URL"):
        assert worker.get(var), f"worker does not set {var}"
    # the Dask workers allocate image-sized arrays as the local cluster's workers do
    nanny_env = ast.literal_eval(dask_worker["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"])
    for var, value in WORKER_PRE_SPAWN_ENV.items():
        assert nanny_env.get(var) == value, f"dask-worker's nanny does not set {var}={value}"
    assert nanny_env.get("OMP_NUM_THREADS") == "1"  # Dask's own defaults are kept
    for var in ("TGP_OUT_ROOT", "TGP_INBOX"):
        sources = {_mounted(services[s], worker[var]) for s in TGP_SERVICES}
        assert len(sources) == 1 and None not in sources, f"{var} is not on one shared volume"
    # secrets come from the host's environment, never from the file
    for var in (tgpcore.astrometry.nova.KEY_ENV, *tasks.report.SECRET_ENV_VARS):
        assert re.fullmatch(r"\$\{" + var + r"(:-)?\}", worker[var]), worker[var]


def test_databases(compose):
    services = compose["services"]
    pg = _env(services["postgres"])
    run_db = make_url(_env(services["worker"])["TGP_DATABASE_URL"])
    assert run_db.drivername == "postgresql+psycopg"
    importlib.import_module("psycopg")
    assert (run_db.host, run_db.port) == ("postgres", 5432)
    assert (run_db.username, run_db.password, run_db.database) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
    prefect_db = make_url(_env(services["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert prefect_db.drivername == "postgresql+asyncpg"
    assert (prefect_db.host, prefect_db.port, prefect_db.username, prefect_db.password) == (
        "postgres", 5432, pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    initdb = [v for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    sql = "".join(p.read_text() for p in (ROOT / initdb[0].split(":")[0]).glob("*.sql"))
    assert re.search(rf"CREATE DATABASE {prefect_db.database}\b", sql)
    assert "5432:5432" in services["postgres"]["ports"]


def test_prefect_server_worker_and_dask(compose, deployments):
    services = compose["services"]
    server = _words(services["prefect-server"]["command"])
    assert server[:3] == ["prefect", "server", "start"] and _option(server, "--host") == "0.0.0.0"
    port = int(_option(server, "--port"))
    api = make_url(_env(services["worker"])["PREFECT_API_URL"].replace("http://", "http+x://"))
    assert (api.host, api.port, api.database) == ("prefect-server", port, "api")
    assert f"{port}:{port}" in services["prefect-server"]["ports"]
    # the server image is the Prefect version the project pins and installs
    tag = services["prefect-server"]["image"].split(":")[1]
    assert tag.split("-")[0] == prefect.__version__
    assert f"prefect=={prefect.__version__}" in (ROOT / "constraints.txt").read_text()
    # the worker waits for healthy services, migrates, deploys this project's file, and
    # works the pool that every deployment names
    deps = services["worker"]["depends_on"]
    assert deps["postgres"]["condition"] == deps["prefect-server"]["condition"] == \
        "service_healthy"
    assert "healthcheck" in services["prefect-server"]
    steps = [shlex.split(s) for s in _words(services["worker"]["command"])[2].split("&&")]
    assert steps[0] == ["tgp", "db", "upgrade"]
    pool = steps[1][steps[1].index("create") + 1]
    assert steps[1][:3] == ["prefect", "work-pool", "create"] and \
        _option(steps[1], "--type") == "process"
    deploy_file = _option(steps[2], "--prefect-file")
    workdir = services["worker"]["working_dir"]
    assert (ROOT / deploy_file).is_file()
    assert steps[3] == ["prefect", "worker", "start", "--pool", pool]
    assert {d["work_pool"]["name"] for d in deployments["deployments"]} == {pool}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"WORKDIR {workdir}" in dockerfile
    for folder in ("tgpcore", "flows", "tasks", "deployments"):
        assert re.search(rf"^COPY {folder} \./{folder}$", dockerfile, re.M), folder
    assert "-c constraints.txt" in dockerfile
    if "<(" in dockerfile:  # process substitution needs bash; RUN's default shell is sh
        assert re.search(r'^SHELL \["/bin/bash"', dockerfile, re.M)
    # Dask: the address the code is given is the scheduler the compose file starts
    scheduler = _words(services["dask-scheduler"]["command"])
    address = _env(services["worker"])["TGP_DASK_ADDRESS"]
    assert address == f"tcp://dask-scheduler:{_option(scheduler, '--port')}"
    assert _words(services["dask-worker"]["command"])[:3] == ["dask", "worker", address]
    assert f"{_option(scheduler, '--port')}:{_option(scheduler, '--port')}" in \
        services["dask-scheduler"]["ports"]


def test_deployments_load_and_their_parameters_validate(deployments):
    assert deployments["prefect-version"] == prefect.__version__
    names = set()
    for dep in deployments["deployments"]:
        path, func = dep["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        fl = getattr(module, func)
        assert isinstance(fl, Flow), dep["entrypoint"]
        names.add(f"{fl.name}/{dep['name']}")
        for arg, value in (dep.get("parameters") or {}).items():
            model = fl.fn.__annotations__[arg]
            model = getattr(module, model.split(" ")[0]) if isinstance(model, str) else model
            model.model_validate(value)
    assert names == {"tgp-service-full-run/full-run", "tgp-nightly/nightly", "tgp-report/report"}
    nightly = next(d for d in deployments["deployments"] if d["name"] == "nightly")
    assert [s["cron"] for s in nightly["schedules"]] == ["0 9 * * *"]
    assert nightly["concurrency_limit"] == 1
