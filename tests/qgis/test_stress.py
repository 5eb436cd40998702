"""Crash safety: render from several threads for a bounded time while faults are injected
and provider clones are made and collected. QGIS must survive and memory stay bounded."""
from __future__ import annotations

import gc
import random
import resource
import threading
import time

import numpy as np
import pytest
from qgis.core import QgsRasterBlockFeedback, QgsRectangle

from support.servers import Faults
from tessera_qgis import provider as prov
from tessera_qgis.layers import make_layer

pytestmark = pytest.mark.usefixtures("provider_active")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_threads_faults_and_clones_for_a_bounded_time(sample_store, range_server):
    srv = range_server(sample_store.parent)
    layer = make_layer(f"{srv.url}/{sample_store.name}", 2024, bands=[1, 2, 3], stretch=[(-2, 2)] * 3)
    srv.faults = Faults("503", rate=0.15, seed=1)
    base = layer.dataProvider()
    ext = layer.extent()
    errors, blocks = [], []
    stop = time.monotonic() + 12.0
    start_rss = rss_mb()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            try:
                clone = base.clone()
                w = ext.width() * rng.uniform(0.05, 0.5)
                h = ext.height() * rng.uniform(0.05, 0.5)
                x = ext.xMinimum() + rng.uniform(0, ext.width() - w)
                y = ext.yMinimum() + rng.uniform(0, ext.height() - h)
                fb = QgsRasterBlockFeedback()
                if rng.random() < 0.2:
                    fb.cancel()  # an overtaken render
                block = clone.block(rng.choice([1, 2, 3]), QgsRectangle(x, y, x + w, y + h),
                                    rng.randint(20, 200), rng.randint(20, 200), fb)
                blocks.append(block.isValid())
                del clone
                if rng.random() < 0.3:
                    gc.collect()
            except Exception as exc:  # nothing may escape the provider
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert len(blocks) > 40 and all(blocks)
    assert rss_mb() - start_rss < 800, f"memory grew by {rss_mb() - start_rss:.0f} MB"
    # After the storm, with the server healthy, the layer draws correctly.
    srv.faults = None
    prov.state_for(layer.source()).tiles.clear()
    block = base.block(1, ext, 60, 90)
    assert np.isfinite(np.frombuffer(bytes(block.data()), np.float32)).mean() > 0.5
