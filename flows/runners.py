"""The configurable task runner: a local Dask cluster, an existing Dask cluster, or threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from flows.settings import default_dask_address


class RunnerSettings(BaseModel):
    """How stage flows run their tasks."""

    kind: Literal["dask", "threads"] = Field(
        "dask", description="'dask' (local cluster, or the one at dask_address) or 'threads'")
    dask_address: str | None = Field(
        default_factory=default_dask_address,
        description="Scheduler of an existing Dask cluster, e.g. tcp://host:8786 "
                    "(default: $TGP_DASK_ADDRESS, else a local cluster)")
    n_workers: int = Field(2, ge=1, description="Workers of the local Dask cluster / threads")


def make_task_runner(settings: RunnerSettings, address: str | None = None):
    """A Prefect task runner for ``settings``; ``address`` overrides the Dask scheduler."""
    if settings.kind == "threads":
        return ThreadPoolTaskRunner(max_workers=settings.n_workers)
    from prefect_dask import DaskTaskRunner

    address = address or settings.dask_address
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class=local_cluster,
                          cluster_kwargs={"n_workers": settings.n_workers,
                                          "env": prefect_api_env()})


# glibc's allocator, in Dask workers. Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_ at
# 64 KiB, which also freezes glibc's mmap threshold at 128 KiB: every image-sized temporary in a
# worker was then a fresh mapping whose pages faulted in again (0.68 against 1.0 s per 2048^2
# frame). MALLOC_MMAP_THRESHOLD_ serves arrays up to 32 MiB (the most glibc accepts; a 2048^2
# float64 image) from the heap instead; MALLOC_TRIM_THRESHOLD_ at 512 MiB keeps the heap's
# freed top for the next frame instead of handing it back to the kernel after every array
# (reflect-padding three images cost 33 ms a frame in page faults, 4 ms without them). A worker
# keeps at most its own high-water mark. Workers of an external cluster need the same (the
# nanny's own setting wins over the shell's: docker-compose.yml and the README set Dask's
# distributed.nanny.pre-spawn-environ).
WORKER_PRE_SPAWN_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
                        "MALLOC_TRIM_THRESHOLD_": str(512 * 2**20)}


def local_cluster(n_workers: int = 2, **kwargs):
    """A local Dask cluster of single-threaded worker processes, set up for image work.

    Keyword arguments go to :class:`distributed.LocalCluster`.
    """
    from distributed import LocalCluster

    kwargs = {"threads_per_worker": 1, "processes": True, "dashboard_address": None,
              "worker_class": _image_nanny(), **kwargs}
    return LocalCluster(n_workers=n_workers, **kwargs)


def _image_nanny():
    """Dask's Nanny, with :data:`WORKER_PRE_SPAWN_ENV` added to what it sets before spawning.

    Each nanny reads ``distributed.nanny.pre-spawn-environ`` when it is made, which for a
    cluster that scales up later (``shared_cluster``) or starts its workers on the event
    loop's thread is after any ``dask.config.set`` block around the cluster's creation has
    ended; the workers then started with Dask's 64 KiB trim threshold. The nanny class
    carries the setting instead, whenever and wherever it is made.
    """
    from distributed import Nanny

    class ImageNanny(Nanny):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pre_spawn_env.update(WORKER_PRE_SPAWN_ENV)
            self.env.update(WORKER_PRE_SPAWN_ENV)

    return ImageNanny


def prefect_api_env() -> dict[str, str]:
    """``PREFECT_API_URL`` for local Dask worker processes.

    With no API configured, Prefect runs a temporary server for the flow's process; worker
    processes spawned without its address would each start one of their own (about 5 s and
    a few hundred MB per worker, and their task runs would not show in the flow's UI). This
    starts the flow's temporary server now (Prefect's singleton, which the flow then reuses)
    and hands its address to the workers.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    url = PREFECT_API_URL.value()
    if not url and PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.start()
        url = server.api_url
    return {"PREFECT_API_URL": url} if url else {}


@contextlib.contextmanager
def shared_cluster(settings: RunnerSettings) -> Iterator[str | None]:
    """Start one local Dask cluster for a whole run (stage flows then connect to it).

    Yields the scheduler address, or ``None`` when the runner is not a local Dask cluster.
    Starting a cluster per stage would cost seconds each time; this costs it once.
    """
    if settings.kind != "dask" or settings.dask_address:
        yield settings.dask_address
        return
    from distributed import Client

    with local_cluster(0, env=prefect_api_env()) as cluster, Client(cluster) as client:
        # The scheduler alone starts in a fraction of a second. The worker processes (seconds
        # each: a Python, the science stack) are asked for now and start while the flow runs
        # its light first stages (inventory and plan run in the flow's own process); the first
        # task sent to the cluster waits for them.
        cluster.scale(settings.n_workers)
        warm = [client.submit(_warm_up, pure=False, key=f"tgp-warm-up-{i}")
                for i in range(settings.n_workers)]
        yield cluster.scheduler_address
        del warm


def _warm_up() -> bool:
    """Import the modules that the pipeline's tasks use (run once on each Dask worker)."""
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    return True


WARM_MODULES = ("prefect", "tasks.calibrate", "tasks.inventory", "astroscrappy", "scipy.ndimage")
