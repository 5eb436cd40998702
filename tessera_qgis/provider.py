"""The `tessera` raster data provider: a TESSERA store as an ordinary QgsRasterLayer.

QGIS asks for blocks of the visible extent at screen resolution, from render threads; the
provider computes each tile once for all its bands (from the Qt-free core), caches it, and
returns it band by band. Everything QGIS can call is guarded: an exception escaping
`block`, `identify`, `clone` or the factory would abort QGIS, so each one catches
everything, reports it (message log and message bar) and returns an empty answer.

State shared by a provider and its clones (the opened store, the PCA, recent tiles) lives
in a `LayerState`, so clones cost nothing and never re-read what another clone has read.
"""
from __future__ import annotations

import math
import sys
import threading
import traceback
from collections import OrderedDict

import numpy as np
from qgis.core import (Qgis, QgsCoordinateReferenceSystem, QgsDataProvider, QgsMessageLog, QgsProviderMetadata,
                       QgsProviderRegistry, QgsRasterBandStats, QgsRasterBlock, QgsRasterDataProvider,
                       QgsRasterIdentifyResult, QgsRectangle)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QByteArray, QCoreApplication, QObject

from .core.errors import Cancelled, ExtentError, TesseraError
from .core.layerspec import LayerSpec, decode_pca, decode_vector
from .core.memory import release_memory
from .core.pca import PCA, sample_valid
from .core.region import grid_reduce, project_grid, similarity_grid, transformer
from .core.sources import StoreOptions  # noqa: F401 (type of store_options)
from .core.store import TesseraStore, open_store
from .core.urls import redact_url
from .log import log, report


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraProvider", text)

PROVIDER_KEY = "tessera"
DESCRIPTION = "TESSERA embeddings (Zarr v3)"

# Clones are handed to C++ (QGIS deletes them after each render) but their Python half must
# stay alive meanwhile: ownership goes to this long-lived object (see QGIS_PROVIDER_NOTES).
_OWNER = QObject()
_STATES: dict[str, "LayerState"] = {}
_STATES_LOCK = threading.Lock()
_STORES: dict[tuple, TesseraStore] = {}
_STORES_LOCK = threading.Lock()
_TILE_CACHE = 6


def store_options(spec: LayerSpec) -> StoreOptions:
    """StoreOptions for a layer: the plugin settings and QGIS's proxy, the layer's own S3
    settings, and S3 keys from its QGIS auth configuration (never from the URI)."""
    from .settings import Settings

    key = secret = None
    if spec.authcfg:
        key, secret = auth_credentials(spec.authcfg)
    overrides = dict(anon=True if spec.anon else None, key=key, secret=secret, endpoint_url=spec.s3_endpoint,
                     region=spec.s3_region)
    if spec.cache:
        overrides["cache_dir"] = spec.cache
    return Settings.load().store_options(url=spec.url, **overrides)


def auth_credentials(authcfg: str) -> tuple[str | None, str | None]:
    """(key, secret) of a QGIS authentication configuration (Basic: username/password)."""
    from qgis.core import QgsApplication, QgsAuthMethodConfig

    cfg = QgsAuthMethodConfig()
    if not QgsApplication.authManager().loadAuthenticationConfig(authcfg, cfg, True):
        raise TesseraError(f"QGIS authentication configuration {authcfg!r} cannot be loaded")
    return cfg.config("username") or None, cfg.config("password") or None


def shared_store(spec: LayerSpec) -> TesseraStore:
    """One opened store per (url, connection settings), shared by every layer using it."""
    key = (spec.url, spec.authcfg, spec.s3_endpoint, spec.s3_region, spec.anon, spec.cache)
    with _STORES_LOCK:
        store = _STORES.get(key)
    if store is not None:
        return store
    store = open_store(spec.url, store_options(spec))
    with _STORES_LOCK:
        return _STORES.setdefault(key, store)


def forget_stores() -> None:
    with _STORES_LOCK:
        _STORES.clear()
    with _STATES_LOCK:
        _STATES.clear()


class LayerState:
    """What a provider and all its clones share."""

    def __init__(self, spec: LayerSpec) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        self._store: TesseraStore | None = None
        self.pca: PCA | None = decode_pca(spec.pca) if spec.pca and spec.pca.startswith("b64:") else None
        self.tiles: OrderedDict = OrderedDict()
        self.tile_locks: dict = {}
        self.last_error = ""
        self.over_budget = False
        self.fail_next = False  # tests force a failure inside block() with this

    @property
    def opened_store(self) -> TesseraStore | None:
        """The store if it is open already (never opens it: safe on the UI thread)."""
        return self._store

    def store(self) -> TesseraStore:
        with self.lock:
            if self._store is None:
                self._store = shared_store(self.spec)
                self._store.check_year(self.spec.year)
            return self._store

    def pca_model(self, values_for_fit=None) -> PCA | None:
        with self.lock:
            if self.pca is None and self.spec.pca == "global":
                st = self.store().stretch(self.spec.year)
                self.pca = PCA.from_stretch(st) if st else None
                if self.pca is None:
                    log("the store has no global PCA for this year: fitting one to the first view")
            return self.pca

    def set_pca(self, pca: PCA) -> None:
        with self.lock:
            self.pca = pca
            self.tiles.clear()

    def tile(self, extent: tuple, width: int, height: int, crs: str, cancel) -> np.ndarray:
        """Provider bands (k, height, width) float32 for an extent; computed once per tile."""
        key = (extent, width, height)
        with self.lock:
            if key in self.tiles:
                self.tiles.move_to_end(key)
                return self.tiles[key]
            tile_lock = self.tile_locks.setdefault(key, threading.Lock())
        with tile_lock:  # the three band requests of one tile compute it once
            with self.lock:
                if key in self.tiles:
                    return self.tiles[key]
            values = self._compute(extent, width, height, crs, cancel)
            release_memory(min_interval=1.0)  # decoding threads fragment the heap (see core/memory.py)
            with self.lock:
                self.tiles[key] = values
                self.tile_locks.pop(key, None)
                while len(self.tiles) > _TILE_CACHE:
                    self.tiles.popitem(last=False)
            return values

    def _compute(self, extent, width, height, crs, cancel) -> np.ndarray:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("forced failure inside the provider (test)")
        store = self.store()
        xmin, ymin, xmax, ymax = extent
        transform = (
            (xmax - xmin) / width, 0.0, xmin, 0.0, -(ymax - ymin) / height, ymax)
        spec = self.spec
        budget = spec.budget
        if spec.bands is not None:
            def deq(q, s):
                return q.astype(np.float32) * s[None]

            out, _ = grid_reduce(store, spec.year, crs, transform, width, height, deq, len(spec.bands),
                                 np.float32, np.nan, spec.bands, cancel, budget)
            return out
        if spec.similarity is not None:
            return similarity_grid(store, spec.year, decode_vector(spec.similarity), crs, transform, width, height,
                                   cancel, budget)
        pca = self.pca_model()
        if pca is None:  # pca=view (or no global PCA): fit on this view, then keep the fit
            values, _ = grid_reduce(store, spec.year, crs, transform, width, height,
                                    lambda q, s: q.astype(np.float32) * s[None], store.bands, np.float32,
                                    np.nan, None, cancel, budget)
            samples = sample_valid(values, 100_000)
            if len(samples) < 3:
                return np.full((3, height, width), np.nan, dtype=np.float32)
            with self.lock:
                if self.pca is None:
                    self.pca = PCA.fit(samples)
                pca = self.pca
            return pca.project(values)
        return project_grid(store, spec.year, pca, crs, transform, width, height, cancel, budget)


def state_for(uri: str) -> LayerState:
    with _STATES_LOCK:
        state = _STATES.get(uri)
        if state is None:
            state = _STATES[uri] = LayerState(LayerSpec.from_uri(uri))
        return state


class TesseraProvider(QgsRasterDataProvider):
    def __init__(self, uri: str, options=QgsDataProvider.ProviderOptions(),
                 flags=Qgis.DataProviderReadFlags(), state: LayerState | None = None) -> None:
        super().__init__(uri, options, flags)
        self._uri = uri
        self._options = options
        self._flags = flags
        self._valid = False
        self._error = ""
        self.state = state
        self._crs = QgsCoordinateReferenceSystem()
        self._extent = QgsRectangle()
        try:
            if self.state is None:
                self.state = state_for(uri)
            self._init_geometry()
            self._valid = True
        except Exception as exc:  # an invalid layer with a message, never a crash
            self._error = redact_url(str(exc) if isinstance(exc, (TesseraError, ValueError))
                                     else f"{type(exc).__name__}: {exc}")
            log(f"cannot open layer: {self._error}", Qgis.MessageLevel.Critical)

    def _init_geometry(self) -> None:
        spec = self.state.spec
        crs = spec.crs
        extent = spec.extent
        if crs is None or extent is None:  # not given by the URI: ask the store (network)
            store = self.state.store()
            crs = crs or next(iter(store.zones.values())).crs
            extent = extent or data_extent(store, crs)
        self._crs = QgsCoordinateReferenceSystem(crs)
        if not self._crs.isValid():
            raise ValueError(f"unknown CRS {crs!r}")
        self._extent = QgsRectangle(*extent)

    # -- identity -----------------------------------------------------------------------------
    @classmethod
    def providerKey(cls) -> str:  # noqa: N802
        return PROVIDER_KEY

    def name(self) -> str:
        return PROVIDER_KEY

    def description(self) -> str:
        return DESCRIPTION

    def isValid(self) -> bool:  # noqa: N802
        return self._valid

    def lastError(self) -> str:  # noqa: N802
        return self._error or (self.state.last_error if self.state else "")

    def lastErrorTitle(self) -> str:  # noqa: N802
        return "TESSERA"

    def crs(self) -> QgsCoordinateReferenceSystem:
        return self._crs

    def extent(self) -> QgsRectangle:
        return self._extent

    def bandCount(self) -> int:  # noqa: N802
        return self.state.spec.band_count if self.state else 1

    def dataType(self, band: int) -> Qgis.DataType:  # noqa: N802
        return Qgis.DataType.Float32

    def sourceDataType(self, band: int) -> Qgis.DataType:  # noqa: N802
        return Qgis.DataType.Float32

    def sourceHasNoDataValue(self, band: int) -> bool:  # noqa: N802
        return True

    def sourceNoDataValue(self, band: int) -> float:  # noqa: N802
        return float("nan")

    def xSize(self) -> int:  # noqa: N802
        return max(1, int(round(self._extent.width() / 10.0)))

    def ySize(self) -> int:  # noqa: N802
        return max(1, int(round(self._extent.height() / 10.0))) if not self._crs.isGeographic() else \
            max(1, int(round(self._extent.height() / (10.0 / 111320.0))))

    def generateBandName(self, band: int) -> str:  # noqa: N802
        spec = self.state.spec if self.state else None
        if spec is None:
            return f"Band {band}"
        if spec.similarity is not None:
            return "similarity"
        if spec.pca is not None:
            return f"PC{band}"
        return f"A{spec.bands[band - 1]:03d}"

    def colorInterpretation(self, band: int) -> Qgis.RasterColorInterpretation:  # noqa: N802
        return Qgis.RasterColorInterpretation.Undefined

    def htmlMetadata(self) -> str:  # noqa: N802
        spec = self.state.spec
        if spec.similarity:
            mode = "cosine similarity to a reference embedding"
        elif spec.pca:
            mode = f"PCA ({spec.pca if not spec.pca.startswith('b64:') else 'saved fit'})"
        else:
            mode = "bands " + ",".join(map(str, spec.bands))
        return f"<tr><td>TESSERA</td><td>{redact_url(spec.url)}<br>year {spec.year}, {mode}</td></tr>"

    def capabilities(self):
        return Qgis.RasterInterfaceCapabilities(
            Qgis.RasterInterfaceCapability.Size | Qgis.RasterInterfaceCapability.Identify
            | Qgis.RasterInterfaceCapability.IdentifyValue)

    def clone(self):
        try:
            other = TesseraProvider(self._uri, self._options, self._flags, self.state)
            sip.transferto(other, _OWNER)
            return other
        except Exception:
            log("clone failed: " + traceback.format_exc(), Qgis.MessageLevel.Critical)
            return None

    # -- statistics (answered cheaply: QGIS would otherwise read the whole extent) ----------------
    def _range(self, band: int) -> tuple[float, float]:
        spec = self.state.spec
        pca = self.state.pca
        if spec.similarity is not None:
            return 0.0, 1.0
        if spec.pca is not None and pca is not None:
            return float(pca.lo[band - 1]), float(pca.hi[band - 1])
        if spec.pca is not None:
            return -3.0, 3.0
        return -2.5, 2.5

    def cumulativeCut(self, band, lower, upper, extent=QgsRectangle(), sample=0):  # noqa: N802
        try:
            return self._range(band)
        except Exception:
            return -3.0, 3.0

    def bandStatistics(self, band, stats=Qgis.RasterBandStatistic.All, extent=QgsRectangle(), sample=0,
                       feedback=None):  # noqa: N802
        out = QgsRasterBandStats()
        try:
            lo, hi = self._range(band)
        except Exception:
            lo, hi = -3.0, 3.0
        out.bandNumber = band
        out.minimumValue, out.maximumValue = lo, hi
        out.range = hi - lo
        out.mean = (lo + hi) / 2.0
        out.stdDev = (hi - lo) / 4.0
        out.statsGathered = stats
        return out

    def hasStatistics(self, band, stats=Qgis.RasterBandStatistic.All, extent=QgsRectangle(), sample=0):  # noqa: N802
        return True

    # -- data ---------------------------------------------------------------------------------
    def block(self, band, extent, width, height, feedback=None):
        """One band of a tile; never raises (an exception here would abort QGIS)."""
        try:
            def cancel() -> bool:
                return feedback is not None and feedback.isCanceled()

            key = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
            try:
                values = self.state.tile(key, width, height, self._crs.authid() or self._crs.toWkt(), cancel)
            except ExtentError as exc:
                if "budget" in str(exc):
                    self.state.over_budget = True
                    report("TESSERA", tr("Zoom in to see the embeddings: {}").format(exc),
                           Qgis.MessageLevel.Info)
                    return self._nodata_block(width, height)
                raise
            self.state.over_budget = False
            data = np.ascontiguousarray(values[band - 1], dtype=np.float32)
            out = QgsRasterBlock(Qgis.DataType.Float32, width, height)
            out.setData(QByteArray(data.tobytes()))
            out.setNoDataValue(float("nan"))
            return out
        except Cancelled:
            return self._nodata_block(width, height)
        except Exception as exc:
            text = redact_url(str(exc) if isinstance(exc, TesseraError) else f"{type(exc).__name__}: {exc}")
            self.state.last_error = text
            log("drawing failed: " + traceback.format_exc(), Qgis.MessageLevel.Critical)
            report("TESSERA", tr("Some of the layer could not be drawn: {}").format(text), Qgis.MessageLevel.Warning)
            if feedback is not None:
                feedback.appendError(text)
            return self._nodata_block(width, height)

    def _nodata_block(self, width: int, height: int) -> QgsRasterBlock:
        try:
            out = QgsRasterBlock(Qgis.DataType.Float32, width, height)
            out.setData(QByteArray(np.full((height, width), np.nan, np.float32).tobytes()))
            out.setNoDataValue(float("nan"))
            return out
        except Exception:
            return QgsRasterBlock()

    def identify(self, point, fmt, extent=QgsRectangle(), width=0, height=0, dpi=96):
        """The provider bands' values at a point (in the layer CRS); never raises."""
        try:
            spec = self.state.spec
            store = self.state.store()
            crs = self._crs.authid()
            lon, lat = transformer(crs, "EPSG:4326").transform(point.x(), point.y())
            px = store.pixel(lon, lat, spec.year)
            if not px["valid"]:
                values = {b: None for b in range(1, self.bandCount() + 1)}
            elif spec.bands is not None:
                values = {i + 1: px["embedding"][b - 1] for i, b in enumerate(spec.bands)}
            elif spec.similarity is not None:
                ref = decode_vector(spec.similarity).astype(np.float64)
                v = np.asarray(px["embedding"], dtype=np.float64)
                values = {1: float(ref @ v / max(np.linalg.norm(ref) * np.linalg.norm(v), 1e-12))}
            else:
                pca = self.state.pca_model()
                if pca is None:
                    values = {b: None for b in range(1, 4)}
                else:
                    v = np.asarray(px["embedding"], dtype=np.float64)
                    comps = pca.components @ (v - pca.mean)
                    values = {b + 1: float(comps[b]) for b in range(3)}
            return QgsRasterIdentifyResult(Qgis.RasterIdentifyFormat.Value, values)
        except Exception as exc:
            log("identify failed: " + traceback.format_exc(), Qgis.MessageLevel.Warning)
            from qgis.core import QgsError

            return QgsRasterIdentifyResult(QgsError(str(exc), "TESSERA"))


def data_extent(store: TesseraStore, crs: str) -> tuple[float, float, float, float]:
    """Bounds of the store's zones in `crs` (zone edges densified)."""
    from .core.region import _ring

    xs, ys = [], []
    for zone in store.zones.values():
        rx, ry = _ring(zone.bounds())
        tx, ty = transformer(zone.crs, crs).transform(rx, ry)
        xs.extend(v for v in tx if math.isfinite(v))
        ys.extend(v for v in ty if math.isfinite(v))
    return min(xs), min(ys), max(xs), max(ys)


def _create(uri, options=QgsDataProvider.ProviderOptions(), flags=Qgis.DataProviderReadFlags()):
    """The provider factory. It never raises; a failure is an invalid layer with a message."""
    try:
        provider = TesseraProvider(uri, options, flags)
        sip.transferto(provider, _OWNER)
        return provider
    except Exception:
        log("provider factory failed: " + traceback.format_exc(), Qgis.MessageLevel.Critical)
        return None


def _trampoline(uri, options=QgsDataProvider.ProviderOptions(), flags=Qgis.DataProviderReadFlags()):
    """What the registry holds. QGIS cannot unregister a provider, so this forwards to the
    provider module that is loaded now (a reloaded plugin brings new code) and to nothing
    once the plugin is unloaded: the layer is then invalid and says why."""
    try:
        module = sys.modules.get(__name__)
        if module is None or not getattr(module, "_ACTIVE", False):
            QgsMessageLog.logMessage("the TESSERA plugin is not loaded: enable it to draw this layer",
                                     "TESSERA", Qgis.MessageLevel.Warning)
            return None
        return module._create(uri, options, flags)
    except Exception:
        return None


_ACTIVE = False


def register() -> bool:
    """Register the provider (once per QGIS session) and activate it."""
    global _ACTIVE
    _ACTIVE = True
    registry = QgsProviderRegistry.instance()
    if registry.providerMetadata(PROVIDER_KEY) is not None:
        return True
    metadata = QgsProviderMetadata(PROVIDER_KEY, DESCRIPTION, _trampoline)
    _KEEP.append(metadata)
    return registry.registerProvider(metadata)


def unregister() -> None:
    """Deactivate the provider: QGIS cannot drop a registered provider, so new layers of
    this kind become invalid (with a message) until the plugin is loaded again."""
    global _ACTIVE
    _ACTIVE = False
    forget_stores()


_KEEP: list = []
