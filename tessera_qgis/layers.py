"""Build TESSERA map layers: one public function for the dialog, the tools and scripts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from qgis.core import (Qgis, QgsColorRampShader, QgsContrastEnhancement, QgsMultiBandColorRenderer,
                       QgsRasterLayer, QgsRasterShader, QgsSingleBandPseudoColorRenderer, QgsStyle)

from .core.layerspec import LayerSpec
from .core.pca import PCA
from .core.region import lonlat_bounds, read_grid
from .core.utm import zone_of_lon
from .provider import PROVIDER_KEY, data_extent, register, shared_store, state_for


def choose_crs(store, view_bounds=None, view_crs: str = "EPSG:4326", zone: str | None = None) -> str:
    """The layer CRS: a chosen zone's, else the zone under the view's centre, else the first."""
    if zone:
        if zone not in store.zones:
            raise ValueError(f"zone {zone} is not in this store (it has {', '.join(store.zones)})")
        return store.zones[zone].crs
    if view_bounds is not None:
        w, s, e, n = lonlat_bounds(view_bounds, view_crs)
        name = f"utm{zone_of_lon((w + e) / 2):02d}"
        if name in store.zones:
            return store.zones[name].crs
    return next(iter(store.zones.values())).crs


@dataclass
class PreparedLayer:
    """Everything a layer needs, worked out off the UI thread (no Qt objects inside)."""

    uri: str
    name: str
    style: str  # "rgb", "ramp", "similarity" or "pca"
    ranges: list = field(default_factory=list)
    threshold: float = 0.5


def prepare_layer(url: str, year: int, bands: Sequence[int] | None = None, pca: str | PCA | None = None,
                  name: str | None = None, view_bounds=None, view_crs: str = "EPSG:4326",
                  zone: str | None = None, stretch: Sequence[tuple[float, float]] | None = None,
                  similarity=None, threshold: float = 0.5, **options) -> PreparedLayer:
    """The network part of making a layer (open the store, check year and bands, choose the
    CRS, sample a stretch): safe in a QgsTask. `build_layer()` then makes the layer on the
    main thread without touching the network."""
    from .core.layerspec import encode_pca, encode_vector

    if bands is None and pca is None and similarity is None:
        pca = "global"
    pca_value = encode_pca(pca) if isinstance(pca, PCA) else pca
    sim_value = encode_vector(similarity) if similarity is not None else None
    probe = LayerSpec(url=str(url), year=int(year), bands=tuple(bands) if bands else None, pca=pca_value,
                      similarity=sim_value, **options)
    store = shared_store(probe)
    store.check_year(probe.year)
    if probe.bands:
        store.check_bands(probe.bands)
    crs = choose_crs(store, view_bounds, view_crs, zone)
    spec = probe.with_(crs=crs, extent=data_extent(store, crs), zone=zone)
    uri = spec.to_uri()
    title = name or _title(store, spec)
    if spec.similarity is not None:
        return PreparedLayer(uri, title, "similarity", [(threshold, 1.0)], threshold)
    if spec.pca is not None:
        state = state_for(uri)
        state.store()  # opened here, off the UI thread
        model = state.pca_model()
        ranges = list(zip(model.lo.tolist(), model.hi.tolist())) if model is not None else []
        return PreparedLayer(uri, title, "pca", ranges)
    ranges = list(stretch) if stretch else sample_stretch(store, spec, view_bounds, view_crs)
    return PreparedLayer(uri, title, "rgb" if len(spec.bands) == 3 else "ramp", ranges)


def build_layer(prepared: PreparedLayer) -> QgsRasterLayer:
    """The styled QgsRasterLayer (main thread; no network)."""
    register()
    layer = QgsRasterLayer(prepared.uri, prepared.name, PROVIDER_KEY)
    if not layer.isValid():
        provider = layer.dataProvider()
        raise ValueError("the TESSERA layer is not valid: " + (provider.lastError() if provider else ""))
    if prepared.style == "similarity":
        apply_ramp(layer, prepared.threshold, 1.0, clip=True)
    elif prepared.style in ("pca", "rgb") and len(prepared.ranges) == 3:
        apply_rgb(layer, prepared.ranges)
    elif prepared.style == "ramp" and prepared.ranges:
        apply_ramp(layer, *prepared.ranges[0])
    return layer


def make_layer(url: str, year: int, bands: Sequence[int] | None = None, pca: str | PCA | None = None,
               name: str | None = None, view_bounds=None, view_crs: str = "EPSG:4326",
               zone: str | None = None, stretch: Sequence[tuple[float, float]] | None = None,
               similarity=None, threshold: float = 0.5, **options) -> QgsRasterLayer:
    """A styled TESSERA layer for a store URL and year: `bands` (1 to 3 band numbers), `pca`
    ("global", "view" or a fitted PCA) or `similarity` (a reference embedding: cosine
    similarity with a colour ramp, values under `threshold` transparent). It opens the store
    (network I/O): from the UI, use prepare_layer() in a task and build_layer() after.
    `options`: cache, budget, authcfg, s3_endpoint, s3_region, anon."""
    register()
    return build_layer(prepare_layer(url, year, bands, pca, name, view_bounds, view_crs, zone, stretch,
                                     similarity, threshold, **options))


def _title(store, spec: LayerSpec) -> str:
    mode = {"pca": "PCA", "similarity": "similarity"}.get(spec.mode) or "bands " + ",".join(map(str, spec.bands))
    dataset = store.attrs.get("tessera:dataset") or "TESSERA"
    return f"TESSERA {dataset} {spec.year} {mode}"


def sample_stretch(store, spec: LayerSpec, view_bounds=None, view_crs="EPSG:4326") -> list[tuple[float, float]]:
    """2-98 % of each band over a small grid (at most 256 x 256 px) of the view or the data."""
    from .core.region import _ring, transformer

    if view_bounds is None:
        bounds, crs = spec.extent, spec.crs
    else:
        bounds, crs = view_bounds, view_crs
    rx, ry = _ring(bounds)
    tx, ty = transformer(crs, spec.crs).transform(rx, ry)
    x0, x1, y0, y1 = min(tx), max(tx), min(ty), max(ty)
    res = max((x1 - x0) / 256, (y1 - y0) / 256, 10.0)
    w, h = max(1, int((x1 - x0) / res)), max(1, int((y1 - y0) / res))
    vals = read_grid(store, spec.year, spec.crs, (res, 0, x0, 0, -res, y1), w, h, bands=list(spec.bands))
    out = []
    for band in vals:
        v = band[np.isfinite(band)]
        out.append(tuple(np.percentile(v, [2, 98]).tolist()) if v.size else (-2.5, 2.5))
    return out


def _enhancement(lo: float, hi: float) -> QgsContrastEnhancement:
    ce = QgsContrastEnhancement(Qgis.DataType.Float32)
    ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
    ce.setMinimumValue(float(lo))
    ce.setMaximumValue(float(hi))
    return ce


def apply_rgb(layer: QgsRasterLayer, ranges: Sequence[tuple[float, float]]) -> None:
    """Bands 1, 2, 3 as red, green, blue, each stretched linearly between its (min, max)."""
    r = QgsMultiBandColorRenderer(layer.dataProvider(), 1, 2, 3)
    r.setRedContrastEnhancement(_enhancement(*ranges[0]))
    r.setGreenContrastEnhancement(_enhancement(*ranges[1]))
    r.setBlueContrastEnhancement(_enhancement(*ranges[2]))
    layer.setRenderer(r)
    layer.triggerRepaint()


def apply_ramp(layer: QgsRasterLayer, lo: float, hi: float, ramp_name: str = "Viridis", band: int = 1,
               clip: bool = False) -> None:
    """One band with a colour ramp between lo and hi (`clip`: values outside are transparent,
    which makes lo a threshold)."""
    ramp = QgsStyle.defaultStyle().colorRamp(ramp_name)
    shader_fn = QgsColorRampShader(float(lo), float(hi), ramp)
    shader_fn.classifyColorRamp(255, band=-1)
    shader_fn.setClip(clip)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(float(lo))
    renderer.setClassificationMax(float(hi))
    layer.setRenderer(renderer)
    layer.triggerRepaint()
