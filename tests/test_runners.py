"""The local Dask cluster that flows start for themselves."""

from __future__ import annotations

import os


def test_local_cluster_workers_take_image_arrays_from_the_heap():
    from distributed import Client

    from flows.runners import WORKER_PRE_SPAWN_ENV, local_cluster

    with local_cluster(1) as cluster, Client(cluster) as client:
        env = next(iter(client.run(lambda: dict(os.environ)).values()))
    for var, value in WORKER_PRE_SPAWN_ENV.items():
        assert env.get(var) == value
    assert env.get("OMP_NUM_THREADS") == "1"  # Dask's other settings are kept


def test_workers_added_after_the_cluster_started_take_the_same_setting():
    """shared_cluster starts with no workers and scales up once the cluster is running."""
    from distributed import Client

    from flows.runners import WORKER_PRE_SPAWN_ENV, local_cluster

    with local_cluster(0) as cluster, Client(cluster) as client:
        cluster.scale(1)
        client.wait_for_workers(1, timeout=120)
        env = next(iter(client.run(lambda: dict(os.environ)).values()))
    for var, value in WORKER_PRE_SPAWN_ENV.items():
        assert env.get(var) == value
