"""Views over the pixel budget: the store's global preview (global_rgb) where it shows what
the view shows, else a coarse preview from a bounded sample of chunks.

Expected colours and values come from zarr-python reading the stores and from the level
and pixel arithmetic of the layout notes, worked out here."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import zarr

from tessera_qgis.core.geo import transformer
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.core.preview import COARSE_BYTES, MAX_SAMPLED_CHUNKS
from tessera_qgis.core.store import open_store
from tessera_qgis.core.storeref import StoreRef
from tessera_qgis.core.view import View

BBOX = (-0.02, 52.19, 0.02, 52.205)


def served(range_server, path):
    srv = range_server(path.parent)
    return srv, f"{srv.url}/{path.name}"


def lonlat_grid(width: int):
    w, s, e, n = BBOX
    res = (e - w) / width
    height = math.ceil((n - s) / res)
    return (res, 0.0, w, 0.0, -res, n), width, height, res


def view_of(url, **mode) -> View:
    st = open_store(url)
    year = max(st.years)
    return View(st, LayerSpec(store=StoreRef(url), year=year, budget=1000, **mode))


def test_the_global_preview_draws_the_coarsest_level_that_fits_and_reads_no_embeddings(range_server, v2_store):
    srv, url = served(range_server, v2_store)
    view = view_of(url, bands=(1, 2, 3))
    transform, w, h, res = lonlat_grid(80)  # 0.0005 degrees a pixel: level 2 (0.0004) fits, level 3 does not
    srv.reset()
    frame = view.render("EPSG:4326", transform, w, h)
    group = zarr.open_group(str(v2_store), mode="r")
    year = group["global_rgb"].attrs["year"]
    assert frame.kind == "preview" and frame.label == f"preview ({year})"
    data = [r.path for r in srv.requests() if not r.path.endswith("zarr.json")]
    assert data and all("/global_rgb/2/rgb/" in p for p in data), data
    # Expected: each output pixel centre's level-2 pixel, its colour turned back into band
    # values with the year's published min/max of bands 1-3.
    rows = (math.floor((90 - BBOX[3]) / 0.0004) - 2, math.floor((90 - BBOX[1]) / 0.0004) + 3)
    cols = (math.floor((BBOX[0] + 180) / 0.0004) - 2, math.floor((BBOX[2] + 180) / 0.0004) + 3)
    level = np.asarray(group["global_rgb/2/rgb"][rows[0]:rows[1], cols[0]:cols[1]])
    entry = json.loads((v2_store / "zarr.json").read_text())["attributes"]["geoemb:stretch"][str(view.spec.year)]
    lo, hi = np.array(entry["min"], dtype=np.float64), np.array(entry["max"], dtype=np.float64)
    checked = 0
    for i in range(0, h, 3):
        for j in range(0, w, 3):
            lon, lat = transform[2] + res * (j + 0.5), transform[5] - res * (i + 0.5)
            r, c = math.floor((90 - lat) / 0.0004), math.floor((lon + 180) / 0.0004)
            rgba = level[r - rows[0], c - cols[0]].astype(np.float64)
            got = frame.values[:, i, j]
            if rgba[3] == 255:
                np.testing.assert_allclose(got, lo + rgba[:3] / 255 * (hi - lo), rtol=1e-5, atol=1e-5)
                checked += 1
            elif rgba[3] == 0:
                assert np.isnan(got).all()
    assert checked > 100


def test_the_preview_is_used_only_where_it_shows_the_view(range_server, v1_store, v2_store):
    """v1's preview is its global PCA: a PCA view uses it, a bands view gets a coarse preview;
    v2's is bands 1-3 of its stretch: bands 4,5,6 get a coarse preview."""
    transform, w, h, _ = lonlat_grid(60)
    for store, mode, kind in ((v1_store, dict(pca="global"), "preview"), (v1_store, dict(bands=(5, 9, 12)), "coarse"),
                              (v2_store, dict(bands=(4, 5, 6)), "coarse"), (v2_store, dict(pca="global"), "coarse")):
        _, url = served(range_server, store)
        frame = view_of(url, **mode).render("EPSG:4326", transform, w, h)
        assert frame.kind == kind, (store.name, mode)
        assert np.isfinite(frame.values).any()


def test_a_coarse_preview_fetches_a_bounded_sample_whose_values_are_the_stores(range_server, sample_store):
    """Legacy sample (no global_rgb), PCA over all 128 bands: at most 256 inner chunks of
    embeddings and about 40 MB; every drawn value is the projection of a store pixel near
    the output pixel (within the sampling step), found in zarr-python's values."""
    srv, url = served(range_server, sample_store)
    st = open_store(url)
    view = View(st, LayerSpec(store=StoreRef(url), year=2024, budget=1000, bands=(1, 2, 3)))
    (x0, x1), (y0, y1) = transformer("EPSG:4326", "EPSG:3857").transform([-0.06, 0.06], [52.17, 52.23])
    width = 300
    res = (x1 - x0) / width
    height = math.ceil((y1 - y0) / res)
    transform = (res, 0.0, x0, 0.0, -res, y1)
    srv.reset()
    frame = view.render("EPSG:3857", transform, width, height)
    assert frame.kind == "coarse" and frame.label == "coarse preview"
    emb = [r for r in srv.requests() if "/embeddings/" in r.path and not (r.range or "").startswith("bytes=-")]
    assert 0 < len(emb) <= MAX_SAMPLED_CHUNKS
    assert sum(r.bytes for r in srv.requests()) <= COARSE_BYTES
    assert np.isfinite(frame.values).all(axis=0).mean() > 0.5
    # Values: each output pixel takes the pixel of some inner chunk nearest to its source
    # pixel (the source pixel itself when that chunk holds it): the value must equal the
    # store's value at the source pixel clamped into one of the 32 px chunks around it.
    group = zarr.open_group(str(sample_store), mode="r")
    rng = np.random.default_rng(1)
    ys, xs = np.nonzero(np.isfinite(frame.values).all(axis=0))
    for k in rng.choice(len(ys), 40, replace=False):
        i, j = ys[k], xs[k]
        cx, cy = x0 + res * (j + 0.5), y1 - res * (i + 0.5)
        found = False
        for zone in ("utm30", "utm31"):
            z = st.zones[zone]
            zx, zy = transformer("EPSG:3857", z.crs).transform(cx, cy)
            row, col = math.floor((z.transform[5] - zy) / 10), math.floor((zx - z.transform[2]) / 10)
            for dy in range(-4, 5):
                for dx in range(-4, 5):
                    r0, c0 = (row // 32 + dy) * 32, (col // 32 + dx) * 32
                    r = min(max(row, r0), r0 + 31)
                    c = min(max(col, c0), c0 + 31)
                    if not (0 <= r < z.shape[0] and 0 <= c < z.shape[1]):
                        continue
                    scale = np.float32(group[f"{zone}/scales"][0, r, c])
                    q = np.asarray(group[f"{zone}/embeddings"][0, :3, r, c]).astype(np.float32)
                    if np.isfinite(scale) and np.allclose(q * scale, frame.values[:, i, j], rtol=0, atol=1e-6):
                        found = True
        assert found, (i, j, frame.values[:, i, j])


def test_a_coarse_preview_asks_for_its_sampled_chunks_while_it_places_its_pixels(range_server, sample_store,
                                                                                 monkeypatch):
    """The sampled chunks are known before each output pixel's source is worked out: their
    requests go out first (a slow link then carries them while the CPU places the pixels),
    each chunk once, and the drawing is the one without asking early. The placing waits
    here (up to 5 s) for the server to see an embeddings chunk request: without the early
    requests none comes before it returns."""
    import time

    from tessera_qgis.core import preview, store as store_mod

    srv, url = served(range_server, sample_store)
    (x0, x1), (y0, y1) = transformer("EPSG:4326", "EPSG:3857").transform([-0.06, 0.06], [52.17, 52.23])
    width = 300
    res = (x1 - x0) / width
    transform = (res, 0.0, x0, 0.0, -res, y1)
    height = math.ceil((y1 - y0) / res)

    def chunk_requests():
        return [r for r in srv.requests() if "/embeddings/" in r.path and not (r.range or "").startswith("bytes=-")]

    seen_early = []
    cells = preview.grid_cells

    def slow_cells(*args, **kw):
        deadline = time.monotonic() + 5
        while not chunk_requests() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen_early.append(bool(chunk_requests()))
        return cells(*args, **kw)

    monkeypatch.setattr(preview, "grid_cells", slow_cells)
    srv.reset()
    early = view_of(url, bands=(1, 2, 3)).render("EPSG:3857", transform, width, height)
    assert early.kind == "coarse"
    assert seen_early and all(seen_early), seen_early
    asked = [(r.path, r.range) for r in srv.requests() if not (r.range or "").startswith("bytes=-")]
    assert len(asked) == len(set(asked)), "a chunk was asked for twice"

    monkeypatch.setattr(preview, "grid_cells", cells)
    monkeypatch.setattr(store_mod.Zone, "prefetch", lambda *a, **k: None)
    late = view_of(url, bands=(1, 2, 3)).render("EPSG:3857", transform, width, height)
    np.testing.assert_array_equal(early.values, late.values)


def test_previews_none_refuses_over_the_budget(sample_store):
    from tessera_qgis.core.errors import ExtentError

    st = open_store(sample_store)
    view = View(st, LayerSpec(store=StoreRef(str(sample_store)), year=2024, budget=1000, bands=(1, 2, 3)))
    transform, w, h, _ = lonlat_grid(50)
    with pytest.raises(ExtentError, match="zoom in"):
        view.render("EPSG:4326", transform, w, h, previews="none")
    assert view.render("EPSG:4326", transform, w, h, previews="coarse").kind == "coarse"
