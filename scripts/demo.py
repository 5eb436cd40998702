#!/usr/bin/env python3
"""`make demo`: the main job on the bundled sample store, end to end, offline.

1. Builds the sample store (once; reused while the generator is unchanged).
2. Serves it over HTTP on 127.0.0.1 (with Range requests, like object storage).
3. Opens it through the plugin's own code in a headless QGIS: a PCA layer, rendered to PNG.
4. Looks up one pixel's embedding, and exports a study area to GeoTIFF (float32, 3 bands).
5. Prints where each output is and what it shows.
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


def build_sample(out: Path) -> tuple[Path, dict | None]:
    """Generate the sample store unless an up-to-date one is there."""
    stamp = hashlib.sha256(Path(sample.__file__).read_bytes()).hexdigest()[:16]
    store = out / "sample.zarr"
    marker = out / "sample.stamp"
    if store.exists() and marker.exists() and marker.read_text() == stamp:
        return store, None
    shutil.rmtree(store, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    summary = sample.generate(store, sample.SampleSpec())
    marker.write_text(stamp)
    return store, summary


def render_in_qgis(url: str, out_png: Path, sim_png: Path) -> dict:
    """A PCA layer and a similarity layer made by the plugin, drawn by QGIS's own renderer."""
    from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform,
                           QgsMapRendererParallelJob, QgsMapSettings, QgsProject, QgsRectangle)
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    app = QgsApplication([], False)
    app.initQgis()
    try:
        from tessera_qgis.core.store import open_store
        from tessera_qgis.layers import make_layer

        def draw(layer, path):
            ms = QgsMapSettings()
            ms.setLayers([layer])
            ms.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
            tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), ms.destinationCrs(),
                                        QgsProject.instance())
            ms.setExtent(tr.transformBoundingBox(QgsRectangle(-0.06, 52.17, 0.06, 52.23)))
            ms.setOutputSize(QSize(1000, 820))
            ms.setBackgroundColor(QColor(255, 255, 255))
            job = QgsMapRendererParallelJob(ms)
            job.start()
            job.waitForFinished()
            job.renderedImage().save(str(path))
            return [e.message for e in job.errors()]

        layer = make_layer(url, 2024, pca="global")
        errors = draw(layer, out_png)
        reference = open_store(url).pixel(*SIMILARITY_POINT, 2024)["embedding"]
        sim = make_layer(url, 2024, similarity=reference, threshold=0.5)
        errors += draw(sim, sim_png)
        info = {"layer": layer.name(), "crs": layer.crs().authid(), "errors": errors}
        del layer, sim
        return info
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
        png, sim_png = out / "pca_map.png", out / "similarity_map.png"
        info = render_in_qgis(url, png, sim_png)
        print(f"\n1. {shown(png)}\n   QGIS {info['crs']} layer '{info['layer']}' drawn in Web Mercator: the store's"
              " global PCA as colours; both UTM zones meet seamlessly at the 0 degree meridian."
              + (f" Errors: {info['errors']}" if info["errors"] else ""))
        print(f"\n   {shown(sim_png)}\n   cosine similarity to the pixel at lon {SIMILARITY_POINT[0]}, lat "
              f"{SIMILARITY_POINT[1]} (in the town): the town's built-up pixels from blue-green to yellow "
              "(most similar); everything under 0.5 is transparent.")
        st = open_store(url)
        px = st.pixel(-0.03, 52.2, 2024)
        print(f"\n2. Pixel at lon -0.03, lat 52.2 (2024): zone {px['zone']}, row {px['row']}, col {px['col']}, "
              f"scale {px['scale']:.4g}; first values "
              + ", ".join(f"{v:.3f}" for v in px["embedding"][:5]) + ", ...")
        tif = out / "study_area.tif"
        export(st, ExportRequest(STUDY_AREA, "EPSG:4326", 2024, str(tif), bands=[1, 2, 3], dst_crs="EPSG:32630"))
        print(f"\n3. {shown(tif)}\n   the study area {STUDY_AREA} (lon/lat) as float32 GeoTIFF, bands 1-3, in "
              "EPSG:32630, NaN where there is no data (water); it spans both zones in one file.")
        print(f"\n   {server.stats()['requests']} HTTP requests, {server.stats()['bytes'] / 1e6:.1f} MB served")
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
