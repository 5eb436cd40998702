"""Planning a pack: what it fetches, what that costs, how long it takes. Writes nothing."""
from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import Cancelled, YearNotFound
from ..geo import check_bounds, lonlat_bounds
from ..region import data_extent
from ..region import plan as plan_region
from ..sources import TASK_POOL, Range, Source, StoreOptions, coalesce
from ..store import TesseraStore, open_store
from ..storeref import StoreRef
from . import partdir
from .layout import Box, PackArray, PackError, Piece, Window, depth_choice, list_nodes, pack_arrays, scale_name

WHOLE_IN_PLAN = 4 << 20  # unsharded objects up to this raw size are fetched while planning
PROBE_BYTES = 2 << 20  # the speed probe: at most this much of the first wave of chunks
MERGE_MAX = 2 << 20  # adjacent inner chunks merge into requests of at most this size


@dataclass
class PackPlan:
    """What a pack will fetch and write, worked out without writing anything."""

    ref: StoreRef
    store: TesseraStore
    out: Path
    areas: list[Box]
    years: list[int]
    depth: int | None
    root: dict
    root_sha: str
    arrays: list[PackArray]
    groups: dict[str, dict]  # group path -> its consolidated entry
    zones: dict[str, dict]  # zone -> {"windows": [[rows, cols], ...], "years": [...]}
    skipped: list[str]  # source nodes left out (neither a zone group nor a preview)
    pieces: list[Piece] = field(default_factory=list)  # every inner chunk of the pack
    done: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)  # in OUT.part: (nbytes, crc)
    wholes: dict[str, PackArray] = field(default_factory=dict)  # unsharded object key -> its array
    whole_done: dict[str, tuple[int, int] | None] = field(default_factory=dict)  # None: absent in the source
    indexes: dict[str, bytes | None] = field(default_factory=dict)  # shard indexes fetched while planning
    probe: dict[tuple[str, int], bytes] = field(default_factory=dict)  # chunks fetched by the speed probe
    whole_data: dict[str, bytes | None] = field(default_factory=dict)  # small objects fetched while planning
    latency: float = 0.0
    bandwidth: float | None = None
    plan_bytes: int = 0  # fetched while planning (root metadata, indexes, small objects, the probe)
    resumed_bytes: int = 0  # chunk bytes already in OUT.part from an earlier, interrupted run
    concurrency: int = 8

    @property
    def part(self) -> Path:
        return self.out.with_name(self.out.name + ".part")

    def todo(self) -> list[Piece]:
        return [p for p in self.pieces
                if (p.src_key, p.local) not in self.done and (p.src_key, p.local) not in self.probe]

    def todo_wholes(self) -> list[str]:
        return [k for k in self.wholes if k not in self.whole_done and k not in self.whole_data]

    @property
    def bytes_to_fetch(self) -> int:
        """Bytes the run still fetches: exact, except unsharded objects larger than
        WHOLE_IN_PLAN, counted at their uncompressed size (an upper bound)."""
        return sum(p.nbytes for p in self.todo()) + sum(self.wholes[k].raw_chunk_bytes for k in self.todo_wholes())

    @property
    def requests(self) -> int:
        return len(coalesce([p.range for p in self.todo()], 0, MERGE_MAX)) + len(self.todo_wholes())

    @property
    def total_bytes(self) -> int:
        """Everything this pack fetches: what planning fetched plus what the run will fetch."""
        return self.plan_bytes + self.bytes_to_fetch

    def seconds(self) -> float:
        """Time the run takes at the measured speed: a round trip per wave of concurrent
        requests, plus the bytes at the measured throughput."""
        waves = math.ceil(self.requests / max(1, self.concurrency))
        return waves * self.latency + self.bytes_to_fetch / (self.bandwidth or float("inf"))

    def describe(self) -> str:
        mb = 1e6
        depth = f"depth {self.depth}" if self.depth else "every depth"
        speed = f"{self.latency * 1000:.0f} ms a round trip"
        if self.bandwidth:
            speed += f", {self.bandwidth / mb:.1f} MB/s"
        text = (f"{len(self.zones)} zone(s) ({', '.join(self.zones)}), years {', '.join(map(str, self.years))}, "
                f"{depth}: {self.bytes_to_fetch / mb:.1f} MB to fetch in {self.requests} requests, about "
                f"{duration(self.seconds())} at the measured speed ({speed}); planning fetched "
                f"{self.plan_bytes / mb:.2f} MB (shard indexes, small objects, the speed probe)")
        if self.resumed_bytes:
            text += f"; {self.resumed_bytes / mb:.1f} MB are already in {self.part.name} (resuming)"
        return text


def plan_pack(source: "StoreRef | str | Path", areas: "Box | Sequence[Box]", years: Sequence[int],
              out: "str | Path", depth: int | None = None, options: StoreOptions | None = None,
              probe: bool = True, cancel: Callable[[], bool] | None = None,
              store: TesseraStore | None = None) -> PackPlan:
    """What packing `areas` (lon/lat W,S,E,N boxes) for `years` fetches, checked and measured.

    Raises PackError, YearNotFound or ExtentError with a message for the user (area outside
    the data, a year or depth the store does not have, an output that exists, an OUT.part of
    another pack); writes nothing. An OUT.part of the same pack is resumed: what it holds is
    not fetched again. `store`: the source already opened (`source` is then its reference).
    Call it (and run_pack) from any thread but the core's TASK_POOL, whose workers it uses."""
    areas_l = _check_areas(areas)
    years_l = sorted({int(y) for y in years})
    if not years_l:
        raise PackError("no years given: name the years to pack, e.g. 2024,2025")
    out = Path(out).expanduser().absolute()
    if out.exists():
        raise PackError(f"{out} exists; choose another output folder or remove it")
    ref = source if isinstance(source, StoreRef) else StoreRef(str(source))
    store = store or open_store(ref, options)
    src = store.source
    t0 = time.perf_counter()
    raw = src.get("zarr.json")
    latency = time.perf_counter() - t0
    root = json.loads(raw)
    missing = [y for y in years_l if y not in store.years]
    if missing:
        raise YearNotFound(f"year {', '.join(map(str, missing))} is not in this store; it has "
                           f"{', '.join(map(str, store.years))}")
    attrs = root.get("attributes") or {}
    keep, drop = depth_choice(attrs, depth)
    zone_windows, zone_years = _zone_windows(store, areas_l, years_l)
    root_sha = hashlib.sha256(raw).hexdigest()
    partdir.check_manifest(out.with_name(out.name + ".part"),
                           partdir.manifest(root_sha, areas_l, years_l, depth, ref.public_url))
    arrays, groups, skipped = pack_arrays(store, list_nodes(src, root), zone_windows, zone_years, areas_l, drop,
                                          scale_name(attrs))
    zones = {z: {"windows": [[list(r), list(c)] for r, c in w], "years": zone_years[z]}
             for z, w in zone_windows.items()}
    plan = PackPlan(ref=ref, store=store, out=out, areas=areas_l, years=years_l, depth=depth, root=root,
                    root_sha=root_sha, arrays=arrays, groups=groups, zones=zones, skipped=skipped,
                    latency=latency, plan_bytes=len(raw),
                    concurrency=max(1, int(getattr(src, "concurrency", 8))))
    _plan_shards(plan, cancel)
    data_arrays = keep | {scale_name(attrs)}
    if not any(p.array.path.rsplit("/", 1)[1] in data_arrays for p in plan.pieces):
        raise PackError(f"the store has no data for {', '.join(map(str, years_l))} in this area "
                        f"(zone(s) {', '.join(zone_windows)} hold nothing there)")
    _plan_wholes(plan)
    plan.resumed_bytes = sum(n for n, _ in plan.done.values()) + sum(v[0] for v in plan.whole_done.values() if v)
    if probe:
        _probe(plan, cancel)
    return plan


def _check_areas(areas) -> list[Box]:
    if areas is None or len(areas) == 0:
        raise PackError("no area given: a W,S,E,N box in lon/lat")
    items = [areas] if isinstance(areas[0], (int, float)) else list(areas)
    out = []
    for a in items:
        b = check_bounds(a)
        if b[0] < -180 or b[2] > 180:
            raise PackError(f"the area {b} is not in lon/lat (W,S,E,N with longitudes -180 to 180)")
        lonlat_bounds(b, "EPSG:4326")  # within the UTM latitudes
        out.append(b)
    return out


def _zone_windows(store: TesseraStore, areas: list[Box], years: list[int]):
    """Pixel windows of each zone over the areas, and the asked years each zone has."""
    windows: dict[str, list[Window]] = {}
    for area in areas:
        for part in plan_region(store, area, "EPSG:4326"):
            windows.setdefault(part.zone.name, []).append((part.rows, part.cols))
    if not windows:
        w, s, e, n = data_extent(store, "EPSG:4326")
        raise PackError(f"the area is outside the store's data, which covers longitudes {w:.4f} to {e:.4f} and "
                        f"latitudes {s:.4f} to {n:.4f}")
    zone_years = {z: [y for y in years if y in store.zones[z].years] for z in windows}
    lacking = [y for y in years if not any(y in ys for ys in zone_years.values())]
    if lacking:
        have = "; ".join(f"{z} has {', '.join(map(str, sorted(store.zones[z].years)))}" for z in windows)
        raise PackError(f"year {', '.join(map(str, lacking))} is not in the zones over this area ({have})")
    return ({z: w for z, w in windows.items() if zone_years[z]},
            {z: ys for z, ys in zone_years.items() if ys})


def _plan_shards(plan: PackPlan, cancel) -> None:
    """Fetch (or reuse from OUT.part) the indexes of the shards over the area, every array's
    at once (one wave of requests); list the pieces."""
    src = plan.store.source
    wanted: list[tuple[PackArray, dict[tuple[int, ...], list[int]]]] = []
    raws: dict[str, bytes | None] = {}
    todo: dict[PackArray, list[str]] = {}
    for arr in plan.arrays:
        if not arr.sharded or arr.rewrite is not None:
            continue
        shards: dict[tuple[int, ...], list[int]] = {}
        for c in arr.needed():
            shard = tuple(i // p for i, p in zip(c, arr.per_shard))
            local = int(np.ravel_multi_index(tuple(i % p for i, p in zip(c, arr.per_shard)), arr.per_shard))
            shards.setdefault(shard, []).append(local)
        wanted.append((arr, shards))
        for shard in shards:
            key = arr.key(shard)
            cached = partdir.cached_index(plan.part, key)
            if cached is False:
                todo.setdefault(arr, []).append(key)
            else:
                raws[key] = cached
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
    for fetched in TASK_POOL.map(lambda item: _fetch_indexes(src, *item), list(todo.items())):
        plan.plan_bytes += sum(len(v) for v in fetched.values() if v)
        plan.indexes.update(fetched)
        raws.update(fetched)
    for arr, shards in wanted:
        for shard, locals_ in sorted(shards.items()):
            key = arr.key(shard)
            index = arr.decode_index(key, raws[key])
            if index is None:
                continue
            have = partdir.pieces_in(plan.part, key)
            for local in sorted(locals_):
                offset, nbytes = (int(v) for v in index[local])
                if offset == 2**64 - 1:
                    continue  # not in the source either
                plan.pieces.append(Piece(arr, shard, local, offset, nbytes))
                if local in have and have[local][0] == nbytes:
                    plan.done[(key, local)] = have[local]


def fetch_merged(src: Source, merged: dict[Range, list[Range]], got, cancel=None) -> None:
    """Fetch merged requests (each `big` range of `merged` covering its contiguous pieces)
    and call `got(big, data)` once per merged request, when all of its bytes are in (the
    source hands over pieces one by one, as they arrive)."""
    owner = {r: big for big, pieces in merged.items() for r in pieces}
    parts: dict[Range, dict[Range, bytes]] = {}
    lock = threading.Lock()

    def each(r: Range, data) -> None:
        big = owner[r]
        with lock:
            have = parts.setdefault(big, {})
            have[r] = bytes(data)
            if len(have) < len(merged[big]):
                return
            del parts[big]
        got(big, b"".join(have[p] for p in merged[big]))

    src.fetch_many([list(pieces) for pieces in merged.values()], each, cancel)


def _fetch_indexes(src: Source, arr: PackArray, keys: list[str]) -> dict[str, bytes | None]:
    if arr.index_end:
        return dict(src.get_suffixes({key: arr.index_bytes for key in keys}))
    out: dict[str, bytes | None] = {}  # the index at the start of the shard (rare): one request each

    def got(r: Range, data: bytes) -> None:
        out[r.key] = bytes(data)

    for key in keys:
        out[key] = None
        try:
            src.fetch_many([[Range(key, 0, arr.index_bytes)]], got)
        except FileNotFoundError:
            continue
    return out


def _plan_wholes(plan: PackPlan) -> None:
    """Unsharded objects over the area; the small ones are fetched now, so their sizes are exact."""
    small = []
    for arr in plan.arrays:
        if arr.sharded or arr.rewrite is not None:
            continue
        for coords in sorted(arr.needed()):
            key = arr.key(coords)
            plan.wholes[key] = arr
            state = partdir.whole_in(plan.part, key)
            if state is not False:
                plan.whole_done[key] = state
            elif arr.raw_chunk_bytes <= WHOLE_IN_PLAN:
                small.append(key)
    src = plan.store.source
    for key, data in zip(small, TASK_POOL.map(lambda k: get_or_none(src, k), small)):
        plan.whole_data[key] = data
        plan.plan_bytes += len(data or b"")


def get_or_none(src: Source, key: str) -> bytes | None:
    try:
        return src.get(key)
    except FileNotFoundError:
        return None


def _probe(plan: PackPlan, cancel) -> None:
    """Throughput, measured on the first wave of chunk requests (kept for the run)."""
    todo = plan.todo()
    wave, size = [], 0
    for group in coalesce([p.range for p in todo], 0, MERGE_MAX):
        if wave and (size >= PROBE_BYTES or len(wave) >= plan.concurrency):
            break
        wave.append(group)
        size += group[-1].end - group[0].start
    if not wave:
        return
    merged = {Range(g[0].key, g[0].start, g[-1].end): g for g in wave}
    pieces = {(p.src_key, p.offset): p for p in todo}
    lock = threading.Lock()

    def got(big: Range, data: bytes) -> None:
        for r in merged[big]:
            p = pieces[(r.key, r.start)]
            with lock:
                plan.probe[(p.src_key, p.local)] = bytes(data[r.start - big.start: r.end - big.start])

    t0 = time.perf_counter()
    fetch_merged(plan.store.source, merged, got, cancel)
    elapsed = time.perf_counter() - t0
    plan.plan_bytes += size
    # the wave's time less one round trip; at least half of it, as a round trip measured on
    # a small object is noisy and a burst of parallel requests is faster than a long run
    plan.bandwidth = size / max(elapsed - plan.latency, elapsed / 2, 1e-4)


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "an unknown time"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
