"""Render an area to an RGB(A) image: bands stretched, or the PCA projection, through the
view pipeline (the same values and PCA rules as the map layer)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .gdal_io import driver, gdal_module
from .geo import check_bounds, transformer
from .layerspec import DEFAULT_BUDGET, LayerSpec
from .pca import PCA, stretch_bands, stretch_rgba
from .storeref import StoreRef
from .view import View, published_ranges

WEB_MERCATOR = "EPSG:3857"


def mercator_grid(bbox, width: int) -> tuple[tuple[float, ...], int, int]:
    """An EPSG:3857 grid `width` pixels wide covering a lon/lat bbox."""
    w, s, e, n = check_bounds(bbox)
    (x0, x1), (y0, y1) = transformer("EPSG:4326", WEB_MERCATOR).transform([w, e], [s, n])
    res = (x1 - x0) / width
    height = max(1, math.ceil((y1 - y0) / res))
    return (res, 0.0, x0, 0.0, -res, y1), width, height


def render_rgba(store, bbox, year: int, width: int = 1024, bands: Sequence[int] | None = None,
                pca: bool | PCA = False, depth: int | None = None, budget: int | None = DEFAULT_BUDGET,
                previews: str = "auto", stretch: str | None = None) -> tuple[np.ndarray, dict]:
    """uint8 (4, h, w) RGBA of a lon/lat bbox in Web Mercator, and a description.

    As on the map: over `budget` source pixels the store's preview (or a coarse one) is
    drawn instead (see View.render); `depth` runs PCA on a Matryoshka prefix; `stretch` picks
    the store's published colours (see core.view.STRETCHES)."""
    if width < 1 or width > 20000:
        raise ValueError("width must be 1 to 20000 pixels")
    transform, width, height = mercator_grid(bbox, width)
    ref = StoreRef(store.url)
    if pca is not False and pca is not None:
        view = View(store, LayerSpec(store=ref, year=year, pca="global", depth=depth, budget=budget,
                                     stretch=stretch))
        if isinstance(pca, PCA):
            view.set_pca(pca)
        frame = view.render(WEB_MERCATOR, transform, width, height, previews=previews)
        rgba = view.pca.stretch_components(frame.values)
        mode = f"PCA ({view.pca.source}{f', depth {view.depth}' if view.depth < store.bands else ''})"
    else:
        bands = store.check_bands(bands or [1, 2, 3])
        if len(bands) not in (1, 3):
            raise ValueError("render takes one band (grey) or three bands (RGB)")
        view = View(store, LayerSpec(store=ref, year=year, bands=tuple(bands), budget=budget, stretch=stretch))
        frame = view.render(WEB_MERCATOR, transform, width, height, previews=previews)
        ranges = published_ranges(store, year, bands, view.entry)
        rgba = stretch_rgba(frame.values, ranges) if ranges else stretch_bands(frame.values)
        if len(bands) == 1:
            rgba = np.concatenate([rgba[:1], rgba[:1], rgba[:1], rgba[1:]])
        mode = "bands " + ",".join(map(str, bands))
    if frame.kind != "embeddings":
        mode += f", {frame.label}"
    valid = float((rgba[3] > 0).mean())
    return rgba, {"width": width, "height": height, "mode": mode, "valid_fraction": valid,
                  "crs": WEB_MERCATOR, "transform": list(transform), "source": frame.kind}


def write_png(rgba: np.ndarray, path: str) -> None:
    mem = driver("MEM").Create("", rgba.shape[2], rgba.shape[1], 4, gdal_module().GDT_Byte)
    for i in range(4):
        mem.GetRasterBand(i + 1).WriteArray(rgba[i])
    driver("PNG").CreateCopy(str(path), mem)
    mem = None


def render_png(store, bbox, year: int, out: str, width: int = 1024, bands=None, pca: bool = False,
               depth: int | None = None, budget: int | None = DEFAULT_BUDGET, stretch: str | None = None) -> dict:
    rgba, info = render_rgba(store, bbox, year, width, bands, pca, depth, budget, stretch=stretch)
    write_png(rgba, out)
    return {"path": str(out), **info}
