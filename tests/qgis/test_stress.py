"""Crash safety: four threads draw random tiles of one layer through provider clones while
the server fails 15 % of requests (retried), then corrupts 30 % (draws fail), a fifth of the
draws are cancelled and clones are made and collected. Nothing may escape the provider, every
block is valid, the memory a storm holds on to is the provider's bounded tile cache, and the
layer then draws right (checked against zarr-python). A fixed number of draws, not a time."""
from __future__ import annotations

import gc
import random
import threading
import tracemalloc

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsRasterBlockFeedback, QgsRectangle

from support.reference import within
from support.servers import Faults
from tessera_qgis.layers import make_layer
from tessera_qgis.log import notifier

pytestmark = pytest.mark.usefixtures("provider_active")
THREADS = 4


def test_threads_faults_cancels_and_clones(sample_store, range_server, zarr_reference):
    srv = range_server(sample_store.parent)
    layer = make_layer(f"{srv.url}/{sample_store.name}", 2024, bands=[1, 2, 3], stretch=[(-2, 2)] * 3)
    base = layer.dataProvider()
    ext = layer.extent()
    shown: list[str] = []
    notifier.message.connect(lambda title, text, level: shown.append(text))
    errors, blocks, cancelled = [], [], []

    def worker(seed: int, sizes: tuple[int, int], rounds: int) -> None:
        rng = random.Random(seed)
        for _ in range(rounds):
            try:
                clone = base.clone()
                w = ext.width() * rng.uniform(0.05, 0.5)
                h = ext.height() * rng.uniform(0.05, 0.5)
                x = ext.xMinimum() + rng.uniform(0, ext.width() - w)
                y = ext.yMinimum() + rng.uniform(0, ext.height() - h)
                fb = QgsRasterBlockFeedback()
                if rng.random() < 0.2:
                    fb.cancel()  # an overtaken render
                    cancelled.append(1)
                block = clone.block(rng.choice([1, 2, 3]), QgsRectangle(x, y, x + w, y + h),
                                    rng.randint(*sizes), rng.randint(*sizes), fb)
                blocks.append(block.isValid())
                del clone
                if rng.random() < 0.3:
                    gc.collect()
            except Exception as exc:  # nothing may escape the provider
                errors.append(exc)

    def storm(seed: int, sizes: tuple[int, int], rounds: int) -> None:
        threads = [threading.Thread(target=worker, args=(seed + i, sizes, rounds)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)

    srv.faults = Faults("503", rate=0.15, seed=1)
    storm(0, (20, 200), 3)  # cold: concurrent fetches, 15 % of them failing and retried
    retried = srv.faults.injected
    srv.faults = Faults("corrupt", rate=0.3, seed=2)
    storm(50, (20, 200), 2)  # corrupt bytes are not retried: some draws fail, and say so
    srv.faults = None
    # Then every chunk of the year decoded (a native-resolution draw of the whole layer), so what
    # a storm over the same data may add to memory is the provider's bounded tile cache.
    base.block(1, ext, int(ext.width() / 10), int(ext.height() / 10))
    gc.collect()
    tracemalloc.start()  # Python's and numpy's allocations (not the heap's fragmentation, which is noise)
    try:
        storm(100, (300, 500), 5)  # other tiles of the same data, from memory
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] / 2**20
    finally:
        tracemalloc.stop()
    QgsApplication.processEvents()
    assert not errors, errors[:3]
    assert len(blocks) == THREADS * (3 + 2 + 5) and all(blocks)
    assert retried > 5 and cancelled, "faults were injected and draws cancelled"
    assert any("could not be drawn" in t for t in shown), "some draws failed (corrupt data), and said so"
    # The second storm's tiles (300 to 500 px a side, 3 bands of float32: 1 to 3 MB each) replace
    # the cached ones in the provider's tile cache: it holds 6, at most 18 MB; keeping every tile
    # would hold about 30 MB more.
    assert grown < 20, f"memory held grew by {grown:.0f} MB in a storm over data already decoded"
    # After the storms, with the server healthy, the layer draws right.
    block = base.block(1, ext, 60, 90)
    got = np.frombuffer(bytes(block.data()), np.float32).reshape(90, 60).astype(np.float64)
    transform = (ext.width() / 60, 0.0, ext.xMinimum(), 0.0, -ext.height() / 90, ext.yMaximum())
    want = zarr_reference(2024).values(layer.crs().authid(), transform, 60, 90, [1])
    assert want.decided.sum() > 1000 and within(got[None], want.values, 0.0)[want.decided].all()
