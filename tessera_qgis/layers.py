"""Build TESSERA map layers: one public function for the dialog, the tools and scripts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from qgis.core import (Qgis, QgsColorRampShader, QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsProject,
                       QgsRasterLayer, QgsRasterShader, QgsSingleBandPseudoColorRenderer, QgsStyle)
from qgis.PyQt.QtCore import QCoreApplication, QObject

from .core.geo import lonlat_bounds
from .core.layerspec import DEFAULT_BUDGET, LayerSpec, encode_pca, encode_vector
from .core.pca import PCA
from .core.region import data_extent
from .core.storeref import StoreRef
from .core.utm import zone_of_lon
from .core.view import View, published_ranges
from .credentials import has_password, store_password
from .log import notifier
from .provider import PROVIDER_KEY, register, state_for
from .store_access import shared_store


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraLayers", text)


STRETCH_PROPERTY = "tessera/stretch"  # how a layer's bands are stretched: "store", "view" or "fixed"


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
    stretch: str = "view"  # where the bands' ranges came from: "store" (published), "view", "fixed"


def prepare_layer(store: StoreRef | str, year: int, bands: Sequence[int] | None = None,
                  pca: str | PCA | None = None, name: str | None = None, view_bounds=None,
                  view_crs: str = "EPSG:4326", zone: str | None = None,
                  stretch: Sequence[tuple[float, float]] | None = None, similarity=None, threshold: float = 0.5,
                  cancel=None, budget: int | None = None, detail: str = "", depth: int | None = None,
                  colours: str | None = None, **ref_options) -> PreparedLayer:
    """The network part of making a layer (open the store, check year and bands, choose the
    CRS, the starting stretch): safe in a QgsTask. `build_layer()` then makes the layer on the
    main thread without touching the network. `store` is a StoreRef, or a URL with the
    connection's options as keywords (cache, authcfg, s3_endpoint, s3_region, anon). The
    layer's name is `name`, else layer_title() followed by " (`detail`)" when given.
    `depth`: PCA and similarity on a Matryoshka prefix (4, 16) of a store that has depths.
    `colours`: the store's published stretch as is (None), equalised by its CDF ("cdf") or the
    zone's own ("zone")."""
    ref = store if isinstance(store, StoreRef) else StoreRef(str(store), **ref_options)
    if bands is None and pca is None and similarity is None:
        pca = "global"
    spec = LayerSpec(store=ref, year=int(year), bands=tuple(bands) if bands else None,
                     pca=encode_pca(pca) if isinstance(pca, PCA) else pca,
                     similarity=encode_vector(similarity) if similarity is not None else None,
                     budget=budget or DEFAULT_BUDGET, depth=depth, stretch=colours)
    opened = shared_store(ref, cancel)
    View(opened, spec)  # checks the year, the bands and a reference's length
    crs = choose_crs(opened, view_bounds, view_crs, zone)
    spec = spec.with_(crs=crs, extent=data_extent(opened, crs, zone), zone=zone)
    uri = spec.to_uri()
    view = state_for(uri).view()  # the layer's own view: a PCA fitted here is the one it draws
    if stretch:
        ranges = list(stretch)
    elif spec.pca == "view":  # fitted to the first view drawn, not here
        ranges = []
    elif view_bounds is not None:
        ranges = view.default_ranges(view_bounds, view_crs, cancel, threshold)
    else:
        ranges = view.default_ranges(spec.extent, spec.crs, cancel, threshold)
    title = name or layer_title(opened, spec) + (f" ({detail})" if detail else "")
    style = {"similarity": "similarity", "pca": "pca"}.get(spec.mode) or ("rgb" if len(spec.bands) == 3 else "ramp")
    source = "fixed" if stretch else "view"
    if spec.bands is not None and not stretch and published_ranges(opened, spec.year, spec.bands, view.entry):
        source = "store"
    return PreparedLayer(uri, title, style, ranges, threshold, source)


def build_layer(prepared: PreparedLayer) -> QgsRasterLayer:
    """The styled QgsRasterLayer (main thread; no network)."""
    register()
    layer = QgsRasterLayer(prepared.uri, prepared.name, PROVIDER_KEY)
    if not layer.isValid():
        provider = layer.dataProvider()
        raise ValueError("the TESSERA layer is not valid: " + (provider.lastError() if provider else ""))
    if prepared.style in ("rgb", "ramp"):
        layer.setCustomProperty(STRETCH_PROPERTY, prepared.stretch)
    if prepared.style == "similarity":
        apply_ramp(layer, prepared.threshold, 1.0, clip=True)
    elif prepared.style in ("pca", "rgb") and len(prepared.ranges) == 3:
        apply_rgb(layer, prepared.ranges)
    elif prepared.style == "ramp" and prepared.ranges:
        apply_ramp(layer, *prepared.ranges[0])
    return layer


def make_layer(store: StoreRef | str, year: int, bands: Sequence[int] | None = None,
               pca: str | PCA | None = None, name: str | None = None, view_bounds=None,
               view_crs: str = "EPSG:4326", zone: str | None = None,
               stretch: Sequence[tuple[float, float]] | None = None, similarity=None, threshold: float = 0.5,
               **options) -> QgsRasterLayer:
    """A styled TESSERA layer for a store (a StoreRef or a URL) and year: `bands` (1 to 3
    band numbers), `pca` ("global", "view" or a fitted PCA) or `similarity` (a reference
    embedding: cosine similarity with a colour ramp, values under `threshold` transparent).
    It opens the store (network I/O): from the UI, use prepare_layer() in a task and
    build_layer() after. `options`: budget, and with a URL cache, authcfg, s3_endpoint,
    s3_region, anon."""
    register()
    if has_password(store.url if isinstance(store, StoreRef) else str(store)):
        # the URL's password into QGIS's authentication database: never into the layer's URI
        if isinstance(store, StoreRef):
            url, authcfg = store_password(store.url, store.authcfg)
            store = store.with_(url=url, authcfg=authcfg)
        else:
            store, options["authcfg"] = store_password(str(store), options.get("authcfg"))
    return build_layer(prepare_layer(store, year, bands, pca, name, view_bounds, view_crs, zone, stretch,
                                     similarity, threshold, **options))


def layer_title(store, spec: LayerSpec) -> str:
    """"TESSERA <dataset> <year> [<zone>] <what is shown>", e.g. "TESSERA sample 2024 PCA" or
    "TESSERA v1.1 2025 bands 4,5,6". The dataset is the store's `tessera:dataset`, else the
    store's folder name; `store` may be None (not opened yet: the folder name then)."""
    if spec.mode == "bands":
        shown = ("band " if len(spec.bands) == 1 else "bands ") + ",".join(map(str, spec.bands))
    else:
        shown = {"pca": "PCA", "similarity": "similarity"}[spec.mode]
    attrs = getattr(store, "attrs", None) or {}
    dataset = attrs.get("tessera:dataset") or store_name(spec.url)
    zone = f" {spec.zone}" if spec.zone else ""
    depth = f" d{spec.depth}" if spec.depth else ""
    return f"TESSERA {dataset} {spec.year}{zone} {shown}{depth}"


def store_name(url: str) -> str:
    """A store's short name from its URL or folder: the last path part without ".zarr"."""
    name = str(url).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return (name[:-5] if name.lower().endswith(".zarr") else name) or "store"


def retitle(name: str, old_title: str, new_title: str) -> str:
    """A layer's name after its spec changed: the automatic part (the old spec's title, kept
    at the start of the name) replaced by the new spec's; a name the user chose is kept."""
    return new_title + name[len(old_title):] if name.startswith(old_title) else name


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


class FrameLabels(QObject):
    """Keeps what a TESSERA layer draws from in its tooltip (the layer's metadata abstract)
    and legend (its band names): "preview (2025)" or "coarse preview" when zoomed out, nothing
    at 10 m. The provider signals changes from render threads; this runs on the main thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        notifier.frame.connect(self.update)

    def update(self, uri: str, label: str) -> None:
        for layer in QgsProject.instance().mapLayers().values():
            if not isinstance(layer, QgsRasterLayer) or layer.providerType() != PROVIDER_KEY or layer.source() != uri:
                continue
            md = layer.metadata()
            md.setAbstract(frame_text(label))
            layer.setMetadata(md)
            layer.legendChanged.emit()

    def close(self) -> None:
        try:
            notifier.frame.disconnect(self.update)
        except (TypeError, RuntimeError):
            pass


def frame_text(label: str) -> str:
    """The tooltip line for what a layer draws from ("" at 10 m)."""
    if not label:
        return ""
    return tr("Drawn from the {}: zoom in to see the embeddings.").format(label)
