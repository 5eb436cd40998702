"""Opening a TESSERA store and reading pixel windows of its zones.

Everything is discovered from the store's metadata: zones, years (from each zone's `time`
coordinate, by value), band count, dtypes, chunk and shard shapes, CRS and transform, and
the axis order of each array (from `dimension_names`). Both the current layout (one store,
`utmNN` groups, embeddings (time, band, y, x)) and the earlier per-year layout (one store per
year, embeddings (y, x, band)) are read.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .arrays import ArrayReader, ChunkLRU, DiskCache, StoreCaches
from .errors import BandError, NotTessera, NotZarrV3, ReadError, StoreNotFound, TesseraError, YearNotFound
from .sources import TASK_POOL, Source, StoreOptions, open_source
from .urls import redact_url
from .utm import zone_of_lon

ZONE_RE = re.compile(r"^utm(\d{2})$")
AXES = {
    "time": {"time", "t", "year", "years"},
    "band": {"band", "bands", "channel", "channels", "feature", "features", "embedding", "dim"},
    "y": {"y", "northing", "row", "rows", "lat", "latitude"},
    "x": {"x", "easting", "col", "cols", "column", "lon", "longitude"},
}


def _canonical_axes(names: Sequence[str | None], shape: Sequence[int], what: str, bands: int | None) -> tuple[str, ...]:
    """Canonical axis names (time/band/y/x) of an array, from dimension_names or its rank."""
    if names and all(names):
        out = []
        for n in names:
            canon = next((k for k, v in AXES.items() if str(n).lower() in v), None)
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
    kind = "embeddings" if what.endswith("embeddings") else "scales"
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
        from .region import dequantise

        return dequantise(self.q[self._rows(bands)], self.scales)

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

    def with_caches(self, caches: StoreCaches) -> "Zone":
        import dataclasses

        return dataclasses.replace(self, embeddings=self.embeddings.with_caches(caches),
                                   scales=self.scales.with_caches(caches), years=dict(self.years))

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

    def _chunk_need(self, rows, cols, wanted: np.ndarray) -> Callable:
        """need(chunk) for the embeddings: does the chunk hold a wanted pixel of the window?"""
        yi, xi = self.emb_axes.index("y"), self.emb_axes.index("x")
        ch, cw = self.embeddings.chunk_shape[yi], self.embeddings.chunk_shape[xi]

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

    def read_scales(self, year: int, rows, cols, cancel=None, keep: bool = True,
                    prefetch_embeddings: bool = False) -> np.ndarray:
        """float32 (h, w) scales of a window; +inf outside the zone's array.

        `prefetch_embeddings` loads the embeddings' shard indexes at the same time, so the
        embeddings read that follows costs one round trip, not two."""
        t, (r0, r1), (c0, c1), dst, any_ = self._clip(year, rows, cols)
        out = np.full((max(rows[1] - rows[0], 0), max(cols[1] - cols[0], 0)), np.inf, dtype=np.float32)
        if not any_:
            return out
        pre = None
        if prefetch_embeddings:
            shards = _shards_of(self.embeddings, self._box(self.emb_axes, t, (r0, r1), (c0, c1), self.bands))
            pre = _in_task_pool(self.embeddings.prefetch_indexes, shards) if shards else None
        s = self.scales.read(self._box(self.scl_axes, t, (r0, r1), (c0, c1), self.bands), cancel=cancel, keep=keep)
        out[dst] = _to_yx(s, self.scl_axes)
        if pre is not None:
            pre.result()
        return out

    def read_embeddings(self, year: int, rows, cols, bands: Sequence[int] | None = None,
                        wanted: np.ndarray | None = None, cancel=None, keep: bool = True) -> np.ndarray:
        """int8 (len(bands), h, w) of a window (bands numbered from 1; None = all).

        Only chunks holding a `wanted` pixel (a (h, w) mask) are fetched; elsewhere 0."""
        t, (r0, r1), (c0, c1), dst, any_ = self._clip(year, rows, cols)
        idx = list(range(self.bands)) if bands is None else [b - 1 for b in bands]
        out = np.zeros((len(idx), max(rows[1] - rows[0], 0), max(cols[1] - cols[0], 0)), dtype=np.int8)
        if not any_ or (wanted is not None and not wanted.any()):
            return out
        box = self._box(self.emb_axes, t, (r0, r1), (c0, c1), self.bands)
        need = None
        if wanted is not None:
            need = self._chunk_need((r0, r1), (c0, c1), wanted[dst])
        bi = self.emb_axes.index("band")
        select = None if bands is None else (bi, idx)
        e = self.embeddings.read(box, need=need, cancel=cancel, keep=keep, select=select)
        out[(slice(None),) + dst] = _to_byx(e, self.emb_axes)
        return out

    def read(self, year: int, rows: tuple[int, int], cols: tuple[int, int],
             cancel: Callable[[], bool] | None = None, skip_nodata: bool = True,
             keep: bool = True, bands: Sequence[int] | None = None) -> WindowData:
        """Quantised window [rows) x [cols) for a year; pixels outside the zone are nodata.

        Scales come first (the embeddings' shard indexes load meanwhile); then only the
        embeddings chunks holding a valid pixel. `skip_nodata=False` reads both at once (a
        single pixel: one round trip less). `keep=False` does not keep decoded chunks in
        memory (streamed exports). `bands` (from 1) limits the bands kept in the result."""
        if skip_nodata:
            s = self.read_scales(year, rows, cols, cancel, keep, prefetch_embeddings=True)
            q = self.read_embeddings(year, rows, cols, bands, np.isfinite(s), cancel, keep)
        else:
            fut = _in_task_pool(self.read_scales, year, rows, cols, cancel, keep)
            q = self.read_embeddings(year, rows, cols, bands, None, cancel, keep)
            s = fut.result()
        return WindowData(self, year, rows[0], cols[0], q, s, tuple(bands) if bands is not None else ())


def _in_task_pool(fn, *args) -> Future:
    """Run fn in TASK_POOL, or right here if this already is a TASK_POOL thread (a task
    waiting for a task of its own pool could deadlock it)."""
    if threading.current_thread().name.startswith("tessera-task"):
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut
    return TASK_POOL.submit(fn, *args)


def _shards_of(reader: ArrayReader, box) -> list[tuple[int, ...]]:
    if not reader.shard_shape:
        return []
    spans = [range(a // s, -(-b // s)) for (a, b), s in zip(box, reader.shard_shape)]
    from itertools import product

    return list(product(*spans))


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
                 disk: DiskCache | None = None, pixel_hint: tuple[float, float, int] | None = None) -> None:
        self._pixel_hint = pixel_hint
        self.url = url
        self.options = options
        self.source = source
        self.offline = False
        self.attrs: dict = root_meta.get("attributes", {}) or {}
        self.caches = StoreCaches(ChunkLRU(options.memory_cache_bytes), disk)
        self.zones: dict[str, Zone] = {}
        self._root_meta = root_meta
        self._discover()

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
            for arr in ("embeddings", "scales", "time", self._scale_name()):
                sub = load(f"{key}/{arr}")[1]
                if sub is not None:
                    metas[f"{key}/{arr}"] = sub
        return metas

    def _scale_name(self) -> str:
        q = self.attrs.get("geoemb:quantization") or {}
        return ((q.get("scale") or {}).get("array_name")) or "scales"

    def _discover(self) -> None:
        metas = self._child_meta()
        groups = sorted(k for k, m in metas.items() if ZONE_RE.match(k) and m.get("node_type") == "group")
        if not groups:
            raise NotTessera(f"{self.url} is a Zarr v3 store but has no UTM zone groups (utm01 to utm60); "
                             "it does not look like a TESSERA store")
        bands_attr = self.attrs.get("geoemb:dimensions")
        scale_name = self._scale_name()
        for g in groups:
            gattrs = metas[g].get("attributes", {}) or {}
            missing = [a for a in ("embeddings", scale_name) if f"{g}/{a}" not in metas]
            missing += [k for k in ("proj:code", "spatial:transform") if k not in gattrs]
            if missing:
                raise NotTessera(f"{self.url}: zone group {g} lacks {', '.join(missing)}; "
                                 "it does not look like a TESSERA store")
            emb_meta, scl_meta = metas[f"{g}/embeddings"], metas[f"{g}/{scale_name}"]
            emb = ArrayReader(self.source, f"{g}/embeddings", emb_meta, self.caches, self._zarr_array)
            scl = ArrayReader(self.source, f"{g}/{scale_name}", scl_meta, self.caches, self._zarr_array)
            emb_axes = _canonical_axes(emb.dimension_names, emb.shape, f"{g}/embeddings", bands_attr)
            scl_axes = _canonical_axes(scl.dimension_names, scl.shape, f"{g}/{scale_name}", bands_attr)
            if "band" not in emb_axes:
                raise NotTessera(f"{g}/embeddings has no band axis")
            bands = emb.shape[emb_axes.index("band")]
            shape = (emb.shape[emb_axes.index("y")], emb.shape[emb_axes.index("x")])
            t = [float(v) for v in gattrs["spatial:transform"]]
            self.zones[g] = Zone(g, int(g[3:]), str(gattrs["proj:code"]), tuple(t), shape, emb, scl,
                                 emb_axes, scl_axes, bands=bands)
        self._load_years(metas)

    def _load_years(self, metas: dict) -> None:
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
            self._prefetch_pixel(zone, years)
            return years

        for zone, years in zip(self.zones.values(), TASK_POOL.map(years_of, list(self.zones.values()))):
            zone.years = years
        if not self.years:
            raise NotTessera(f"{self.url}: cannot tell which year the data is for (no time axis, no year "
                             "attribute and no year in the store name)")

    def _prefetch_pixel(self, zone: Zone, years: dict) -> None:
        """With a pixel hint for this zone: start reading the pixel while the other zones'
        years load (pixel() then finds its indexes and chunks cached or in flight)."""
        if self._pixel_hint is None:
            return
        lon, lat, year = self._pixel_hint
        if not (math.isfinite(lon) and math.isfinite(lat)) or not -80 <= lat <= 84:
            return
        if zone.number != zone_of_lon(lon) or year not in years:
            return
        from .region import transformer

        def read() -> None:
            try:
                x, y = transformer("EPSG:4326", zone.crs).transform(lon, lat)
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
        import zarr

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
        import copy

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

    def stretch(self, year: int) -> dict | None:
        """The store's `geoemb:stretch.{year}` (global PCA and stretch), if it has one."""
        st = self.attrs.get(f"geoemb:stretch.{year}")
        return st if isinstance(st, dict) else None

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
            "gsd": self.attrs.get("geoemb:gsd", 10.0),
            "global_pca_years": [y for y in self.years if self.stretch(y)],
            "zones": zones,
        }

    # -- single pixel -------------------------------------------------------------------------
    def pixel(self, lon: float, lat: float, year: int, crs: str = "EPSG:4326") -> dict:
        """The embedding at a point (lon/lat by default, or x/y in `crs`) for a year."""
        from .region import to_lonlat, transformer

        self.check_year(year)
        if crs != "EPSG:4326":
            lon, lat = to_lonlat(lon, lat, crs)
        if not (math.isfinite(lon) and math.isfinite(lat)) or not -80 <= lat <= 84:
            raise TesseraError(f"point ({lon}, {lat}) is outside the UTM range (latitudes -80 to 84)")
        zone = self.zone_for_lon(lon)
        if zone is None or year not in zone.years:
            return {"zone": None, "crs": None, "row": None, "col": None, "year": year, "valid": False,
                    "scale": None, "embedding": None}
        x, y = transformer("EPSG:4326", zone.crs).transform(lon, lat)
        row, col = zone.pixel_of(x, y)
        win = zone.read(year, (row, row + 1), (col, col + 1), skip_nodata=False)
        scale = float(win.scales[0, 0])
        valid = bool(np.isfinite(scale))
        return {"zone": zone.name, "crs": zone.crs, "row": row, "col": col, "year": year, "valid": valid,
                "scale": scale if valid else None,
                "embedding": win.dequantised()[:, 0, 0].astype(float).tolist() if valid else None}


def _cache_folder(options: StoreOptions, url: str) -> Path | None:
    if not options.cache_dir:
        return None
    import hashlib

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


def open_store(url: str | Path, options: StoreOptions | None = None,
               pixel: tuple[float, float, int] | None = None) -> TesseraStore:
    """Open a TESSERA store at a local path, file://, http(s):// or s3:// URL.

    With ``options.cache_dir`` the store's metadata and every chunk read are kept on disk,
    so a store (and an area) seen once opens and reads without a network.
    ``pixel=(lon, lat, year)``: the store is opened for that pixel's lookup. Its zone's `time`
    coordinate is fetched together with zarr.json (guessing its default key), and the pixel's
    shard indexes and chunks while the other zones' years load, so open + ``pixel()`` take
    three round trips instead of four. A wrong guess only costs
    one small request.
    Raises StoreNotFound, NotZarrV3, NotTessera or ReadError with a message for the user.
    """
    options = options or StoreOptions()
    url = str(url).strip()
    url = url.rstrip("/") if len(url) > 1 else url
    source = open_source(url, options)
    if pixel is not None and math.isfinite(pixel[0]):
        source.speculate([f"utm{zone_of_lon(pixel[0]):02d}/time/c/0"])
    folder = _cache_folder(options, url)
    try:
        raw, offline = _fetch_root(source, url, folder)
        meta = _parse_root(raw, url)
        disk = None
        if folder is not None:
            import hashlib

            disk = DiskCache(folder / f"data-{hashlib.sha256(raw).hexdigest()[:12]}", options.cache_limit_bytes,
                             Path(options.cache_dir).expanduser())
        store = TesseraStore(url, options, source, meta, disk, pixel_hint=pixel)
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
