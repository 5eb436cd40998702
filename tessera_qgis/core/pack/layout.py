"""What a pack holds: the source's nodes sorted into kept groups and arrays, and for each
array the chunks over the area and where they go (time axis renumbered)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import product
from typing import Sequence

import numpy as np

from ..arrays import crc32c
from ..errors import ReadError, TesseraError
from ..sources import Range, Source
from ..store import ZONE_RE, TesseraStore

MISSING = 2**64 - 1
Y_NAMES = {"y", "lat", "latitude", "northing", "row", "rows"}
X_NAMES = {"x", "lon", "longitude", "easting", "col", "cols", "column"}
T_NAMES = {"time", "t", "year", "years"}

Box = tuple[float, float, float, float]  # lon/lat W, S, E, N
Window = tuple[tuple[int, int], tuple[int, int]]  # (rows, cols) in pixels


class PackError(TesseraError):
    """A pack that cannot be made as asked."""


@dataclass(eq=False)
class PackArray:
    """One array of the pack: its source metadata, axes, windows over the area and years."""

    path: str
    meta: dict
    dims: tuple[str, ...]  # canonical names: "time", "y", "x", or the array's own
    windows: list[Window]  # pixel windows over the area ([] = the whole array)
    time_map: dict[int, int] | None = None  # source time index -> pack time index
    rewrite: np.ndarray | None = None  # values written anew (the `time` coordinate of a subset)

    def __post_init__(self) -> None:
        meta = self.meta
        self.shape = tuple(meta["shape"])
        self.grid = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        enc = meta.get("chunk_key_encoding") or {"name": "default"}
        self.v2_keys = enc.get("name") == "v2"
        self.sep = (enc.get("configuration") or {}).get("separator", "." if self.v2_keys else "/")
        codecs = meta.get("codecs") or []
        self.sharded = bool(codecs) and codecs[0]["name"] == "sharding_indexed"
        self.inner = self.grid
        if self.sharded:
            cfg = codecs[0]["configuration"]
            self.inner = tuple(cfg["chunk_shape"])
            self.per_shard = tuple(s // c for s, c in zip(self.grid, self.inner))
            index_codecs = cfg.get("index_codecs") or []
            names = [c["name"] for c in index_codecs]
            little = all((c.get("configuration") or {}).get("endian", "little") == "little"
                         for c in index_codecs if c["name"] == "bytes")
            if set(names) - {"bytes", "crc32c"} or not little:
                raise PackError(f"{self.path}: shard index codecs {names} are not supported (bytes and crc32c are)")
            self.index_crc = "crc32c" in names
            self.index_end = cfg.get("index_location", "end") == "end"
            self.n_local = int(np.prod(self.per_shard))
            self.index_bytes = 16 * self.n_local + (4 if self.index_crc else 0)
        try:
            self.itemsize = np.dtype(str(meta.get("data_type"))).itemsize
        except TypeError:
            self.itemsize = 8

    @property
    def raw_chunk_bytes(self) -> int:
        """Uncompressed size of one (outer) chunk."""
        return int(np.prod(self.grid)) * self.itemsize

    def key(self, coords: Sequence[int]) -> str:
        if self.v2_keys:
            return f"{self.path}/" + self.sep.join(map(str, coords))
        return f"{self.path}/c" + "".join(f"{self.sep}{c}" for c in coords)

    def coords_of(self, key: str) -> tuple[int, ...]:
        tail = key[len(self.path) + 1:]
        if not self.v2_keys:
            tail = tail[2:]  # "c/"
        return tuple(int(v) for v in tail.split(self.sep)) if tail else ()

    def out_key(self, coords: Sequence[int]) -> str:
        """The key in the pack of a chunk (or shard) of the source: time index renumbered."""
        coords = tuple(coords)
        if self.time_map is not None and "time" in self.dims:
            ti = self.dims.index("time")
            coords = coords[:ti] + (self.time_map[coords[ti]],) + coords[ti + 1:]
        return self.key(coords)

    def out_meta(self) -> dict:
        """The source's metadata with the time axis as long as the years packed."""
        meta = json.loads(json.dumps(self.meta))
        if self.time_map is not None and "time" in self.dims:
            ti = self.dims.index("time")
            n = len(self.time_map)
            if self.rewrite is not None:
                chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
                chunk[ti] = n if chunk[ti] >= self.shape[ti] else chunk[ti]
            meta["shape"][ti] = n
        return meta

    def check_time_chunks(self) -> None:
        if self.time_map is None or "time" not in self.dims or self.rewrite is not None:
            return
        ti = self.dims.index("time")
        if self.grid[ti] != 1 and len(self.time_map) != self.shape[ti]:
            raise PackError(f"{self.path} stores {self.grid[ti]} years per chunk: it can be packed only with "
                            "all of its years")

    def needed(self) -> set[tuple[int, ...]]:
        """Coordinates of the chunks (inner chunks if sharded) over the area and years."""
        out: set[tuple[int, ...]] = set()
        for window in (self.windows or [None]):
            spans = []
            for d, n, c in zip(self.dims, self.shape, self.inner):
                if d == "time" and self.time_map is not None:
                    spans.append(sorted({t // c for t in self.time_map}))
                elif d in ("y", "x") and window is not None:
                    a, b = window[0] if d == "y" else window[1]
                    spans.append(range(a // c, -(-b // c)))
                else:
                    spans.append(range(-(-n // c)))
            out.update(product(*spans))
        return out

    def decode_index(self, key: str, raw: bytes | None) -> np.ndarray | None:
        """(n_local, 2) offsets and lengths of a shard index, its crc32c checked (None: no shard)."""
        if not raw:
            return None
        if len(raw) != self.index_bytes:
            raise ReadError(f"{key}: shard index is {len(raw)} bytes, expected {self.index_bytes}", "corrupt")
        body = raw[:-4] if self.index_crc else raw
        if self.index_crc and int.from_bytes(raw[-4:], "little") != crc32c(body):
            raise ReadError(f"{key}: shard index checksum mismatch (corrupt or truncated shard)", "corrupt")
        return np.frombuffer(body, dtype="<u8").reshape(self.n_local, 2)


@dataclass(eq=False)
class Piece:
    """One inner chunk to copy: its place in the source shard and its bytes' range."""

    array: PackArray
    shard: tuple[int, ...]
    local: int  # flat (C order) index within the shard
    offset: int
    nbytes: int

    @property
    def src_key(self) -> str:
        return self.array.key(self.shard)

    @property
    def range(self) -> Range:
        return Range(self.src_key, self.offset, self.offset + self.nbytes)


def scale_name(attrs: dict) -> str:
    q = attrs.get("geoemb:quantization") or {}
    return ((q.get("scale") or {}).get("array_name")) or "scales"


def depth_choice(attrs: dict, depth: int | None) -> tuple[set[str], set[str]]:
    """(embedding arrays kept, arrays dropped) for a depth (None: every depth kept)."""
    depths = attrs.get("geoemb:depths")
    if depth is None:
        names = {d.get("array") for d in depths or [] if isinstance(d, dict)} or {"embeddings"}
        return names, set()
    if not depths:
        raise PackError("this store has a single depth (no geoemb:depths attribute), so a depth cannot be "
                        "chosen: leave it out and the pack holds all the store's dimensions")
    entries = {int(d["dimensions"]): d["array"] for d in depths if isinstance(d, dict) and "array" in d}
    if int(depth) not in entries:
        raise PackError(f"depth {depth} is not in this store; it has {', '.join(map(str, sorted(entries)))}")
    keep = entries[int(depth)]
    return {keep}, set(entries.values()) - {keep}


def list_nodes(src: Source, root: dict) -> dict[str, dict]:
    """Metadata of every node below the root: the consolidated metadata, else a listing."""
    consolidated = (root.get("consolidated_metadata") or {}).get("metadata")
    if consolidated:
        return dict(consolidated)
    if src.list_dir("") is None:
        raise PackError("this store has no consolidated metadata and cannot be listed over plain HTTP; "
                        "a pack needs one or the other")
    nodes: dict[str, dict] = {}

    def walk(prefix: str) -> None:
        for name in src.list_dir(prefix) or []:
            if name in ("zarr.json", "c"):
                continue
            key = f"{prefix}/{name}" if prefix else name
            try:
                meta = json.loads(src.get(f"{key}/zarr.json"))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            nodes[key] = meta
            if meta.get("node_type") == "group":
                walk(key)

    walk("")
    return nodes


def canonical(name: str) -> str:
    low = str(name).lower()
    if low in T_NAMES:
        return "time"
    if low in Y_NAMES:
        return "y"
    if low in X_NAMES:
        return "x"
    return str(name)


def pack_arrays(store: TesseraStore, nodes: dict[str, dict], zone_windows: dict[str, list[Window]],
                zone_years: dict[str, list[int]], areas: list[Box], drop: set[str], scales: str):
    """(arrays, groups, skipped node keys) of a pack.

    Kept: the zone groups over the area with every array in them, except embedding depths not
    chosen (`drop`) and coordinates only those had; preview pyramids (top-level groups with
    `multiscales`, i.e. `global_rgb`) with their tiles over the area. Anything else at the top
    level is skipped (listed)."""
    arrays: list[PackArray] = []
    groups: dict[str, dict] = {}
    skipped: list[str] = []
    previews = {k for k, m in nodes.items() if "/" not in k and m.get("node_type") == "group"
                and isinstance((m.get("attributes") or {}).get("multiscales"), dict)}
    zone_dims: dict[str, set[str]] = {}
    candidates: list[tuple[str, dict, str]] = []
    for key, meta in sorted(nodes.items()):
        top = key.split("/")[0]
        if ZONE_RE.match(top):
            if top not in zone_windows:
                continue
            kind = "zone"
        elif top in previews:
            kind = "preview"
        else:
            skipped.append(key)
            continue
        if meta.get("node_type") == "group":
            groups[key] = meta
        elif not (kind == "zone" and key.rsplit("/", 1)[1] in drop):
            candidates.append((key, meta, kind))
            names = meta.get("dimension_names") or []
            if kind == "zone" and len(names) > 1:
                zone_dims.setdefault(top, set()).update(names)
    for key, meta, kind in candidates:
        top, name = key.split("/")[0], key.rsplit("/", 1)[1]
        names = list(meta.get("dimension_names") or [])
        if kind == "zone" and names == [name] and name not in zone_dims.get(top, set()):
            continue  # the coordinate of a dimension only dropped arrays had (band, band_d16, ...)
        dims = _dims_of(store, top, name, meta, scales)
        if kind == "zone":
            arr = _zone_array(store, key, meta, dims, zone_windows[top], zone_years[top])
        else:
            arr = PackArray(key, meta, dims, preview_windows(nodes[top], key, meta, dims, areas))
        arr.check_time_chunks()
        arrays.append(arr)
    return arrays, groups, skipped


def _zone_array(store: TesseraStore, key: str, meta: dict, dims, windows, years: list[int]) -> PackArray:
    zone = store.zones[key.split("/")[0]]
    if "time" not in dims:
        return PackArray(key, meta, dims, windows)
    idx = sorted(zone.years[y] for y in years if zone.years.get(y) is not None)
    rewrite = None
    if key.endswith("/time") and len(dims) == 1 and len(idx) != meta["shape"][0]:
        by_index = {t: y for y, t in zone.years.items()}
        rewrite = np.asarray([by_index[t] for t in idx])
    return PackArray(key, meta, dims, windows, {t: i for i, t in enumerate(idx)}, rewrite)


def _dims_of(store: TesseraStore, zone: str, name: str, meta: dict, scales: str) -> tuple[str, ...]:
    names = meta.get("dimension_names")
    if names and all(names):
        return tuple(canonical(n) for n in names)
    z = store.zones.get(zone)
    if z is not None and name == "embeddings":
        return tuple(z.emb_axes)
    if z is not None and name == scales:
        return tuple(z.scl_axes)
    shape = meta["shape"]
    if z is not None and len(shape) >= 2 and tuple(shape[-2:]) == tuple(z.shape):
        return tuple(f"dim{i}" for i in range(len(shape) - 2)) + ("y", "x")
    return tuple(f"dim{i}" for i in range(len(shape)))


def preview_windows(group: dict, key: str, meta: dict, dims, areas: list[Box]) -> list[Window]:
    """Pixel windows over the areas of one level of a lon/lat preview pyramid (global_rgb),
    placed with the level's `spatial:transform` from the group's multiscales layout."""
    if "y" not in dims or "x" not in dims:
        return []
    level = key.split("/")[1] if key.count("/") >= 2 else ""
    shape = meta["shape"]
    h, w = shape[dims.index("y")], shape[dims.index("x")]
    transform = None
    for item in ((group.get("attributes") or {}).get("multiscales") or {}).get("layout") or []:
        if str(item.get("asset")) == level and item.get("spatial:transform"):
            transform = item["spatial:transform"]
    if transform is None:  # a plate carree over the globe
        transform = [360.0 / w, 0.0, -180.0, 0.0, -180.0 / h, 90.0]
    a, _, c, _, e, f = transform
    out = []
    for west, south, east, north in areas:
        c0, c1 = max(0, math.floor((west - c) / a)), min(w, math.ceil((east - c) / a))
        r0, r1 = max(0, math.floor((f - north) / -e)), min(h, math.ceil((f - south) / -e))
        if c0 < c1 and r0 < r1:
            out.append(((r0, r1), (c0, c1)))
    return out or [((0, 0), (0, 0))]  # an empty window: no chunk of this level
