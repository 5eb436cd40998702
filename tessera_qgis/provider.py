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

import html
import sys
import threading
import traceback
from collections import OrderedDict

import numpy as np
from qgis.core import (Qgis, QgsCoordinateReferenceSystem, QgsDataProvider, QgsError, QgsMessageLog,
                       QgsProviderRegistry, QgsRasterBandStats, QgsRasterBlock, QgsRasterDataProvider,
                       QgsRasterIdentifyResult, QgsRectangle)
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QByteArray, QCoreApplication, QObject

from .core.errors import Cancelled, ExtentError, TesseraError
from .core.layerspec import DEFAULT_BUDGET, LayerSpec, decode_pca
from .core.memory import release_memory
from .core.pca import PCA
from .core.region import data_extent
from .core.store import TesseraStore
from .core.urls import redact_url
from .core.view import PREVIEWS, View
from .log import log, notifier, report
from .project_paths import TesseraProviderMetadata
from .settings import Settings
from .store_access import forget_stores as _forget_pool
from .store_access import opened_store, shared_store
from .temporal import YearViews, declare, requested_year


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraProvider", text)

PROVIDER_KEY = "tessera"
DESCRIPTION = "TESSERA embeddings (Zarr v3)"

# Clones are handed to C++ (QGIS deletes them after each render) but their Python half must
# stay alive meanwhile: ownership goes to this long-lived object (see QGIS_PROVIDER_NOTES).
_OWNER = QObject()
_STATES: dict[str, "LayerState"] = {}
_STATES_LOCK = threading.Lock()
_TILE_CACHE = 6


def forget_stores() -> None:
    """Drop every opened store and layer state (plugin unload, tests)."""
    _forget_pool()
    with _STATES_LOCK:
        _STATES.clear()


class LayerState:
    """What a provider and all its clones share: the layer's view of its store (opened on
    first use, off the UI thread), recent tiles, the last error."""

    def __init__(self, spec: LayerSpec) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        self._view: View | None = None
        self.years = YearViews()  # the layer in other years (the Temporal Controller)
        self._saved_pca: PCA | None = decode_pca(spec.pca) if spec.pca and spec.pca.startswith("b64:") else None
        self.tiles: OrderedDict = OrderedDict()
        self.tile_locks: dict = {}
        self.last_error = ""
        self.over_budget = False
        self.frame_kind = "embeddings"  # what the last tile was drawn from (see core.view.Frame)
        self.frame_label = ""
        self._notice = ("embeddings", "")
        self._budget_from_uri = spec.budget != DEFAULT_BUDGET
        self.previews = "auto"
        self.apply_settings(Settings.load())
        self.fail_next = False  # tests force a failure inside block() with this

    def apply_settings(self, settings: Settings) -> None:
        """The budget and preview choice of Options > TESSERA (a budget set in the URI wins);
        the next draw uses them."""
        with self.lock:
            self.previews = settings.previews if settings.previews in PREVIEWS else "auto"
            if not self._budget_from_uri and settings.budget_mpx > 0:
                self.spec = self.spec.with_(budget=settings.budget_mpx * 1_000_000)
                if self._view is not None:
                    self._view.spec = self._view.spec.with_(budget=self.spec.budget)
            self.tiles.clear()

    @property
    def opened_store(self) -> TesseraStore | None:
        """The store if it is open already (never opens it: safe on the UI thread)."""
        return opened_store(self.spec.store)

    def store(self) -> TesseraStore:
        return self.view().store

    def view(self) -> View:
        """The layer's view pipeline (opens the store on first use: network)."""
        with self.lock:
            if self._view is None:
                self._view = View(shared_store(self.spec.store), self.spec)
            return self._view

    @property
    def pca(self) -> PCA | None:
        """The PCA in use, if known yet (never touches the network)."""
        return self._view.pca if self._view is not None else self._saved_pca

    def pca_model(self) -> PCA | None:
        """The PCA in use: saved or global (opens the store); None while a fit is pending."""
        return self.view().pca

    def set_pca(self, pca: PCA) -> None:
        with self.lock:
            self.view().set_pca(pca)
            self.years.clear()
            self.tiles.clear()

    def tile(self, extent: tuple, width: int, height: int, crs: str, cancel, year: int | None = None) -> np.ndarray:
        """Provider bands (k, height, width) float32 for an extent (in `year`, default the
        layer's); computed once per tile."""
        key = (extent, width, height, year)
        with self.lock:
            if key in self.tiles:
                self.tiles.move_to_end(key)
                return self.tiles[key]
            tile_lock = self.tile_locks.setdefault(key, threading.Lock())
        with tile_lock:  # the three band requests of one tile compute it once
            with self.lock:
                if key in self.tiles:
                    return self.tiles[key]
            values = self._compute(extent, width, height, crs, cancel, year)
            release_memory(min_interval=1.0)  # decoding threads fragment the heap (see core/memory.py)
            with self.lock:
                self.tiles[key] = values
                self.tile_locks.pop(key, None)
                while len(self.tiles) > _TILE_CACHE:
                    self.tiles.popitem(last=False)
            return values

    def _compute(self, extent, width, height, crs, cancel, year=None) -> np.ndarray:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("forced failure inside the provider (test)")
        xmin, ymin, xmax, ymax = extent
        transform = ((xmax - xmin) / width, 0.0, xmin, 0.0, -(ymax - ymin) / height, ymax)
        view = self.view()
        if year is not None and year != self.spec.year:
            view = self.years.view(view, year, ((xmin, ymin, xmax, ymax), crs), cancel)
        frame = view.render(crs, transform, width, height, cancel, self.previews)
        self.frame_kind, self.frame_label = frame.kind, frame.label
        return frame.values

    def notice(self) -> str | None:
        """A one-line message when what the layer draws from changed (zoomed out to a
        preview, over the budget with previews off, or back); None when it did not, so a
        message is shown once per change, never per tile or band."""
        with self.lock:
            current = (self.frame_kind, self.frame_label)
            if current == self._notice:
                return None
            self._notice = current
        # One short line each (a message bar over a narrow map cuts the second line).
        if current[0] == "preview":
            return tr("Store {}: zoom in for the embeddings.").format(current[1])
        if current[0] == "coarse":
            return tr("Showing a coarse preview: zoom in for every pixel.")
        if current[0] == "over budget":
            return tr("Zoom in, or raise the budget in Options > TESSERA.")
        return None


def apply_settings() -> None:
    """Options > TESSERA was applied: every open layer takes the new budget and preview
    choice (repaint the layers to see it)."""
    settings = Settings.load()
    with _STATES_LOCK:
        states = list(_STATES.values())
    for state in states:
        state.apply_settings(settings)


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
            store = self.state.opened_store  # the store's years when known (no network here)
            declare(self, store.years if store is not None else [self.state.spec.year])
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
            if spec.zone is not None and spec.zone not in store.zones:
                raise ValueError(f"zone {spec.zone} is not in this store (it has {', '.join(store.zones)})")
            zone = store.zones[spec.zone] if spec.zone else next(iter(store.zones.values()))
            crs = crs or zone.crs
            extent = extent or data_extent(store, crs, spec.zone)
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
        label = f" ({self.state.frame_label})" if self.state.frame_label else ""
        if spec.similarity is not None:
            return "similarity" + label
        if spec.pca is not None:
            return f"PC{band}" + label
        return f"A{spec.bands[band - 1]:03d}" + label

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
        url = html.escape(spec.store.public_url)
        return f"<tr><td>TESSERA</td><td>{url}<br>year {spec.year}, {mode}</td></tr>"

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
                try:
                    return feedback is not None and feedback.isCanceled()
                except RuntimeError:  # QGIS deleted the feedback: the job that asked is gone
                    return True

            key = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
            spec = self.state.spec
            year = requested_year(self, self.state.store().years, spec.year)  # the time slider's
            if year is None:  # the slider is on a year the store does not have
                return self._nodata_block(width, height)
            try:
                values = self.state.tile(key, width, height, self._crs.authid() or self._crs.toWkt(), cancel,
                                         None if year == spec.year else year)
            except ExtentError as exc:
                if "budget" in str(exc):
                    self.state.over_budget = True
                    self.state.frame_kind, self.state.frame_label = "over budget", ""
                    notice = self.state.notice()  # once per change, not per tile
                    if notice:
                        report("TESSERA", notice, Qgis.MessageLevel.Info)
                    return self._nodata_block(width, height)
                raise
            self.state.over_budget = False
            before = self.state._notice
            notice = self.state.notice()
            if notice:
                report("TESSERA", notice, Qgis.MessageLevel.Info)
            if self.state._notice != before:  # the legend and tooltip say what is drawn (main thread)
                notifier.frame.emit(self._uri, self.state.frame_label)
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
            px = self.state.view().pixel(point.x(), point.y(), self._crs.authid())
            values = px["values"] or [None] * self.bandCount()
            return QgsRasterIdentifyResult(Qgis.RasterIdentifyFormat.Value,
                                           {b + 1: v for b, v in enumerate(values)})
        except Exception as exc:
            log("identify failed: " + traceback.format_exc(), Qgis.MessageLevel.Warning)
            return QgsRasterIdentifyResult(QgsError(str(exc), "TESSERA"))


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
    metadata = TesseraProviderMetadata(PROVIDER_KEY, DESCRIPTION, _trampoline)  # folder paths travel
    _KEEP.append(metadata)
    return registry.registerProvider(metadata)


def unregister() -> None:
    """Deactivate the provider: QGIS cannot drop a registered provider, so new layers of
    this kind become invalid (with a message) until the plugin is loaded again."""
    global _ACTIVE
    _ACTIVE = False
    forget_stores()


_KEEP: list = []
