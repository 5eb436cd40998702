#!/usr/bin/env python3
"""`make demo`: the main job on the bundled sample store, end to end, offline.

1. Builds the sample store (once; reused while the generator is unchanged).
2. Serves it over HTTP on 127.0.0.1 (with Range requests, like object storage).
3. Opens it through the plugin's own code in a headless QGIS and renders to PNG: bands 1-3
   from the depth-4 array (the store's own colours), a PCA fitted to the view, the global
   preview of a zoomed-out view, and a similarity map.
4. Looks up one pixel's embedding, and exports a study area to GeoTIFF (float32, 3 bands).
5. Prints where each output is, what it shows and what it cost.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
warnings.filterwarnings("ignore", message="Consolidated metadata")

from tessera_qgis.cli import format_sample_summary  # noqa: E402
from tessera_qgis.core import sample  # noqa: E402

STUDY_AREA = (-0.03, 52.19, 0.02, 52.215)  # lon/lat W,S,E,N, across the 0 degree meridian
SIMILARITY_POINT = (0.02, 52.205)  # a pixel in the town (built-up)
SPEC = sample.SampleSpec(layout="v2")  # the newest published layout: depths, a global preview


def build_sample(out: Path) -> tuple[Path, dict | None]:
    """Generate the sample store unless an up-to-date one is there."""
    stamp = hashlib.sha256(Path(sample.__file__).read_bytes() + repr(SPEC).encode()).hexdigest()[:16]
    store = out / "sample.zarr"
    marker = out / "sample.stamp"
    if store.exists() and marker.exists() and marker.read_text() == stamp:
        return store, None
    shutil.rmtree(store, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    summary = sample.generate(store, SPEC)
    marker.write_text(stamp)
    return store, summary


def render_in_qgis(url: str, server, out: Path) -> dict:
    """Layers made by the plugin, drawn by QGIS's own renderer; what each cost on the wire."""
    from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform,
                           QgsMapRendererParallelJob, QgsMapSettings, QgsProject, QgsRectangle)
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    app = QgsApplication([], False)
    app.initQgis()
    try:
        from tessera_qgis import provider
        from tessera_qgis.core.store import open_store
        from tessera_qgis.layers import make_layer

        def draw(layer, name: str, bbox=(-0.06, 52.17, 0.06, 52.23)) -> dict:
            provider.forget_stores()  # each map from a cold start: its own cost
            before = server.stats()
            ms = QgsMapSettings()
            ms.setLayers([layer])
            ms.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
            tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), ms.destinationCrs(),
                                        QgsProject.instance())
            ms.setExtent(tr.transformBoundingBox(QgsRectangle(*bbox)))
            ms.setOutputSize(QSize(1000, 820))
            ms.setBackgroundColor(QColor(255, 255, 255))
            job = QgsMapRendererParallelJob(ms)
            job.start()
            job.waitForFinished()
            path = out / f"{name}.png"
            job.renderedImage().save(str(path))
            after = server.stats()
            return {"path": path, "layer": layer.name(), "errors": [e.message for e in job.errors()],
                    "requests": after["requests"] - before["requests"],
                    "mb": (after["bytes"] - before["bytes"]) / 1e6,
                    "drawn from": layer.dataProvider().state.frame_label or "the embeddings"}

        maps = {}
        maps["depth4"] = draw(make_layer(url, 2025, bands=[1, 2, 3]), "depth4_map")
        maps["pca"] = draw(make_layer(url, 2025, pca="view"), "pca_map")
        # Zoomed out: a view over 30 km with a budget of 100,000 source pixels standing in for
        # the country-sized views a real store would need millions for: the global preview.
        maps["preview"] = draw(make_layer(url, 2025, bands=[1, 2, 3], budget=100_000), "preview_map",
                               bbox=(-0.25, 52.1, 0.25, 52.3))
        reference = open_store(url).pixel(*SIMILARITY_POINT, 2025)["embedding"]
        maps["similarity"] = draw(make_layer(url, 2025, similarity=reference, threshold=0.5), "similarity_map")
        return maps
    finally:
        from tessera_qgis import provider

        provider.forget_stores()
        app.exitQgis()


def shown(path: Path) -> str:
    """A path as the user sees it: relative to the checkout (the demo may run in a chroot)."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "demo")
    args = ap.parse_args()
    out = args.out if args.out.is_absolute() else REPO / args.out
    t0 = time.perf_counter()
    store, summary = build_sample(out)
    if summary:
        summary["path"] = shown(store)
    print(format_sample_summary(summary) if summary else f"Sample store up to date: {shown(store)}")

    from support.servers import RangeHTTPServer

    from tessera_qgis.core.export import ExportRequest, export
    from tessera_qgis.core.store import open_store

    with RangeHTTPServer(store.parent) as server:
        url = f"{server.url}/{store.name}"
        print(f"\nServing it at {url} (127.0.0.1 only, HTTP Range like object storage)")
        maps = render_in_qgis(url, server, out)
        said = {
            "depth4": "bands 1-3 in the store's own colours (its published stretch), read from the depth-4 "
                      "array embeddings_d4",
            "pca": "a PCA of all 128 dimensions fitted to the view (a v2 store publishes no PCA)",
            "preview": "zoomed out over 30 km: the store's global preview (global_rgb), nothing read from "
                       "the embeddings or the scales",
            "similarity": f"cosine similarity to the pixel at lon {SIMILARITY_POINT[0]}, lat {SIMILARITY_POINT[1]} "
                          "(in the town): most similar in yellow, under 0.5 transparent",
        }
        for i, (key, m) in enumerate(maps.items()):
            print(f"\n{'1.' if i == 0 else '  '} {shown(m['path'])}\n   {said[key]}; drawn from "
                  f"{m['drawn from']}; {m['requests']} requests, {m['mb']:.1f} MB."
                  + (f" Errors: {m['errors']}" if m["errors"] else ""))
        st = open_store(url)
        px = st.pixel(-0.03, 52.2, 2025)
        print(f"\n2. Pixel at lon -0.03, lat 52.2 (2025): zone {px['zone']}, row {px['row']}, col {px['col']}, "
              f"scale {px['scale']:.4g}; first values "
              + ", ".join(f"{v:.3f}" for v in px["embedding"][:5]) + ", ...")
        tif = out / "study_area.tif"
        export(st, ExportRequest(STUDY_AREA, "EPSG:4326", 2025, str(tif), bands=[1, 2, 3], dst_crs="EPSG:32630"))
        print(f"\n3. {shown(tif)}\n   the study area {STUDY_AREA} (lon/lat) as float32 GeoTIFF, bands 1-3, in "
              "EPSG:32630, NaN where there is no data (water); it spans both zones in one file.")
        print(f"\n   {server.stats()['requests']} HTTP requests, {server.stats()['bytes'] / 1e6:.1f} MB served")
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
