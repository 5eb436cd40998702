"""Proof that a job ran on a dask cluster's workers: equal outputs alone would not tell a job
that quietly ran in the client's own process from one the cluster ran."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def tiles_ran_on_workers(address: str):
    """Inside: run a job against the scheduler at `address`. On leaving, assert that the
    cluster's workers ran its tile tasks (the scheduler's task stream)."""
    from distributed import Client, get_task_stream

    with Client(address, set_as_default=False) as client:
        with get_task_stream(client) as stream:
            yield
        workers = set(client.scheduler_info()["workers"])
    tiles = [t for t in stream.data if "tessera-tile" in str(t["key"])]
    assert tiles, f"no tile task reached the cluster: {stream.data}"
    assert all(t["worker"] in workers for t in tiles), stream.data
