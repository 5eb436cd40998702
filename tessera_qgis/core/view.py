"""The view pipeline: what a layer spec shows, on any output grid or at one point.

Every way of looking at a store goes through here: the QGIS provider (map tiles and
identify), `render` (PNG), the export and the analysis algorithms. The rules live once:

- which values a mode computes (`Product`: bands dequantised, PCA components, cosine
  similarity), from quantised blocks and from a single pixel's embedding alike;
- which PCA a layer uses (`choose_pca`: a saved fit, else the store's published global PCA,
  else one fitted to the region in view);
- the stretch a layer starts with (`View.default_ranges`: the PCA's, the store's published
  per-channel range, or 2 to 98 % of a small sample of the view: `percent_ranges`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .classify import polygon_mask
from .errors import BandError, ExtentError
from .geo import check_bounds, grid_bounds, grid_for, reproject_bounds, transformer
from .layerspec import LayerSpec, decode_pca, decode_vector
from .pca import PCA, TooFewPixels, percent_ranges
from .quant import scales_or_nan, unit, valid_scales
from .preview import coarse_values, global_preview
from .region import fit_pca, grid_reduce, plan
from .store import TesseraStore

Cancel = Callable[[], bool] | None
SAMPLE_SIDE = 256  # a stretch is sampled on at most SAMPLE_SIDE x SAMPLE_SIDE output pixels
PREVIEWS = ("auto", "coarse", "none")  # over the budget: the store's preview, else a coarse
# one ("auto"); always the coarse one ("coarse"); nothing, "zoom in" ("none")


@dataclass(frozen=True)
class Frame:
    """What a view drew on a grid: `values` (count, h, w), and from what: "embeddings" (10 m
    data), "preview" (the store's global preview of `year`) or "coarse" (a sample of chunks)."""

    values: np.ndarray
    kind: str = "embeddings"
    year: int | None = None

    @property
    def label(self) -> str:
        if self.kind == "preview":
            return f"preview ({self.year})" if self.year else "preview"
        return "coarse preview" if self.kind == "coarse" else ""


# -- products: per-pixel values of a mode ------------------------------------------------------
@dataclass(frozen=True)
class Product:
    """Values a mode computes per pixel. `bands` are the source bands it reads (from 1);
    `names` its output bands. `from_quantised(q (len(bands), n) int8, scales (n,))` and
    `from_values(v (len(bands),) float)` give the same numbers, for blocks and for a pixel."""

    names: tuple[str, ...]
    bands: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.names)

    def from_quantised(self, q: np.ndarray, scales: np.ndarray) -> np.ndarray:
        return self.finish(self.partial(q), scales)

    def from_values(self, v: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # from_quantised in two steps, so that the part needing only a chunk's embeddings runs as
    # each chunk arrives (Zone.read_reduced): partial(q) -> (parts, n) float32, then
    # finish(partial, scales) -> (count, n) once the scales are in.
    def partial(self, q: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def finish(self, p: np.ndarray, scales: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def parts(self) -> int:
        """How many values partial() gives a pixel."""
        raise NotImplementedError

    def split(self) -> tuple[Callable, int, Callable]:
        """(partial, parts, finish) for grid_reduce."""
        return self.partial, self.parts, self.finish


@dataclass(frozen=True)
class BandValues(Product):
    """Dequantised embedding values of some bands."""

    @property
    def parts(self) -> int:
        return len(self.bands)

    def partial(self, q):
        return q.astype(np.float32)

    def finish(self, p, scales):
        return p * scales_or_nan(scales)[None]

    def from_values(self, v):
        return np.asarray(v, dtype=np.float32)


@dataclass(frozen=True)
class PCAValues(Product):
    """The three PCA components of each pixel's embedding."""

    pca: PCA = None  # type: ignore[assignment]

    parts = 3

    def partial(self, q):
        return self.pca.components.astype(np.float32) @ q.astype(np.float32)

    def finish(self, p, scales):
        offset = (self.pca.components @ self.pca.mean).astype(np.float32)
        return p * scales_or_nan(scales)[None] - offset[:, None]

    def from_values(self, v):
        return (self.pca.components @ (np.asarray(v, dtype=np.float64) - self.pca.mean)).astype(np.float32)


@dataclass(frozen=True)
class Similarity(Product):
    """Cosine similarity of each pixel's embedding to a reference embedding."""

    reference: np.ndarray = None  # type: ignore[assignment]

    parts = 2

    def partial(self, q):  # the dot product with the unit reference, and the norm (as quant.cosine)
        qf = q.astype(np.float32)
        return np.stack([(qf * unit(self.reference)[:, None]).sum(axis=0), np.linalg.norm(qf, axis=0)])

    def finish(self, p, scales):
        with np.errstate(invalid="ignore", divide="ignore"):
            out = p[0] / p[1]
        out[~valid_scales(scales) | (p[1] == 0)] = np.nan
        return out.astype(np.float32)[None]

    def from_values(self, v):
        v = np.asarray(v, dtype=np.float64)
        ref = np.asarray(self.reference, dtype=np.float64)
        return np.array([ref @ v / max(float(np.linalg.norm(ref) * np.linalg.norm(v)), 1e-12)], dtype=np.float32)


def zone_of_crs(crs: str | None) -> str | None:
    """"utmNN" of a TESSERA zone CRS (EPSG:326NN), else None."""
    if crs and crs.upper().startswith("EPSG:326") and crs[8:].isdigit():
        return f"utm{int(crs[8:]):02d}"
    return None


def band_values(bands: Sequence[int]) -> BandValues:
    bands = tuple(int(b) for b in bands)
    return BandValues(tuple(f"A{b:03d}" for b in bands), bands)


def pca_values(pca: PCA) -> PCAValues:
    return PCAValues(("PC1", "PC2", "PC3"), tuple(range(1, pca.mean.shape[0] + 1)), pca)


def similarity_to(reference: Sequence[float]) -> Similarity:
    ref = np.asarray(reference, dtype=np.float32)
    return Similarity(("similarity",), tuple(range(1, len(ref) + 1)), ref)


# -- rules -------------------------------------------------------------------------------------
STRETCHES = ("global", "cdf", "zone")  # the store's stretch; equalised by its CDF; the zone's own


def entry_mode(entry: dict | None) -> str | None:
    """"pca" or "bands" for a published stretch entry, else None."""
    if not isinstance(entry, dict):
        return None
    mode = entry.get("mode")
    if mode in ("pca", "bands"):
        return mode
    return "pca" if "pca_components" in entry else "bands"


def stretch_entry(store: TesseraStore, year: int, which: str | None = None, zone: str | None = None) -> dict | None:
    """The published stretch a view uses: the year's (`which` "global" or "cdf"), or with
    "zone" that zone's own entry of `geoemb:stretch_zones` (the year's where it has none)."""
    if which == "zone" and zone is not None:
        entry = store.stretch(year, zone)
        if entry is not None:
            return entry
    return store.stretch(year)


def global_pca(store: TesseraStore, year: int, entry: dict | None = None) -> PCA | None:
    """The store's published PCA for a year (a stretch in "pca" mode; `entry`: another
    entry, a zone's), if it has one."""
    entry = store.stretch(year) if entry is None else entry
    if entry_mode(entry) != "pca":
        return None
    return PCA.from_stretch(entry)


def choose_pca(store: TesseraStore, year: int, wanted: str | PCA | None = "global",
               region: tuple | None = None, cancel: Cancel = None,
               progress: Callable[[float], None] | None = None, depth: int | None = None) -> PCA:
    """The PCA a layer, render or export uses: a given or saved fit; else the store's global
    PCA ("global", which covers all dimensions: not for a shallower `depth`); else (no
    global PCA, a depth, or "view") one fitted on a sample of `region` ((bounds, crs)) at
    that depth, `progress(fraction)` following the fit. Raises ValueError when a fit is
    needed and no region is given."""
    depth = store.check_depth(depth)
    if isinstance(wanted, PCA):
        return wanted
    if isinstance(wanted, str) and wanted.startswith("b64:"):
        return decode_pca(wanted)
    if wanted in (None, "global") and depth == store.bands:
        pca = global_pca(store, year)
        if pca is not None:
            return pca
    if region is None:
        why = "no global PCA" if depth == store.bands else f"no PCA at depth {depth}"
        raise ValueError(f"the store has {why} for {year}: a region to fit one on is needed")
    bounds, crs = region
    return fit_pca(store, bounds, crs, year, cancel=cancel, progress=progress,
                   depth=depth if depth < store.bands else None)


def published_ranges(store: TesseraStore, year: int, bands: Sequence[int],
                     entry: dict | None = None) -> list[tuple[float, float]] | None:
    """The store's own per-channel range for bands 1, 2, 3 of a year in "bands" mode (the
    colours of the dataset's previews; `entry`: another entry, a zone's), else None."""
    entry = store.stretch(year) if entry is None else entry
    if entry_mode(entry) != "bands":
        return None
    channels = list(entry.get("bands") or [1, 2, 3])
    try:
        lo = [float(v) for v in entry["min"]]
        hi = [float(v) for v in entry["max"]]
    except (KeyError, TypeError, ValueError):
        return None
    channels = [int(c) + (1 if 0 in channels else 0) for c in channels]  # 0-based lists become 1-based
    out = []
    for b in bands:
        if b not in channels or channels.index(b) >= len(lo):
            return None
        i = channels.index(b)
        out.append((lo[i], hi[i]))
    return out


class Equalised(Product):
    """A three-channel product whose values go through the published CDF: each channel's
    value becomes lo + (its quantile in the CDF) * (hi - lo), so the layer's linear min..max
    stretch draws the dataset's equalised colours."""

    def __init__(self, inner: Product, cdf, lo, hi) -> None:
        object.__setattr__(self, "names", inner.names)
        object.__setattr__(self, "bands", inner.bands)
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "cdf", [np.asarray(c, dtype=np.float64) for c in cdf])
        object.__setattr__(self, "lo", [float(v) for v in lo])
        object.__setattr__(self, "hi", [float(v) for v in hi])

    def _map(self, values: np.ndarray) -> np.ndarray:
        out = np.full(values.shape, np.nan, dtype=np.float32)
        for c in range(values.shape[0]):
            breaks = self.cdf[c]
            u = np.interp(values[c], breaks, np.linspace(0.0, 1.0, len(breaks)))
            out[c] = self.lo[c] + u * (self.hi[c] - self.lo[c])
        out[~np.isfinite(values)] = np.nan
        return out

    @property
    def parts(self) -> int:
        return self.inner.parts

    def partial(self, q):
        return self.inner.partial(q)

    def finish(self, p, scales):
        return self._map(self.inner.finish(p, scales))

    def from_values(self, v):
        return self._map(self.inner.from_values(v)[:, None])[:, 0]


def equalised(inner: Product, entry: dict | None) -> Product:
    """`inner` through the entry's CDF where the entry has one (three channels), else `inner`."""
    cdf = (entry or {}).get("cdf")
    try:
        cdf = [np.asarray(c, dtype=np.float64) for c in cdf]
        ok = len(cdf) == 3 and all(c.ndim == 1 and len(c) >= 2 and np.all(np.diff(c) >= 0) for c in cdf)
    except (TypeError, ValueError):
        ok = False
    if not ok or inner.count != 3:
        return inner
    return Equalised(inner, cdf, entry["min"], entry["max"])


def mean_embedding(store: TesseraStore, year: int, bounds, crs: str, mask=None, max_pixels: int | None = None,
                   cancel: Cancel = None) -> tuple[np.ndarray, int]:
    """The mean embedding over an area (valid pixels only; `mask(transform, w, h, crs)` keeps
    those inside polygons). Returns (vector (bands,), pixels used). Read on the area's own
    10 m grid in the CRS of the zone under its centre."""
    bounds = check_bounds(bounds)
    parts = [p for p in plan(store, bounds, crs) if year in p.zone.years]
    total = sum(p.pixels for p in parts)
    if max_pixels is not None and total > max_pixels:
        raise ValueError(f"the area holds {total:,} pixels, more than {max_pixels:,}: choose a smaller one")
    sums = np.zeros(store.bands, dtype=np.float64)
    used = 0
    for part in parts:
        win = part.zone.read(year, part.rows, part.cols, cancel=cancel)
        values = win.dequantised()
        ok = np.isfinite(values).all(axis=0)
        if mask is not None:
            ok &= mask(win.transform, values.shape[2], values.shape[1], part.zone.crs)
        sums += values[:, ok].sum(axis=1, dtype=np.float64)
        used += int(ok.sum())
    if used == 0:
        raise ValueError("there is no embedding in that area (nodata)")
    return sums / used, used


def mean_over_polygons(store: TesseraStore, year: int, polygons: Sequence[tuple[tuple, str]], crs: str,
                       cancel: Cancel = None) -> tuple[np.ndarray, int]:
    """The mean embedding over the valid pixels inside polygons, each given as (bounds, WKT)
    in `crs`; polygons without data are skipped. Returns (vector, pixels used)."""
    total, used = np.zeros(store.bands, dtype=np.float64), 0
    for bounds, wkt in polygons:
        try:
            mean, n = mean_embedding(store, year, bounds, crs, mask=polygon_mask([wkt], crs), cancel=cancel)
        except ValueError:  # no embedding inside this polygon
            continue
        total, used = total + mean * n, used + n
    if used == 0:
        raise ValueError("the polygons hold no embedding (nodata)")
    return total / used, used


# -- the view ----------------------------------------------------------------------------------
class View:
    """A layer spec on a store: values on any grid, values at a point, starting ranges.

    Thread-safe for `values()` once the product is known; a fitted PCA (pca=view, or a store
    without a global PCA) is fitted once, on the first region asked for, and kept."""

    def __init__(self, store: TesseraStore, spec: LayerSpec) -> None:
        store.check_year(spec.year)
        self.depth = store.check_depth(spec.depth)
        if spec.bands is not None:
            store.check_bands(spec.bands)
            if max(spec.bands) > self.depth:
                raise BandError(f"band {max(spec.bands)} lies beyond depth {self.depth}")
        self.store = store
        self.spec = spec
        if spec.stretch not in (None, *STRETCHES):
            raise ValueError(f"stretch= takes {', '.join(STRETCHES)}, got {spec.stretch!r}")
        self.entry = stretch_entry(store, spec.year, spec.stretch, spec.zone or zone_of_crs(spec.crs))
        self._product: Product | None = None
        self.pca: PCA | None = None
        self._fit_lock = threading.Lock()
        if spec.bands is not None:
            self._product = self._published(band_values(spec.bands))
        elif spec.similarity is not None:
            ref = decode_vector(spec.similarity)
            if len(ref) not in (self.depth, store.bands):
                raise BandError(f"the reference embedding has {len(ref)} values; this store has {store.bands}")
            self._product = similarity_to(ref[:self.depth])
        elif spec.pca != "view":
            if spec.pca == "global":
                pca = global_pca(store, spec.year, self.entry) if self.depth == store.bands else None
            else:
                pca = choose_pca(store, spec.year, spec.pca, depth=self.depth)
            if pca is not None:
                if pca.mean.shape[0] != self.depth:
                    raise BandError(f"the saved PCA has {pca.mean.shape[0]} dimensions; this layer reads "
                                    f"{self.depth}")
                self.set_pca(pca)

    @property
    def needs_fit(self) -> bool:
        """A PCA view whose PCA is still to be fitted (on the first region drawn)."""
        return self._product is None

    def set_pca(self, pca: PCA) -> None:
        self.pca = pca
        self._product = self._published(pca_values(pca))

    def _published(self, product: Product) -> Product:
        """With stretch=cdf, a product that shows the published stretch's channels (its PCA,
        or bands 1-3 of a "bands" stretch) equalised by its CDF."""
        if self.spec.stretch == "cdf" and self._shows_published(product):
            return equalised(product, self.entry)
        return product

    def _shows_published(self, product: Product) -> bool:
        mode = entry_mode(self.entry)
        if isinstance(product, PCAValues):
            return mode == "pca" and self.pca is not None and self.pca.source == "global"
        return isinstance(product, BandValues) and product.bands == (1, 2, 3) and mode == "bands"

    def product(self, region: tuple | None = None, cancel: Cancel = None) -> Product:
        """The product; a PCA still to be fitted is fitted on `region` ((bounds, crs))."""
        if self._product is None:
            self.set_pca(choose_pca(self.store, self.spec.year, "view", region, cancel, depth=self.depth))
        return self._product

    def values(self, crs: str, transform, width: int, height: int, cancel: Cancel = None,
               budget: int | None = -1) -> np.ndarray:
        """The view's values (count, height, width) float32 on an output grid, NaN nodata.
        `budget`: source pixels a view may need (-1: the spec's; None: no limit). A PCA still
        to be fitted (pca=view, or no global PCA) is fitted on this first grid's own values,
        every band read once, and kept."""
        budget = self.spec.budget if budget == -1 else budget
        if self._product is None:
            everything = band_values(range(1, self.depth + 1))
            raw, _ = grid_reduce(self.store, self.spec.year, crs, transform, width, height,
                                 everything.from_quantised, everything.count, np.float32, np.nan,
                                 list(everything.bands), cancel, budget)
            with self._fit_lock:
                if self._product is None:
                    try:
                        self.set_pca(PCA.fit_values(raw))
                    except TooFewPixels:  # nothing to fit on in this view: draw nothing, fit on a later one
                        return np.full((3, height, width), np.nan, dtype=np.float32)
            return self.pca.project(raw)
        product = self._product
        out, _ = grid_reduce(self.store, self.spec.year, crs, transform, width, height, product.from_quantised,
                             product.count, np.float32, np.nan, list(product.bands), cancel, budget,
                             split=product.split())
        return out

    def source_pixels(self, crs: str, transform, width: int, height: int) -> int:
        """10 m pixels of the store that a grid covers (what a full read would need)."""
        parts = plan(self.store, grid_bounds(transform, width, height), crs)
        return sum(p.pixels for p in parts if self.spec.year in p.zone.years)

    def render(self, crs: str, transform, width: int, height: int, cancel: Cancel = None,
               previews: str = "auto") -> Frame:
        """The view on a grid: the embeddings when the grid needs at most the spec's budget of
        source pixels; beyond it a preview (`previews`, see PREVIEWS): the store's global
        preview where it shows what this view shows (its PCA, or bands 1-3 of a "bands"
        stretch), else a coarse preview from a bounded sample of chunks. Raises ExtentError
        over the budget with previews "none"."""
        budget = self.spec.budget
        need = self.source_pixels(crs, transform, width, height)
        if budget is None or need <= budget:
            return Frame(self.values(crs, transform, width, height, cancel, budget=None))
        if previews == "none":
            raise ExtentError(f"this view needs {need:,} source pixels, more than the budget of {budget:,}; "
                              "zoom in or raise the budget")
        pyramid = global_preview(self.store) if previews == "auto" else None
        ranges = self._preview_ranges() if pyramid is not None else None
        if ranges is not None:
            rgba = pyramid.rgba(crs, transform, width, height, cancel)
            lo = np.array([r[0] for r in ranges], dtype=np.float32)[:, None, None]
            hi = np.array([r[1] for r in ranges], dtype=np.float32)[:, None, None]
            values = lo + rgba[:3].astype(np.float32) / 255.0 * (hi - lo)
            values[:, rgba[3] == 0] = np.nan
            return Frame(values, "preview", pyramid.year)
        return Frame(self._coarse(crs, transform, width, height, cancel), "coarse")

    def _preview_ranges(self) -> list[tuple[float, float]] | None:
        """The ranges that turn the global preview's colours back into this view's values,
        or None where the preview does not show what this view shows."""
        if self.spec.stretch in ("cdf", "zone"):
            return None  # the preview was drawn with the year's linear stretch
        mode = self.store.stretch_mode(self.spec.year)
        if self.spec.pca is not None and mode == "pca" and self.pca is not None and self.pca.source == "global":
            return list(zip(self.pca.lo.tolist(), self.pca.hi.tolist()))
        if self.spec.bands == (1, 2, 3) and mode == "bands":
            return published_ranges(self.store, self.spec.year, (1, 2, 3))
        return None

    def _coarse(self, crs, transform, width, height, cancel) -> np.ndarray:
        year = self.spec.year
        if self.needs_fit:  # fit the PCA on the coarse sample itself: one fetch
            everything = band_values(range(1, self.depth + 1))
            raw = coarse_values(self.store, year, crs, transform, width, height, everything.bands,
                                everything.from_quantised, everything.count, cancel)
            try:
                self.set_pca(PCA.fit_values(raw))
            except TooFewPixels:
                return np.full((3, height, width), np.nan, dtype=np.float32)
            return self.pca.project(raw)
        product = self._product
        return coarse_values(self.store, year, crs, transform, width, height, product.bands,
                             product.from_quantised, product.count, cancel)

    def pixel(self, x: float, y: float, crs: str = "EPSG:4326") -> dict:
        """The store's pixel at a point (see TesseraStore.pixel) plus `values`: the view's
        values there (None where nodata or while the PCA is not fitted yet)."""
        lon, lat = (x, y) if crs == "EPSG:4326" else transformer(crs, "EPSG:4326").transform(x, y)
        px = self.store.pixel(lon, lat, self.spec.year)
        values = None
        if px["valid"] and self._product is not None:
            v = np.asarray(px["embedding"], dtype=np.float64)[[b - 1 for b in self._product.bands]]
            values = self._product.from_values(v).astype(float).tolist()
        return dict(px, values=values)

    def sample_ranges(self, bounds, crs: str, cancel: Cancel = None) -> list[tuple[float, float]]:
        """2 to 98 % of each output band over a small grid (at most SAMPLE_SIDE px a side,
        at least 10 m a pixel) of an area, read in the layer's CRS."""
        layer_crs = self.spec.crs or crs
        box = reproject_bounds(check_bounds(bounds), crs, layer_crs)
        if box is None:
            raise ValueError("the area cannot be placed in the layer's CRS")
        res = max((box[2] - box[0]) / SAMPLE_SIDE, (box[3] - box[1]) / SAMPLE_SIDE, 10.0)
        transform, w, h = grid_for(box, res)
        # No budget: the grid is small, and only the chunks it samples are read.
        return percent_ranges(self.values(layer_crs, transform, w, h, cancel, budget=None))

    def default_ranges(self, bounds=None, crs: str | None = None, cancel: Cancel = None,
                       threshold: float = 0.5) -> list[tuple[float, float]]:
        """The ranges a new layer is styled with: the PCA's own stretch; the similarity
        threshold to 1; the store's published range for bands 1-3 where it has one; else 2 to
        98 % of a sample of `bounds` (or of the layer's extent)."""
        spec = self.spec
        if spec.similarity is not None:
            return [(threshold, 1.0)]
        if spec.pca is not None:
            if self.pca is None and bounds is not None:
                self.product((bounds, crs), cancel)
            return list(zip(self.pca.lo.tolist(), self.pca.hi.tolist())) if self.pca is not None else []
        published = published_ranges(self.store, spec.year, spec.bands, self.entry)
        if published is not None:
            return published
        if bounds is None:
            bounds, crs = spec.extent, spec.crs
        return self.sample_ranges(bounds, crs, cancel)
