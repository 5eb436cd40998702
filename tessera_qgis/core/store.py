"""Opening a TESSERA store and reading pixel windows of its zones.

Everything is discovered from the store's metadata: zones, years (from each zone's `time`
coordinate, by value), band count, dtypes, chunk and shard shapes, CRS and transform, and
the axis order of each array (from `dimension_names`). Both the current layout (one store,
`utmNN` groups, embeddings (time, band, y, x)) and the earlier per-year layout (one store per
year, embeddings (y, x, band)) are read.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .arrays import (WARM_CONNECTIONS, ArrayReader, ChunkLRU, ChunkRequest, DiskCache, StoreCaches, expected_requests,
                     read_wave, start_indexes)
from .geo import to_lonlat, transformer
from .memory import OUTPUTS
from .quant import OUTSIDE, dequantise, nodata_reason, sanitise_scales
from .errors import BandError, Cancelled, NotTessera, NotZarrV3, ReadError, StoreNotFound, TesseraError, YearNotFound
from .sources import TASK_POOL, Source, StoreOptions, open_source
from .storeref import StoreRef
from .urls import redact_url, with_credentials
from .utm import zone_of_lon

_LOG = logging.getLogger(__name__)
ZONE_RE = re.compile(r"^utm(\d{2})$")
# Per-pixel observation counts of v1.1-dclimate zone groups, shown with a pixel's embedding.
OBSERVATIONS = ("s1_asc_obs_count", "s1_desc_obs_count", "s2_obs_count")
AXES = {
    "time": {"time", "t", "year", "years"},
    "band": {"band", "bands", "channel", "channels", "feature", "features", "embedding", "dim"},
    "y": {"y", "northing", "row", "rows", "lat", "latitude"},
    "x": {"x", "easting", "col", "cols", "column", "lon", "longitude"},
}


def _canonical_axes(names: Sequence[str | None], shape: Sequence[int], what: str, bands: int | None,
                    kind: str | None = None) -> tuple[str, ...]:
    """Canonical axis names (time/band/y/x) of an array, from dimension_names or its rank
    (`kind`: "embeddings" or "scales", the shape of the guess; from the name by default)."""
    if names and all(names):
        out = []
        for n in names:
            name = str(n).lower()
            canon = "band" if name.startswith("band_d") else next((k for k, v in AXES.items() if name in v), None)
            if canon is None:
                raise NotTessera(f"{what}: unknown axis {n!r} in dimension_names {list(names)}; "
                                 "expected time, band, y and x")
            out.append(canon)
        if len(set(out)) != len(out) or "y" not in out or "x" not in out:
            raise NotTessera(f"{what}: dimension_names {list(names)} must name distinct y and x axes")
        return tuple(out)
    rank = len(shape)
    guesses = {
        ("embeddings", 4): ("time", "band", "y", "x"),
        ("embeddings", 3): ("y", "x", "band") if bands is None or shape[-1] == bands else ("band", "y", "x"),
        ("scales", 3): ("time", "y", "x"),
        ("scales", 2): ("y", "x"),
    }
    kind = kind or ("embeddings" if what.rsplit("/", 1)[-1].startswith("embeddings") else "scales")
    if (kind, rank) not in guesses:
        raise NotTessera(f"{what}: cannot tell the axes of a rank-{rank} array without dimension_names")
    return guesses[(kind, rank)]


@dataclass
class WindowData:
    """Quantised values of a pixel window of one zone and year."""

    zone: "Zone"
    year: int
    row0: int
    col0: int
    q: np.ndarray  # int8 (len(bands), h, w)
    scales: np.ndarray  # float32 (h, w); nodata where not finite
    bands: tuple[int, ...] = ()  # the band numbers (from 1) in q; () = all of them

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.scales)

    def _rows(self, bands: Sequence[int] | None) -> list[int] | slice:
        if bands is None:
            return slice(None)
        have = self.bands or tuple(range(1, self.q.shape[0] + 1))
        try:
            return [have.index(b) for b in bands]
        except ValueError:
            raise BandError(f"bands {list(bands)} were not read (this window has {list(have)})") from None

    def quantised(self, bands: Sequence[int] | None = None) -> np.ndarray:
        return self.q[self._rows(bands)]

    def dequantised(self, bands: Sequence[int] | None = None) -> np.ndarray:
        """float32 (len(bands), h, w), NaN where nodata. `bands` are numbered from 1."""
        return dequantise(self.q[self._rows(bands)], self.scales, pooled=True)

    @property
    def transform(self) -> tuple[float, ...]:
        a, b, c, d, e, f = self.zone.transform
        return (a, b, c + a * self.col0, d, e, f + e * self.row0)


@dataclass
class Zone:
    name: str
    number: int
    crs: str
    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]  # (H, W)
    embeddings: ArrayReader = field(repr=False)
    scales: ArrayReader = field(repr=False)
    emb_axes: tuple[str, ...]
    scl_axes: tuple[str, ...]
    years: dict[int, int | None] = field(default_factory=dict)  # year -> time index
    bands: int = 128
    # Shallower Matryoshka arrays (v2): depth -> (reader, axes), byte-exact band prefixes of
    # the embeddings; reads of bands that all lie within a depth use the shallowest.
    depth_arrays: dict[int, tuple[ArrayReader, tuple[str, ...]]] = field(default_factory=dict, repr=False)
    # Per-pixel arrays beside the embeddings (v1.1-dclimate observation counts): name -> (reader, axes)
    extra: dict[str, tuple[ArrayReader, tuple[str, ...]]] = field(default_factory=dict, repr=False)

    def with_caches(self, caches: StoreCaches) -> "Zone":
        return dataclasses.replace(
            self, embeddings=self.embeddings.with_caches(caches), scales=self.scales.with_caches(caches),
            years=dict(self.years),
            depth_arrays={d: (r.with_caches(caches), a) for d, (r, a) in self.depth_arrays.items()},
            extra={n: (r.with_caches(caches), a) for n, (r, a) in self.extra.items()})

    def array_for(self, bands: Sequence[int] | None) -> tuple[ArrayReader, int]:
        """The embeddings array a read of `bands` (from 1; None = all) uses, and its depth:
        the shallowest that holds every band asked for."""
        if bands is not None and self.depth_arrays:
            need = max(int(b) for b in bands)
            for depth in sorted(self.depth_arrays):
                if need <= depth < self.bands:
                    return self.depth_arrays[depth][0], depth
        return self.embeddings, self.bands

    def _at(self, bands: Sequence[int] | None) -> "Zone":
        """This zone reading its embeddings from the array `array_for(bands)` chooses."""
        reader, depth = self.array_for(bands)
        if reader is self.embeddings:
            return self
        return dataclasses.replace(self, embeddings=reader, emb_axes=self.depth_arrays[depth][1], bands=depth,
                                   depth_arrays={})

    def pixel_of(self, x: float, y: float) -> tuple[int, int]:
        a, _, c, _, e, f = self.transform
        return math.floor((f - y) / -e), math.floor((x - c) / a)

    def bounds(self) -> tuple[float, float, float, float]:
        a, _, c, _, e, f = self.transform
        h, w = self.shape
        return c, f + e * h, c + a * w, f

    def _box(self, axes, t, rows, cols, bands) -> tuple[tuple[int, int], ...]:
        spans = {"time": (t, t + 1) if t is not None else None, "band": (0, bands), "y": rows, "x": cols}
        return tuple(spans[a] for a in axes)

    def _chunk_need(self, rows, cols, wanted: np.ndarray, reader: ArrayReader | None = None,
                    axes: tuple[str, ...] | None = None) -> Callable:
        """need(chunk) of an array (the embeddings unless said): does the chunk hold a wanted
        pixel of the window [rows) x [cols) (`wanted`: its (h, w) mask)?"""
        reader, axes = (reader, axes) if reader is not None else (self.embeddings, self.emb_axes)
        yi, xi = axes.index("y"), axes.index("x")
        ch, cw = reader.chunk_shape[yi], reader.chunk_shape[xi]

        def need(coords: tuple[int, ...]) -> bool:
            r0, c0 = coords[yi] * ch, coords[xi] * cw
            sub = wanted[max(r0, rows[0]) - rows[0]: min(r0 + ch, rows[1]) - rows[0],
                         max(c0, cols[0]) - cols[0]: min(c0 + cw, cols[1]) - cols[0]]
            return bool(sub.any())

        return need

    def _clip(self, year: int, rows, cols):
        if year not in self.years:
            raise YearNotFound(f"year {year} is not in zone {self.name} (it has {sorted(self.years)})")
        r0, r1 = max(rows[0], 0), min(rows[1], self.shape[0])
        c0, c1 = max(cols[0], 0), min(cols[1], self.shape[1])
        dst = (slice(r0 - rows[0], r1 - rows[0]), slice(c0 - cols[0], c1 - cols[0]))
        return self.years[year], (r0, r1), (c0, c1), dst, (r0 < r1 and c0 < c1)

    def _band_index(self, bands: Sequence[int] | None) -> list[int] | None:
        """0-based indices of bands numbered from 1 (None: all of them)."""
        if bands is None:
            return None
        idx = [int(b) - 1 for b in bands]
        if not idx or any(not 0 <= i < self.bands for i in idx):
            raise BandError(f"bands are numbered 1 to {self.bands}; got {list(bands)}")
        return idx

    def _start_indexes(self, t, rows, cols) -> None:
        """Start fetching the shard indexes of scales and embeddings a window needs (see
        arrays.start_indexes): their round trip then runs while the read is planned."""
        if not self._fast():
            return
        wanted, chunks = [], []
        for reader, axes in ((self.scales, self.scl_axes), (self.embeddings, self.emb_axes)):
            box = self._box(axes, t, rows, cols, self.bands)
            wanted += [(reader, sh) for sh in reader.shards_of_box(box)]
            chunks.append((reader, reader.chunks_in_box(box)))
        start_indexes(wanted, expected_requests(chunks))

    # -- one wave: requests for the chunks of a window ----------------------------------------
    def _scales_request(self, t, rows, cols, s_view: np.ndarray, keep: bool,
                        need: Callable | None = None) -> ChunkRequest:
        """Scales of the window [rows) x [cols) (inside the array) pasted into s_view (h, w)."""
        box = self._box(self.scl_axes, t, rows, cols, self.bands)
        squeeze = self.scl_axes.index("time") if "time" in self.scl_axes else None
        out = s_view if [a for a in self.scl_axes if a != "time"] == ["y", "x"] else s_view.T
        return ChunkRequest(self.scales, self.scales.chunk_range(box), self.scales.paster(box, out, squeeze=squeeze),
                            keep, need)

    def _embeddings_requests(self, t, rows, cols, q_view: np.ndarray, idx: list[int] | None, keep: bool,
                             need: Callable | None = None) -> list[ChunkRequest]:
        """Embeddings of the window (bands `idx`, None = all) pasted into q_view (bands, h, w)."""
        box = self._box(self.emb_axes, t, rows, cols, self.bands)
        squeeze = self.emb_axes.index("time") if "time" in self.emb_axes else None
        rest = [a for a in self.emb_axes if a != "time"]
        out = q_view.transpose([("band", "y", "x").index(a) for a in rest])
        select = None if idx is None else (self.emb_axes.index("band"), idx)
        return self.embeddings.requests(box, out, select, squeeze, keep, need)

    def _pixel_rect(self, coords: tuple[int, ...], rows, cols, reader: ArrayReader | None = None,
                    axes: Sequence[str] | None = None) -> tuple[slice, slice]:
        """The part of the window [rows) x [cols) inside a chunk (of the embeddings, or of
        `reader` with `axes`), window-relative."""
        reader, axes = (self.embeddings, self.emb_axes) if reader is None else (reader, axes)
        yi, xi = axes.index("y"), axes.index("x")
        ch, cw = reader.chunk_shape[yi], reader.chunk_shape[xi]
        y0, x0 = coords[yi] * ch, coords[xi] * cw
        return (slice(max(y0, rows[0]) - rows[0], min(y0 + ch, rows[1]) - rows[0]),
                slice(max(x0, cols[0]) - cols[0], min(x0 + cw, cols[1]) - cols[0]))

    def _known_nodata(self, t, rows, cols, scales: ChunkRequest, s_view: np.ndarray) -> Callable:
        """need(chunk) for the embeddings: False only where the scales of the chunk's pixels
        came from memory (already pasted into s_view) and none of them is valid."""
        def need(coords: tuple[int, ...]) -> bool:
            if not scales.cached:  # a cold read: nothing known yet
                return True
            ys, xs = self._pixel_rect(coords, rows, cols)
            box = self._box(self.scl_axes, t, (rows[0] + ys.start, rows[0] + ys.stop),
                            (cols[0] + xs.start, cols[0] + xs.stop), self.bands)
            if not all(c in scales.cached for c in self.scales.chunk_range(box)):
                return True
            return bool(np.isfinite(s_view[ys, xs]).any())

        return need

    def _scales_and_need(self, t, rows, cols, s_view: np.ndarray, keep: bool, wanted: np.ndarray | None,
                         skip_nodata: bool = True) -> tuple[ChunkRequest, Callable | None]:
        """The scales request of a window, and need(chunk) for its embeddings: only chunks
        holding a `wanted` pixel (a mask of the window; None: all), and (`skip_nodata`) not
        those whose cached scales say every pixel is nodata."""
        if wanted is None:
            scl = self._scales_request(t, rows, cols, s_view, keep)
            return scl, (self._known_nodata(t, rows, cols, scl, s_view) if skip_nodata else None)
        held = self._chunk_need(rows, cols, wanted)
        scl = self._scales_request(t, rows, cols, s_view, keep,
                                   self._chunk_need(rows, cols, wanted, self.scales, self.scl_axes))
        if not skip_nodata:
            return scl, held
        known = self._known_nodata(t, rows, cols, scl, s_view)
        return scl, (lambda c: held(c) and known(c))

    def _invalidate_missing(self, missing: Iterable[tuple[int, ...]], rows, cols, s_view: np.ndarray) -> None:
        """Pixels whose embeddings chunk is not stored are nodata whatever their scale says
        (a damaged store): their valid scales become NaN, and a warning names the missing
        object, once per store."""
        for coords in missing:
            sub = s_view[self._pixel_rect(coords, rows, cols)]
            valid = np.isfinite(sub)
            if valid.any():
                sub[valid] = np.nan
                self._warn_missing(coords, int(valid.sum()))

    def _warn_missing(self, coords: tuple[int, ...], pixels: int) -> None:
        where = self.embeddings.describe_chunk(coords)
        warned = self.embeddings.caches.warned
        if where in warned:
            return
        warned.add(where)
        _LOG.warning("%s is not stored, but the scales there say the pixels are valid (%d of them in this "
                     "read): they are treated as nodata; the store may be damaged or incompletely copied",
                     where, pixels)

    def _fast(self) -> bool:
        return self.embeddings.fast and self.scales.fast

    def read_scales(self, year: int, rows, cols, cancel=None, keep: bool = True,
                    prefetch_embeddings: bool = False, bands: Sequence[int] | None = None) -> np.ndarray:
        """float32 (h, w) scales of a window; +inf outside the zone's array.

        The embeddings' shard indexes load together with the scales' (one round trip for
        both), so the embeddings read that follows costs one round trip, and pixels whose
        embeddings chunk is not stored come out as nodata (NaN) already. (`prefetch_embeddings`
        is kept for callers that pass it: the indexes are always loaded.) `bands`: those the
        embeddings read will ask for (which array's indexes to load). Scales that are not
        valid (see core.quant) come out as NaN."""
        zone = self._at(bands)
        if zone is not self:
            return zone.read_scales(year, rows, cols, cancel, keep)
        t, (r0, r1), (c0, c1), dst, any_ = self._clip(year, rows, cols)
        out = np.full((max(rows[1] - rows[0], 0), max(cols[1] - cols[0], 0)), np.inf, dtype=np.float32)
        if not any_:
            return out
        s_view = out[dst]
        emb_box = self._box(self.emb_axes, t, (r0, r1), (c0, c1), self.bands)
        if self._fast():
            indexes = [(self.embeddings, sh) for sh in self.embeddings.shards_of_box(emb_box)]
            read_wave([self._scales_request(t, (r0, r1), (c0, c1), s_view, keep)], cancel, indexes)
            self._invalidate_missing(self.embeddings.missing_in_box(emb_box), (r0, r1), (c0, c1), s_view)
        else:
            s = self.scales.read(self._box(self.scl_axes, t, (r0, r1), (c0, c1), self.bands), cancel=cancel,
                                 keep=keep)
            s_view[...] = sanitise_scales(_to_yx(s, self.scl_axes))  # (the fast path's chunks come clean)
        return out

    def read_embeddings(self, year: int, rows, cols, bands: Sequence[int] | None = None,
                        wanted: np.ndarray | None = None, cancel=None, keep: bool = True) -> np.ndarray:
        """int8 (len(bands), h, w) of a window (bands numbered from 1; None = all).

        Only chunks holding a `wanted` pixel (a (h, w) mask) are fetched; elsewhere 0."""
        zone = self._at(bands)
        if zone is not self:
            return zone.read_embeddings(year, rows, cols, bands, wanted, cancel, keep)
        t, (r0, r1), (c0, c1), dst, any_ = self._clip(year, rows, cols)
        idx = self._band_index(bands)
        nb = self.bands if idx is None else len(idx)
        out = np.zeros((nb, max(rows[1] - rows[0], 0), max(cols[1] - cols[0], 0)), dtype=np.int8)
        if not any_ or (wanted is not None and not wanted.any()):
            return out
        need = None
        if wanted is not None:
            need = self._chunk_need((r0, r1), (c0, c1), wanted[dst])
        q_view = out[(slice(None),) + dst]
        if self._fast():
            read_wave(self._embeddings_requests(t, (r0, r1), (c0, c1), q_view, idx, keep, need), cancel)
        else:
            box = self._box(self.emb_axes, t, (r0, r1), (c0, c1), self.bands)
            select = None if idx is None else (self.emb_axes.index("band"), idx)
            q_view[...] = _to_byx(self.embeddings.read(box, need=need, cancel=cancel, keep=keep, select=select),
                                  self.emb_axes)
        return out

    def read_pixels(self, year: int, rows: Sequence[int] | np.ndarray, cols: Sequence[int] | np.ndarray,
                    bands: Sequence[int] | None = None, cancel: Callable[[], bool] | None = None,
                    keep: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Values at scattered pixels (row and column numbers in the zone's grid), in one wave:
        the shard indexes of both arrays at once, then the scales and embeddings chunks
        holding those pixels at once (two round trips cold, none warm).

        Returns (int8 (len(bands), n), float32 scales (n,)). Pixels outside the zone's array
        are nodata (+inf); pixels whose embeddings chunk is not stored are nodata (NaN), as in
        read(). Only the values asked for are kept, whatever area the pixels are spread over:
        this is how a map view at any scale gathers its source pixels (grid_reduce)."""
        zone = self._at(bands)
        if zone is not self:
            return zone.read_pixels(year, rows, cols, bands, cancel, keep)
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        if rows.shape != cols.shape:
            raise ValueError("rows and cols must have the same length")
        t, *_ = self._clip(year, (0, 1), (0, 1))
        idx = self._band_index(bands)
        nb = self.bands if idx is None else len(idx)
        q = np.zeros((len(rows), nb), dtype=np.int8).T  # (bands, n) over pixel-major memory
        s = np.full(len(rows), np.inf, dtype=np.float32)
        inside = np.nonzero((rows >= 0) & (rows < self.shape[0]) & (cols >= 0) & (cols < self.shape[1]))[0]
        if len(inside) == 0:
            return q, s
        if not self._fast():  # codecs the fast path does not know: read the bounding window
            r0, r1 = int(rows[inside].min()), int(rows[inside].max()) + 1
            c0, c1 = int(cols[inside].min()), int(cols[inside].max()) + 1
            win = self.read(year, (r0, r1), (c0, c1), cancel=cancel, keep=keep, bands=bands)
            q[:, inside] = win.q[:, rows[inside] - r0, cols[inside] - c0]
            s[inside] = win.scales[rows[inside] - r0, cols[inside] - c0]
            return q, s
        scl = _PixelGather(self.scales, self.scl_axes, t, rows, cols, inside, None, s)
        scl_req = ChunkRequest(self.scales, scl.coords, scl.paste, keep)
        emb = _PixelGather(self.embeddings, self.emb_axes, t, rows, cols, inside, idx, q, scl.groups)

        def need(coords: tuple[int, ...]) -> bool:  # False only where cached scales say nodata
            if not scl_req.cached:
                return True
            pix = emb.pixels(coords)
            if not all(c in scl_req.cached for c in scl.chunks_of(pix)):
                return True
            return bool(np.isfinite(s[pix]).any())

        emb_req = ChunkRequest(self.embeddings, emb.coords, emb.paste, keep, need)
        read_wave([scl_req, emb_req], cancel)
        for coords in emb_req.missing:
            pix = emb.pixels(coords)
            valid = pix[np.isfinite(s[pix])]
            if len(valid):
                s[valid] = np.nan
                self._warn_missing(coords, len(valid))
        return q, s

    def prefetch(self, year: int, boxes: Iterable[tuple[tuple[int, int], tuple[int, int]]],
                 bands: Sequence[int] | None = None, cancel: Callable[[], bool] | None = None) -> Future | None:
        """Start fetching, in the background, the scales and embeddings chunks (of the array
        holding `bands`) that cover pixel boxes ((r0, r1), (c0, c1)) of this zone, into the
        memory cache: a read of pixels in them that follows takes them from memory, or waits
        for them while they are on their way (reads share chunks in flight), instead of
        asking again. For work that knows which chunks it will read before it knows which
        pixels (a coarse preview: its sampled chunks, while each output pixel's source is
        worked out). Returns the background job (None: nothing to start); a failure reaches
        the read that waits for those chunks."""
        zone = self._at(bands)
        if zone is not self:
            return zone.prefetch(year, boxes, bands, cancel)
        if not self._fast():
            return None
        scl, emb = set(), set()
        for rows, cols in boxes:
            t, rows, cols, _, any_ = self._clip(year, rows, cols)
            if any_:
                scl.update(self.scales.chunk_range(self._box(self.scl_axes, t, rows, cols, self.bands)))
                emb.update(self.embeddings.chunk_range(self._box(self.emb_axes, t, rows, cols, self.bands)))
        if not emb:
            return None
        requests = [ChunkRequest(self.scales, sorted(scl), _keep_only),
                    ChunkRequest(self.embeddings, sorted(emb), _keep_only)]
        return TASK_POOL.submit(read_wave, requests, cancel)

    def read(self, year: int, rows: tuple[int, int], cols: tuple[int, int],
             cancel: Callable[[], bool] | None = None, skip_nodata: bool = True,
             keep: bool = True, bands: Sequence[int] | None = None,
             wanted: np.ndarray | None = None) -> WindowData:
        """Quantised window [rows) x [cols) for a year; pixels outside the zone are nodata.

        One wave: the shard indexes of embeddings and scales together, then the chunks of
        both together (two round trips cold, none warm). Embeddings chunks are skipped only
        where the scales are already in memory and say every pixel is nodata
        (`skip_nodata=False`: fetched anyway). A pixel whose embeddings chunk is not stored
        is nodata (scale NaN) whatever its scale says. `keep=False` does not keep decoded
        chunks in memory (streamed exports). `bands` (from 1) limits the bands read, from the
        shallowest Matryoshka array that holds them all. Scales that are not valid (see
        core.quant) come out as NaN. `wanted`, a (h, w) mask of the window: chunks holding
        no wanted pixel are not fetched (their pixels read as nodata, +inf) unless already in
        memory."""
        zone = self._at(bands)
        if zone is not self:
            win = zone.read(year, rows, cols, cancel, skip_nodata, keep, bands, wanted)
            return dataclasses.replace(win, zone=self)
        t, (r0, r1), (c0, c1), dst, any_ = self._clip(year, rows, cols)
        if any_:
            self._start_indexes(t, (r0, r1), (c0, c1))
        idx = self._band_index(bands)
        nb = self.bands if idx is None else len(idx)
        q, zeroed = OUTPUTS.blank((nb, max(rows[1] - rows[0], 0), max(cols[1] - cols[0], 0)), np.int8)
        s = OUTPUTS.empty(q.shape[1:], np.float32)
        q_view, s_view = q[(slice(None),) + dst], s[dst]

        def prepare(pending: list[tuple[ChunkRequest, list[tuple[int, ...]]]] | None = None) -> None:
            """Fill values (q 0, scales +inf) where no chunk may be pasted: outside the zone's
            array and over the chunks not in memory (those in memory are all pasted). Where
            most are not in memory (a cold read), all of it. Writing 7 MB of fill values the
            pastes wrote again was 3-14 % of a warm 1000 x 1000 px read. Fresh memory (q
            `zeroed`) holds zeros already."""
            total = sum(len(r.coords) for r, _ in pending) if pending else 0
            whole = not pending or not any_ or 2 * sum(len(c) for _, c in pending) > total
            for out, view, value, of_scales, axes in ((s, s_view, np.inf, True, self.scl_axes),
                                                      (q, q_view, 0, False, self.emb_axes)):
                if out is q and zeroed:
                    continue
                if whole:
                    out.fill(value)
                    continue
                _fill_around(out, dst, value)
                for req, coords in pending:
                    if (req.reader is self.scales) is of_scales:  # the rest: embeddings
                        for c in coords:
                            view[(..., *self._pixel_rect(c, (r0, r1), (c0, c1), req.reader, axes))] = value

        if not any_ or not self._fast():
            prepare()
        if any_:
            if self._fast():
                scl, need = self._scales_and_need(t, (r0, r1), (c0, c1), s_view, keep,
                                                  None if wanted is None else wanted[dst], skip_nodata)
                emb = self._embeddings_requests(t, (r0, r1), (c0, c1), q_view, idx, keep, need)
                read_wave([scl, *emb], cancel, prepare=prepare)
                self._invalidate_missing([c for r in emb for c in r.missing], (r0, r1), (c0, c1), s_view)
            else:
                s_view[...] = self.read_scales(year, (r0, r1), (c0, c1), cancel, keep)
                wanted = np.isfinite(s_view) if skip_nodata else None
                q_view[...] = self.read_embeddings(year, (r0, r1), (c0, c1), bands, wanted, cancel, keep)
        return WindowData(self, year, rows[0], cols[0], q, s, tuple(bands) if bands is not None else ())


    def read_reduced(self, year: int, rows: tuple[int, int], cols: tuple[int, int], bands: Sequence[int] | None,
                     partial: Callable[[np.ndarray], np.ndarray], parts: int,
                     cancel: Callable[[], bool] | None = None, keep: bool = True,
                     wanted: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """A window as `partial(q (bands, n) int8) -> (parts, n)` of each pixel's embedding,
        worked out chunk by chunk as the chunks arrive (in the decode threads, while the rest
        is still on its way), with its scales: (float32 (parts, h, w), scales (h, w)), as
        read() gives them (`wanted` too). Where a chunk is missing the values are 0 (its
        scales say nodata). None where a chunk does not hold every band of its pixels (then
        read the window)."""
        zone = self._at(bands)
        if zone is not self:
            return zone.read_reduced(year, rows, cols, bands, partial, parts, cancel, keep, wanted)
        axes = self.emb_axes
        bi, yi, xi = axes.index("band"), axes.index("y"), axes.index("x")
        if not self._fast() or self.embeddings.chunk_shape[bi] != self.bands:
            return None
        t, (r0, r1), (c0, c1), dst, any_ = self._clip(year, rows, cols)
        if any_:
            self._start_indexes(t, (r0, r1), (c0, c1))
        idx = self._band_index(bands)
        h, w = max(rows[1] - rows[0], 0), max(cols[1] - cols[0], 0)
        values = OUTPUTS.zeros((parts, h, w), np.float32)
        s = OUTPUTS.full((h, w), np.inf, np.float32)
        if not any_:
            return values, s
        s_view, v_view = s[dst], values[(slice(None),) + dst]
        scl, need = self._scales_and_need(t, (r0, r1), (c0, c1), s_view, keep,
                                          None if wanted is None else wanted[dst])
        n = self.embeddings.chunk_shape
        ti = axes.index("time") if "time" in axes else None
        order = [a for a in axes if a != "time"]
        to_byx = [order.index("band"), order.index("y"), order.index("x")]

        def on_chunk_of(select: list[int] | None) -> Callable[[tuple[int, ...], np.ndarray], None]:
            """on_chunk for chunks holding every band (`select`: the bands' indices in them) or
            only the kept ones (`select`: their positions among those)."""
            def on_chunk(coords: tuple[int, ...], arr: np.ndarray) -> None:
                y0, x0 = coords[yi] * n[yi], coords[xi] * n[xi]
                ya, yb, xa, xb = max(y0, r0), min(y0 + n[yi], r1), max(x0, c0), min(x0 + n[xi], c1)
                index = [slice(None)] * arr.ndim
                if ti is not None:
                    index[ti] = t - coords[ti] * n[ti]
                index[yi], index[xi] = slice(ya - y0, yb - y0), slice(xa - x0, xb - x0)
                sub = arr[tuple(index)].transpose(to_byx)
                if select is not None:
                    sub = sub[select]
                v_view[:, ya - r0:yb - r0, xa - c0:xb - c0] = \
                    partial(sub.reshape(sub.shape[0], -1)).reshape(parts, yb - ya, xb - xa)
            return on_chunk

        box = self._box(axes, t, (r0, r1), (c0, c1), self.bands)
        coords = self.embeddings.chunk_range(box)
        split = self.embeddings.subset_split(coords, (bi, idx)) if idx is not None else None
        if split is None:
            emb = [ChunkRequest(self.embeddings, coords, on_chunk_of(idx), keep, need, defer_cached=True)]
        else:
            # a few bands of chunks holding them all (a bands view of a store without depths):
            # only those bands kept and cached, as read() does; chunks in memory whole serve them
            kept, fetch, whole = split
            emb = [ChunkRequest(self.embeddings, fetch, on_chunk_of([kept.index(i) for i in idx]), keep, need,
                                defer_cached=True, subset=(bi, kept))]
            if whole:
                emb.append(ChunkRequest(self.embeddings, whole, on_chunk_of(idx), keep, need, defer_cached=True))
        read_wave([scl, *emb], cancel)
        self._invalidate_missing([c for r in emb for c in r.missing], (r0, r1), (c0, c1), s_view)
        return values, s


def _keep_only(coords: tuple[int, ...], arr: np.ndarray) -> None:
    """on_chunk of a prefetch: the chunk goes to the memory cache, nowhere else."""


def _fill_around(arr: np.ndarray, inside: tuple[slice, slice], value) -> None:
    """Fill an array's last two axes with `value` except in the rectangle `inside` (slices
    with their start and stop)."""
    rows, cols = inside
    arr[..., :rows.start, :] = value
    arr[..., rows.stop:, :] = value
    arr[..., rows, :cols.start] = value
    arr[..., rows, cols.stop:] = value


def _chunk_groups(rows: np.ndarray, cols: np.ndarray, inside: np.ndarray, ch: int, cw: int
                  ) -> dict[tuple[int, int], np.ndarray]:
    """{(chunk y, chunk x): the indices in `inside` of the pixels in that chunk, in order}."""
    cy, cx = rows[inside] // ch, cols[inside] // cw
    y0, x0 = int(cy.min()), int(cx.min())
    width = int(cx.max()) - x0 + 1
    ids = (cy - y0) * width + (cx - x0)
    if int(ids.max()) < 1 << 16:  # numpy sorts 16-bit keys by radix: a view's pixels in a few ms
        ids = ids.astype(np.uint16)
    order = np.argsort(ids, kind="stable")
    ids, members = ids[order], inside[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    out = {}
    for a, b in zip(starts.tolist(), np.r_[starts[1:], len(ids)].tolist()):
        out[(int(ids[a]) // width + y0, int(ids[a]) % width + x0)] = members[a:b]
    return out


class _PixelGather:
    """Scattered pixels of one array grouped by the chunk holding them, and a paste that
    copies each arriving chunk's values at those pixels into `out` ((bands, n) or (n,))."""

    def __init__(self, reader: ArrayReader, axes: tuple[str, ...], t, rows: np.ndarray, cols: np.ndarray,
                 inside: np.ndarray, select: list[int] | None, out: np.ndarray, groups=None) -> None:
        self.reader, self.axes, self.out = reader, axes, out
        self.yi, self.xi = axes.index("y"), axes.index("x")
        n = reader.chunk_shape
        self.ch, self.cw = n[self.yi], n[self.xi]
        self.rows, self.cols = rows, cols
        if groups is None or groups[0] != (self.ch, self.cw):
            groups = ((self.ch, self.cw), _chunk_groups(rows, cols, inside, self.ch, self.cw))
        self.groups = groups  # ((chunk height, width), {(chunk y, x): pixels}): the next gather may share it
        self._pixels: dict[tuple[int, int], np.ndarray] = groups[1]
        self.bi = axes.index("band") if "band" in axes else None
        self.sel = select
        bands = reader.shape[self.bi] if self.bi is not None else 0
        band_chunks = [0]
        if self.bi is not None:
            wanted = range(bands) if select is None else select
            band_chunks = sorted({b // n[self.bi] for b in wanted})
        self.coords = []
        for (y, x) in self._pixels:
            for bc in band_chunks:
                c = []
                for i, a in enumerate(axes):
                    c.append({"time": (t or 0) // n[i], "band": bc, "y": y, "x": x}[a])
                self.coords.append(tuple(c))
        self.t = t

    def pixels(self, coords: tuple[int, ...]) -> np.ndarray:
        """Indices (into rows/cols) of the pixels in a chunk."""
        return self._pixels[(coords[self.yi], coords[self.xi])]

    def chunks_of(self, pix: np.ndarray) -> list[tuple[int, ...]]:
        """This array's chunks holding some pixels (for the scales: usually one)."""
        cy, cx = self.rows[pix] // self.ch, self.cols[pix] // self.cw
        keys = set(zip(cy.tolist(), cx.tolist()))
        n = self.reader.chunk_shape
        return [tuple({"time": (self.t or 0) // n[i], "band": 0, "y": y, "x": x}[a] for i, a in enumerate(self.axes))
                for y, x in keys]

    def paste(self, coords: tuple[int, ...], arr: np.ndarray) -> None:
        pix = self.pixels(coords)
        n = self.reader.chunk_shape
        axes = list(self.axes)
        if "time" in axes:  # a view without the time axis
            ti = axes.index("time")
            arr = arr[(slice(None),) * ti + (self.t - coords[ti] * n[ti],)]
            axes.pop(ti)
        at = {"y": self.rows[pix] - coords[self.yi] * self.ch, "x": self.cols[pix] - coords[self.xi] * self.cw}
        if self.bi is None:
            self.out[pix] = arr[tuple(at[a] for a in axes)]
            return
        base = coords[self.bi] * n[self.bi]
        rest = [a for a in axes if a != "band"]
        if self.sel is None and self.out.T.flags.c_contiguous:
            # Pixel-major output (read_pixels): each pixel's bands are one contiguous row, so
            # the chunk's values go in row by row instead of scattered across the bands.
            band_major = np.moveaxis(arr, axes.index("band"), 0)  # (band, y/x in their order)
            k, ny, nx = band_major.shape
            lin = at[rest[0]] * nx + at[rest[1]]
            rows_of = np.ascontiguousarray(band_major).reshape(k, ny * nx).T  # a row of bands per pixel
            out = self.out.T
            if base == 0 and k == out.shape[1]:
                out[pix] = rows_of[lin]
            else:
                out[pix, base:base + k] = rows_of[lin]
            return
        arr = np.moveaxis(arr, axes.index("band"), 0)  # (band, then y and x in their order)
        vals = arr[(slice(None),) + tuple(at[a] for a in rest)]  # (bands of the chunk, pixels)
        if self.sel is None:
            self.out[base:base + vals.shape[0], pix] = vals
            return
        sel = np.asarray(self.sel)
        hit = np.nonzero((sel >= base) & (sel < base + n[self.bi]))[0]
        self.out[np.ix_(hit, pix)] = vals[sel[hit] - base]


def _to_yx(arr: np.ndarray, axes: tuple[str, ...]) -> np.ndarray:
    keep = [i for i, a in enumerate(axes) if a in ("y", "x")]
    arr = arr.reshape([arr.shape[i] for i in keep]) if len(keep) != arr.ndim else arr
    order = [a for a in axes if a in ("y", "x")]
    return arr if order == ["y", "x"] else arr.T


def _to_byx(arr: np.ndarray, axes: tuple[str, ...]) -> np.ndarray:
    if "time" in axes:
        arr = np.take(arr, 0, axis=axes.index("time"))
        axes = tuple(a for a in axes if a != "time")
    return np.transpose(arr, [axes.index("band"), axes.index("y"), axes.index("x")])


class TesseraStore:
    """An opened TESSERA store. Thread-safe for reads; cheap to share between clones."""

    def __init__(self, url: str, options: StoreOptions, source: Source, root_meta: dict,
                 disk: DiskCache | None = None, pixel_hint: tuple[float, float, int] | None = None,
                 pixel_xy: Future | None = None, cancel: Callable[[], bool] | None = None) -> None:
        self._cancel = cancel  # while opening only
        self._pixel_hint = pixel_hint
        self._pixel_xy: Future | None = pixel_xy  # (crs, x, y) of the hint, worked out meanwhile
        self.url = url
        self.options = options
        self.source = source
        self.offline = False
        self.attrs: dict = root_meta.get("attributes", {}) or {}
        self.caches = StoreCaches(ChunkLRU(options.memory_cache_bytes), disk)
        self.zones: dict[str, Zone] = {}
        self._root_meta = root_meta
        self._discover()
        self._cancel = None

    # -- discovery ----------------------------------------------------------------------------
    def _child_meta(self) -> dict[str, dict]:
        consolidated = (self._root_meta.get("consolidated_metadata") or {}).get("metadata")
        if consolidated:
            return consolidated
        names = self.source.list_dir("")
        if names is None:  # plain HTTP cannot list: ask for each zone group's metadata
            names = [f"utm{z:02d}" for z in range(1, 61)]
        metas: dict[str, dict] = {}

        def load(key: str) -> tuple[str, dict | None]:
            name = f"{key}/zarr.json"
            disk = self.caches.disk
            raw = disk.get("meta:" + name) if disk else None
            if raw is None:
                try:
                    raw = self.source.get(name)
                except FileNotFoundError:
                    raw = b""
                if disk is not None:
                    disk.put("meta:" + name, raw)
            return key, (json.loads(raw) if raw else None)

        groups = [n for n in names if ZONE_RE.match(n)]
        for key, meta in TASK_POOL.map(load, groups):
            if meta is None:
                continue
            metas[key] = meta
            for arr in ("embeddings", "scales", "time", self._scale_name(), *self._depth_names().values(),
                        *OBSERVATIONS):
                sub = load(f"{key}/{arr}")[1]
                if sub is not None:
                    metas[f"{key}/{arr}"] = sub
        return metas

    def _depth_names(self) -> dict[int, str]:
        """The arrays of the declared Matryoshka depths (`geoemb:depths`): depth -> name."""
        out: dict[int, str] = {}
        for entry in self.attrs.get("geoemb:depths") or []:
            try:
                out[int(entry["dimensions"])] = str(entry["array"])
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def _scale_name(self) -> str:
        q = self.attrs.get("geoemb:quantization") or {}
        return ((q.get("scale") or {}).get("array_name")) or "scales"

    def _discover(self) -> None:
        metas = self._child_meta()
        self._check_cancel()
        groups = sorted(k for k, m in metas.items() if ZONE_RE.match(k) and m.get("node_type") == "group")
        if not groups:
            raise NotTessera(f"{self.url} is a Zarr v3 store but has no UTM zone groups (utm01 to utm60); "
                             "it does not look like a TESSERA store")
        bands_attr = self.attrs.get("geoemb:dimensions")
        scale_name = self._scale_name()
        depth_names = self._depth_names()
        for g in groups:
            gattrs = metas[g].get("attributes", {}) or {}
            # The full embeddings; a pack of a shallower depth holds only that depth's array.
            present = {d: n for d, n in depth_names.items() if f"{g}/{n}" in metas}
            full = "embeddings" if f"{g}/embeddings" in metas or not present else present[max(present)]
            missing = [a for a in (full, scale_name) if f"{g}/{a}" not in metas]
            missing += [k for k in ("proj:code", "spatial:transform") if k not in gattrs]
            if missing:
                raise NotTessera(f"{self.url}: zone group {g} lacks {', '.join(missing)}; "
                                 "it does not look like a TESSERA store")
            emb, emb_axes = self._reader(metas, f"{g}/{full}", bands_attr)
            scl, scl_axes = self._reader(metas, f"{g}/{scale_name}", bands_attr)
            scl.after_decode = sanitise_scales  # once per decoded chunk, not on every read
            if "band" not in emb_axes:
                raise NotTessera(f"{g}/{full} has no band axis")
            bands = emb.shape[emb_axes.index("band")]
            shape = (emb.shape[emb_axes.index("y")], emb.shape[emb_axes.index("x")])
            depth_arrays = {}
            for depth, name in present.items():
                if name != full and depth < bands:
                    depth_arrays[depth] = self._reader(metas, f"{g}/{name}", bands_attr)
            extra = {}
            for name in OBSERVATIONS:
                if f"{g}/{name}" in metas:
                    reader = ArrayReader(self.source, f"{g}/{name}", metas[f"{g}/{name}"], self.caches,
                                         self._zarr_array)
                    extra[name] = (reader, _canonical_axes(reader.dimension_names, reader.shape, f"{g}/{name}",
                                                           bands_attr, kind="scales"))
            t = [float(v) for v in gattrs["spatial:transform"]]
            self.zones[g] = Zone(g, int(g[3:]), str(gattrs["proj:code"]), tuple(t), shape, emb, scl,
                                 emb_axes, scl_axes, bands=bands, depth_arrays=depth_arrays, extra=extra)
        self._load_years(metas)

    def _reader(self, metas: dict, key: str, bands_attr) -> tuple[ArrayReader, tuple[str, ...]]:
        reader = ArrayReader(self.source, key, metas[key], self.caches, self._zarr_array)
        return reader, _canonical_axes(reader.dimension_names, reader.shape, key, bands_attr)

    def _check_cancel(self) -> None:
        if self._cancel is not None and self._cancel():
            raise Cancelled("opening the store was cancelled")

    def _load_years(self, metas: dict) -> None:
        self._check_cancel()
        def years_of(zone: Zone) -> dict[int, int | None]:
            if "time" not in zone.emb_axes:
                year = self._single_year()
                return {year: None} if year is not None else {}
            key = f"{zone.name}/time"
            if key not in metas:
                raise NotTessera(f"{self.url}: {zone.name} has a time axis but no 'time' coordinate array")
            reader = ArrayReader(self.source, key, metas[key], self.caches, self._zarr_array)
            values = reader.read_all().astype(int).tolist()
            years = {int(v): i for i, v in enumerate(values)}
            if len(zones) > 1:
                self._prefetch_pixel(zone, years)
            return years

        zones = list(self.zones.values())
        if len(zones) == 1:  # nothing to overlap: no hand-over between threads
            zones[0].years = years_of(zones[0])
        else:
            for zone, years in zip(zones, TASK_POOL.map(years_of, zones)):
                zone.years = years
        if not self.years:
            raise NotTessera(f"{self.url}: cannot tell which year the data is for (no time axis, no year "
                             "attribute and no year in the store name)")

    def _prefetch_pixel(self, zone: Zone, years: dict) -> None:
        """With a pixel hint for this zone: start reading the pixel while the other zones'
        years load (pixel() then finds its indexes and chunks cached or in flight). A
        store of one zone has nothing to overlap: pixel() reads at once."""
        if self._pixel_hint is None:
            return
        lon, lat, year = self._pixel_hint
        if not (math.isfinite(lon) and math.isfinite(lat)) or not -80 <= lat <= 84:
            return
        if zone.number != zone_of_lon(lon) or year not in years:
            return
        guess = self._pixel_xy

        def read() -> None:
            try:
                crs, x, y = guess.result() if guess is not None else (None, 0.0, 0.0)
                if crs != zone.crs:
                    x, y = _project(lon, lat, zone.crs)[1:]
                row, col = zone.pixel_of(x, y)
                probe = dataclasses.replace(zone, years=dict(years))
                probe.read(year, (row, row + 1), (col, col + 1), skip_nodata=False)
            except Exception:  # only a head start: pixel() reads (and reports) for itself
                pass

        threading.Thread(target=read, name="tessera-pixel-prefetch", daemon=True).start()

    def _single_year(self) -> int | None:
        for k in ("geoemb:year", "year", "tessera:year"):
            if k in self.attrs:
                return int(self.attrs[k])
        m = re.search(r"(?<!\d)((?:19|20)\d{2})(?:\.zarr)?/?$", self.url)
        return int(m.group(1)) if m else None

    def _zarr_array(self, path: str):
        """zarr-python's own array, for codec chains the fast path does not handle."""
        import zarr  # only for codec chains the fast path does not know: no start-up cost otherwise

        return zarr.open_array(self.url, path=path, mode="r", storage_options=self._storage_options())

    def _storage_options(self) -> dict | None:
        if not self.url.startswith("s3://"):
            return None
        o = self.options
        opts: dict = {"anon": o.anon if o.anon is not None else not (o.key or o.profile)}
        if o.key:
            opts.update(key=o.key, secret=o.secret, anon=False)
        if o.profile:
            opts["profile"] = o.profile
        ck = {k: v for k, v in (("endpoint_url", o.endpoint_url), ("region_name", o.region)) if v}
        if ck:
            opts["client_kwargs"] = ck
        return opts

    def with_memory_cache(self, max_bytes: int) -> "TesseraStore":
        """This store with a private, smaller LRU of decoded chunks (shard indexes, the disk
        cache and the connection are shared): for an export, whose memory must stay bounded
        whatever else is using the store."""
        other = copy.copy(self)
        other.caches = self.caches.with_chunk_lru(max_bytes)
        other.zones = {name: z.with_caches(other.caches) for name, z in self.zones.items()}
        return other

    # -- queries ------------------------------------------------------------------------------
    @property
    def years(self) -> list[int]:
        return sorted({y for z in self.zones.values() for y in z.years})

    @property
    def bands(self) -> int:
        return max(z.bands for z in self.zones.values())

    @property
    def depths(self) -> list[int]:
        """The Matryoshka depths the store declares (`geoemb:depths`), shallowest first; a
        store without them has one depth, all its bands."""
        declared = self.attrs.get("geoemb:depths")
        out = []
        if isinstance(declared, list):
            for entry in declared:
                try:
                    out.append(int(entry["dimensions"]))
                except (KeyError, TypeError, ValueError):
                    continue
        return sorted(set(out) | {self.bands}) if out else [self.bands]

    def check_depth(self, depth: int | None) -> int:
        """The depth to read (all bands for None); refuses a depth the store does not declare.
        Only stores with `geoemb:depths` (v2 and later) order their dimensions by importance:
        a prefix of any other store's dimensions is an arbitrary slice."""
        if depth is None or depth == self.bands:
            return self.bands
        if len(self.depths) == 1:
            raise BandError(f"this store has no Matryoshka depths (no geoemb:depths): its {self.bands} dimensions "
                            "are not ordered by importance, so a prefix of them is not an embedding; use all "
                            f"{self.bands}")
        if depth not in self.depths:
            raise BandError(f"depth {depth} is not in this store; it has {', '.join(map(str, self.depths))}")
        return int(depth)

    @property
    def layout(self) -> str:
        z = next(iter(self.zones.values()))
        return "utm_zones" if "time" in z.emb_axes else "per_year"

    def check_year(self, year: int) -> None:
        if year not in self.years:
            raise YearNotFound(f"year {year} is not in this store; it has {', '.join(map(str, self.years))}")

    def check_bands(self, bands: Sequence[int]) -> list[int]:
        out = [int(b) for b in bands]
        bad = [b for b in out if not 1 <= b <= self.bands]
        if bad or not out:
            raise BandError(f"bands are numbered 1 to {self.bands}; got {', '.join(map(str, bad)) or 'none'}")
        return out

    def zone_for_lon(self, lon: float) -> Zone | None:
        return self.zones.get(f"utm{zone_of_lon(lon):02d}")

    def stretch(self, year: int, zone: str | None = None) -> dict | None:
        """The store's published stretch for a year (mode "pca" with the global PCA, or
        "bands"), if it has one: `geoemb:stretch` (one object keyed by year, as published) or
        the early `geoemb:stretch.{year}` attributes; with `zone`, that zone's own entry of
        `geoemb:stretch_zones`."""
        if zone is not None:
            entry = ((self.attrs.get("geoemb:stretch_zones") or {}).get(str(year)) or {}).get(zone)
            return entry if isinstance(entry, dict) else None
        by_year = self.attrs.get("geoemb:stretch")
        entry = by_year.get(str(year)) if isinstance(by_year, dict) else None
        if not isinstance(entry, dict):
            entry = self.attrs.get(f"geoemb:stretch.{year}")
        return entry if isinstance(entry, dict) else None

    def stretch_mode(self, year: int) -> str | None:
        """"pca" or "bands" for a year with a published stretch (entries without a mode but
        with PCA components are "pca"), else None."""
        entry = self.stretch(year)
        if entry is None:
            return None
        mode = entry.get("mode")
        if mode in ("pca", "bands"):
            return mode
        return "pca" if "pca_components" in entry else "bands"

    def stats(self) -> dict:
        return self.source.stats.snapshot()

    def info(self) -> dict:
        zones = {}
        for z in self.zones.values():
            yi, xi = z.emb_axes.index("y"), z.emb_axes.index("x")
            zones[z.name] = {
                "crs": z.crs, "shape": list(z.shape), "transform": list(z.transform),
                "bounds": list(z.bounds()), "years": sorted(z.years),
                "embeddings": {"dtype": str(z.embeddings.dtype), "axes": list(z.emb_axes),
                               "shape": list(z.embeddings.shape), "chunk": list(z.embeddings.chunk_shape),
                               "shard": list(z.embeddings.shard_shape) if z.embeddings.shard_shape else None,
                               "chunk_px": [z.embeddings.chunk_shape[yi], z.embeddings.chunk_shape[xi]]},
                "scales": {"dtype": str(z.scales.dtype), "axes": list(z.scl_axes),
                           "chunk": list(z.scales.chunk_shape),
                           "shard": list(z.scales.shard_shape) if z.scales.shard_shape else None},
            }
        return {
            "url": redact_url(self.url),
            "layout": self.layout,
            "dataset": self.attrs.get("tessera:dataset") or self.attrs.get("geoemb:dataset"),
            "model": self.attrs.get("tessera:model") or self.attrs.get("geoemb:model"),
            "years": self.years,
            **year_coverage({z.name: z.years for z in self.zones.values()}),
            "bands": self.bands,
            "depths": self.depths,
            "gsd": self.attrs.get("geoemb:gsd", 10.0),
            "global_pca_years": [y for y in self.years if self.stretch_mode(y) == "pca"],
            "stretch": {str(y): self.stretch_mode(y) for y in self.years if self.stretch_mode(y)},
            "zones": zones,
        }

    # -- single pixel -------------------------------------------------------------------------
    def pixel(self, lon: float, lat: float, year: int, crs: str = "EPSG:4326",
              cancel: Callable[[], bool] | None = None) -> dict:
        """The embedding at a point (lon/lat by default, or x/y in `crs`) for a year; with
        "observations" (per-pixel observation counts) where the zone group has them. A pixel
        whose scale is not valid (see core.quant) is `"valid": False`, with "nodata" saying why
        (core.quant's NOT_EMBEDDED, NO_DATA, INVALID, or OUTSIDE: no zone of the store has the
        point for that year); "nodata" is None for a valid pixel."""
        self.check_year(year)
        if crs != "EPSG:4326":
            lon, lat = to_lonlat(lon, lat, crs)
        if not (math.isfinite(lon) and math.isfinite(lat)) or not -80 <= lat <= 84:
            raise TesseraError(f"point ({lon}, {lat}) is outside the UTM range (latitudes -80 to 84)")
        zone = self.zone_for_lon(lon)
        if zone is None or year not in zone.years:
            return {"zone": None, "crs": None, "row": None, "col": None, "year": year, "valid": False,
                    "scale": None, "embedding": None, "nodata": OUTSIDE}
        x, y = transformer("EPSG:4326", zone.crs).transform(lon, lat)
        row, col = zone.pixel_of(x, y)
        counts = TASK_POOL.submit(self._observations, zone, year, row, col, cancel) if zone.extra else None
        win = zone.read(year, (row, row + 1), (col, col + 1), skip_nodata=False, cancel=cancel)
        reason = nodata_reason(win.scales[0, 0])
        valid = reason is None
        out = {"zone": zone.name, "crs": zone.crs, "row": row, "col": col, "year": year, "valid": valid,
               "scale": float(win.scales[0, 0]) if valid else None,
               "embedding": win.dequantised()[:, 0, 0].astype(float).tolist() if valid else None,
               "nodata": reason}
        if counts is not None:
            out["observations"] = counts.result()
        return out

    @staticmethod
    def _observations(zone: Zone, year: int, row: int, col: int, cancel=None) -> dict[str, int | None]:
        """The zone's per-pixel observation counts at a pixel (None outside the array)."""
        out: dict[str, int | None] = {}
        inside = 0 <= row < zone.shape[0] and 0 <= col < zone.shape[1]
        for name, (reader, axes) in zone.extra.items():
            if not inside:
                out[name] = None
                continue
            t = zone.years.get(year)
            box = zone._box(axes, t if t is not None else 0, (row, row + 1), (col, col + 1), 1)
            out[name] = int(np.asarray(reader.read(box, cancel=cancel)).ravel()[0])
        return out


def _project(lon: float, lat: float, crs: str) -> tuple[str, float, float]:
    x, y = transformer("EPSG:4326", crs).transform(lon, lat)
    return crs, x, y


def _cache_folder(options: StoreOptions, url: str) -> Path | None:
    if not options.cache_dir:
        return None
    return Path(options.cache_dir).expanduser() / hashlib.sha256(url.encode()).hexdigest()[:16]


def _fetch_root(source: Source, url: str, folder: Path | None) -> tuple[bytes, bool]:
    """The root zarr.json, from the store or (when it cannot be reached) the disk cache.

    Returns (bytes, offline)."""
    try:
        raw = source.get("zarr.json")
    except FileNotFoundError:
        for v2 in (".zgroup", ".zarray", ".zmetadata"):
            try:
                source.get(v2)
            except (FileNotFoundError, ReadError, IsADirectoryError):
                continue
            raise NotZarrV3(f"{url} is a Zarr v2 store; TESSERA stores are Zarr v3") from None
        raise StoreNotFound(f"no Zarr store at {url} (zarr.json not found); check the URL") from None
    except IsADirectoryError:
        raise StoreNotFound(f"no Zarr store at {url}") from None
    except ReadError as exc:
        cached = folder / "zarr.json" if folder else None
        if cached is not None and cached.is_file():
            return cached.read_bytes(), True
        kind = getattr(exc, "kind", "")
        what = "cannot open the store securely" if kind == "certificate" else "cannot reach the store"
        raise ReadError(f"{what} at {url}: {exc}", kind) from None
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / "zarr.json.tmp"
            tmp.write_bytes(raw)
            tmp.replace(folder / "zarr.json")
        except OSError:
            pass
    return raw, False


def _parse_root(raw: bytes, url: str) -> dict:
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise NotZarrV3(f"{url}: zarr.json is not valid JSON; not a Zarr v3 store") from None
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
        fmt = meta.get("zarr_format") if isinstance(meta, dict) else None
        raise NotZarrV3(f"{url} is not a Zarr v3 store (zarr_format {fmt!r})")
    if meta.get("node_type") != "group":
        raise NotTessera(f"{url} is a Zarr array, not a group; give the URL of the store's root")
    return meta


def open_store(url: "str | Path | StoreRef", options: StoreOptions | None = None,
               pixel: tuple[float, float, int] | None = None,
               cancel: Callable[[], bool] | None = None) -> TesseraStore:
    """Open a TESSERA store at a local path, file://, http(s):// or s3:// URL, or a StoreRef
    (whose endpoint, region, credentials and cache folder then apply over `options`).

    With ``options.cache_dir`` the store's metadata and every chunk read are kept on disk,
    so a store (and an area) seen once opens and reads without a network.
    ``pixel=(lon, lat, year)``: the store is opened for that pixel's lookup. Its zone's `time`
    coordinate is fetched together with zarr.json (guessing its default key), and the pixel's
    shard indexes and chunks while the other zones' years load, so open + ``pixel()`` take
    three round trips instead of four. A wrong guess only costs
    one small request.
    Raises StoreNotFound, NotZarrV3, NotTessera or ReadError with a message for the user.
    """
    if isinstance(url, StoreRef):
        options = url.options(options)
        url = url.url
    options = options or StoreOptions()
    url = str(url).strip()
    url = url.rstrip("/") if len(url) > 1 else url
    # an HTTP user name and password from a QGIS authentication configuration: Basic auth
    url = with_credentials(url, options.key, options.secret)
    source = open_source(url, options)
    pixel_xy = None
    if pixel is not None and math.isfinite(pixel[0]) and math.isfinite(pixel[1]):
        zone = zone_of_lon(pixel[0])
        source.speculate(["zarr.json", f"utm{zone:02d}/time/c/0"])
        # While zarr.json is on its way: the pixel in its zone's usual CRS (the first use of
        # pyproj and of the region module costs more than a round trip on some machines).
        pixel_xy = TASK_POOL.submit(_project, pixel[0], pixel[1], f"EPSG:{32600 + zone}")
    folder = _cache_folder(options, url)
    try:
        raw, offline = _fetch_root(source, url, folder)
        if cancel is not None and cancel():
            raise Cancelled("opening the store was cancelled")
        meta = _parse_root(raw, url)
        if not offline and pixel is None:  # the first read's shard index requests then find
            source.warm(WARM_CONNECTIONS)     # their connections up (a pixel's few have them)
        disk = None
        if folder is not None:
                    disk = DiskCache(folder / f"data-{hashlib.sha256(raw).hexdigest()[:12]}", options.cache_limit_bytes,
                             Path(options.cache_dir).expanduser())
        store = TesseraStore(url, options, source, meta, disk, pixel_hint=pixel, pixel_xy=pixel_xy, cancel=cancel)
    finally:
        source.forget_speculation()
    store.offline = offline
    return store


def year_coverage(zone_years: dict[str, Iterable[int]]) -> dict:
    """Which years are complete: a year is complete when every zone group of the store has it
    in its `time` coordinate (the stores carry no completeness attribute); otherwise it is
    partial, listed with the zones that have it.

    Returns {"complete_years": [year, ...], "partial_years": {year: [zone, ...]}}.
    """
    have = {name: set(years) for name, years in zone_years.items()}
    all_years = sorted(set().union(*have.values())) if have else []
    complete, partial = [], {}
    for year in all_years:
        zones = sorted(name for name, ys in have.items() if year in ys)
        if len(zones) == len(have):
            complete.append(year)
        else:
            partial[year] = zones
    return {"complete_years": complete, "partial_years": partial}


def describe_years(info: dict) -> str:
    """The years of an info() dict for people: "2024, 2025 (partial: 1 of 2 zones: utm30)"."""
    total = len(info.get("zones") or {})
    partial = info.get("partial_years") or {}
    out = []
    for year in info["years"]:
        zones = partial.get(year)
        out.append(f"{year} (partial: {len(zones)} of {total} zones: {', '.join(zones)})" if zones else str(year))
    return ", ".join(out)
