"""Reading boxes of a Zarr v3 array the way the best clients do.

Under zarr-python's array API: shard indexes are fetched once (by suffix range) and cached
with their crc32c checked; only the inner chunks a box needs are fetched, as concurrent
range requests merged where they touch; decoding (zarr's codec chain, through numcodecs)
runs in threads while other downloads continue; decoded chunks live in a byte-bounded LRU
shared by every reader of a store, concurrent requests for the same chunk are made once,
and an optional disk cache keeps the raw bytes so an area seen once works offline.
"""
from __future__ import annotations

import copy
import hashlib
import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable, Container, Iterable, Sequence

import numcodecs
import numpy as np

from .errors import Cancelled, ReadError
from .sources import WHOLE, Batch, Range, Source

MISSING = np.uint64(2**64 - 1)
ChunkKey = tuple[str, tuple[int, ...]]


class ChunkLRU:
    """Decoded chunks, bounded by bytes, safe across threads; plus in-flight de-duplication."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[ChunkKey, np.ndarray] = OrderedDict()
        self._inflight: dict[ChunkKey, Future | None] = {}  # None: claimed, nobody else waits
        self.lock = threading.Lock()

    def get(self, key: ChunkKey) -> np.ndarray | None:
        with self.lock:
            arr = self._items.get(key)
            if arr is not None:
                self._items.move_to_end(key)
            return arr

    def has(self, key: ChunkKey) -> bool:
        """Whether a chunk is in memory now (no lock, no use counted: a hint)."""
        return key in self._items

    def put(self, key: ChunkKey, arr: np.ndarray) -> None:
        with self.lock:
            self._put(key, arr)

    def _put(self, key: ChunkKey, arr: np.ndarray) -> None:  # the lock held
        if arr.nbytes > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
        self._items[key] = arr
        self.bytes += arr.nbytes
        while self.bytes > self.max_bytes and self._items:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= evicted.nbytes

    def claim(self, keys: Iterable[ChunkKey]) -> tuple[dict, list, dict]:
        """Split keys into (cached arrays, keys this caller must fetch, futures to wait on).
        A claimed chunk gets a Future only when a second reader wants it too."""
        cached, mine, waits = {}, [], {}
        items, inflight = self._items, self._inflight
        with self.lock:
            for key in keys:
                arr = items.get(key)
                if arr is not None:
                    items.move_to_end(key)
                    cached[key] = arr
                elif key in inflight:
                    fut = inflight[key]
                    if fut is None:
                        fut = inflight[key] = Future()
                    waits[key] = fut
                else:
                    inflight[key] = None
                    mine.append(key)
        return cached, mine, waits

    def release(self, key: ChunkKey) -> None:
        """Give up a claim without fetching: whoever waits for the chunk fetches it itself."""
        with self.lock:
            fut = self._inflight.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_exception(Cancelled("not fetched by the reader that claimed it"))

    def settle(self, key: ChunkKey, arr: np.ndarray | None = None, error: BaseException | None = None,
               keep: bool = True) -> None:
        """Hand a fetched chunk to whoever waits for it; `keep` it in the LRU or not."""
        with self.lock:  # cached before it stops being in flight: nobody fetches it twice
            if arr is not None and keep:
                self._put(key, arr)
            fut = self._inflight.pop(key, None)
        if fut is not None and not fut.done():
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(arr)


class DiskCache:
    """Raw (still compressed) objects and byte ranges of one store, on disk, within a size
    limit: past it, the least recently used files are removed (whole cache folder, all stores)."""

    def __init__(self, folder: Path, limit_bytes: int = 2 << 30, root: Path | None = None) -> None:
        self.folder = folder
        self.limit = limit_bytes
        self.root = root or folder
        self._written = 0
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        h = hashlib.sha1(name.encode()).hexdigest()
        return self.folder / h[:2] / h

    def get(self, name: str) -> bytes | None:
        path = self._path(name)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        try:
            os.utime(path)  # recently used: pruned last
        except OSError:
            pass
        return data

    def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(bytes(data))
            os.replace(tmp, path)
        except OSError:
            return  # a full or read-only cache must never break reading
        with self._lock:
            self._written += len(data)
            check = self._written > self.limit // 20
            if check:
                self._written = 0
        if check:
            self.prune()

    def prune(self) -> int:
        """Remove least recently used files until the cache is within its limit; bytes freed."""
        files = []
        for dirpath, _, names in os.walk(self.root):
            for n in names:
                p = Path(dirpath) / n
                try:
                    st = p.stat()
                except OSError:
                    continue
                files.append((st.st_mtime, st.st_size, p))
        total = sum(f[1] for f in files)
        freed = 0
        for _, size, p in sorted(files):
            if total - freed <= self.limit:
                break
            if p.name == "zarr.json":
                continue  # store metadata: what lets a store open offline
            try:
                p.unlink()
                freed += size
            except OSError:
                pass
        return freed


@dataclass
class StoreCaches:
    """Caches shared by every reader (and every QGIS provider clone) of one opened store."""

    chunks: ChunkLRU
    disk: DiskCache | None = None

    def __post_init__(self) -> None:
        self.indexes: dict[str, np.ndarray | None] = {}
        self.index_inflight: dict[str, Future] = {}
        self.index_lock = threading.Lock()
        self.warned: set[str] = set()  # damaged objects already named in a warning

    def with_chunk_lru(self, max_bytes: int) -> "StoreCaches":
        """The same shard indexes and disk cache, but a private LRU of decoded chunks."""
        other = StoreCaches(ChunkLRU(max_bytes), self.disk)
        other.indexes, other.index_inflight, other.index_lock = self.indexes, self.index_inflight, self.index_lock
        other.warned = self.warned
        return other


try:  # zarr 3.4 brings google-crc32c, zarr 3.0 the crc32c package: whichever is installed
    from google_crc32c import value as _crc32c
except ImportError:
    from crc32c import crc32c as _crc32c


def crc32c(data: bytes) -> int:
    """CRC-32C as zarr's crc32c codec computes it."""
    return _crc32c(bytes(data))


def _numcodec(conf: dict):
    """numcodecs codec for a Zarr v3 bytes-to-bytes codec entry, or None if unknown."""
    name = conf["name"]
    cfg = conf.get("configuration", {}) or {}
    if name == "blosc":
        shuffle = {"noshuffle": numcodecs.Blosc.NOSHUFFLE, "shuffle": numcodecs.Blosc.SHUFFLE,
                   "bitshuffle": numcodecs.Blosc.BITSHUFFLE}.get(cfg.get("shuffle", "noshuffle"), 0)
        return numcodecs.Blosc(cname=cfg.get("cname", "zstd"), clevel=cfg.get("clevel", 5), shuffle=shuffle,
                               blocksize=cfg.get("blocksize", 0))
    if name == "zstd":
        return numcodecs.Zstd(level=cfg.get("level", 0))
    if name == "gzip":
        return numcodecs.GZip(level=cfg.get("level", 5))
    return None


class ArrayReader:
    """Reads boxes of one Zarr v3 array from its metadata (a zarr.json dict)."""

    def __init__(self, source: Source, path: str, meta: dict, caches: StoreCaches,
                 zarr_fallback: Callable[[str], object] | None = None) -> None:
        self.source = source
        self.zarr_fallback = zarr_fallback
        self.path = path
        self.meta = meta
        self.caches = caches
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(_dtype_name(meta["data_type"]))
        self.fill_value = _fill(meta.get("fill_value"), self.dtype)
        grid = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        enc = meta.get("chunk_key_encoding", {"name": "default"})
        self._v2_keys = enc.get("name") == "v2"
        self._sep = (enc.get("configuration") or {}).get("separator", "." if self._v2_keys else "/")
        codecs = meta["codecs"]
        if codecs and codecs[0]["name"] == "sharding_indexed":
            cfg = codecs[0]["configuration"]
            self.shard_shape = grid
            self.chunk_shape = tuple(cfg["chunk_shape"])
            self._index_end = cfg.get("index_location", "end") == "end"
            index_codecs = [c["name"] for c in cfg.get("index_codecs", [])]
            self._index_crc = "crc32c" in index_codecs
            inner = cfg["codecs"]
        else:
            self.shard_shape = None
            self.chunk_shape = grid
            inner = codecs
        self._decoders, self._endian = _parse_chain(inner)
        self.fast = self._decoders is not None
        self._chunk_bytes = int(np.prod(self.chunk_shape)) * self.dtype.itemsize
        # the one codec that can decode straight into a given buffer (blosc), if that is the chain
        self._into = self._decoders[0] if self.fast and len(self._decoders) == 1 and \
            isinstance(self._decoders[0], numcodecs.Blosc) else None
        if self.shard_shape:
            self.per_shard = tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape))
            self._index_bytes = 16 * int(np.prod(self.per_shard)) + (4 if self._index_crc else 0)
        self.dimension_names = tuple(meta.get("dimension_names") or ())
        # applied to each decoded chunk once, before it is cached (the scales: invalid -> NaN)
        self.after_decode: Callable[[np.ndarray], np.ndarray] | None = None

    def with_caches(self, caches: StoreCaches) -> "ArrayReader":
        other = copy.copy(self)
        other.caches = caches
        return other

    # -- keys ---------------------------------------------------------------------------------
    def _object_key(self, coords: tuple[int, ...]) -> str:
        if self._v2_keys:
            return f"{self.path}/" + self._sep.join(map(str, coords))
        return f"{self.path}/c" + "".join(f"{self._sep}{c}" for c in coords)

    def shard_of(self, coords: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(c // p for c, p in zip(coords, self.per_shard))

    def shards_of_box(self, box) -> list[tuple[int, ...]]:
        """The shards a box ((start, stop) per axis) touches; [] for an array without shards."""
        if not self.shard_shape:
            return []
        return list(product(*[range(a // s, -(-b // s)) for (a, b), s in zip(box, self.shard_shape)]))

    def describe_chunk(self, coords: tuple[int, ...]) -> str:
        """Where a chunk is stored, for messages: its object, and its place in the shard."""
        if not self.shard_shape:
            return self._object_key(coords)
        shard = self.shard_of(coords)
        local = tuple(c % p for c, p in zip(coords, self.per_shard))
        index = self.caches.indexes.get(self._object_key(shard), False)
        if index is None:
            return f"{self._object_key(shard)} (the whole shard)"
        return f"{self._object_key(shard)} (inner chunk {list(local)})"

    # -- shard index --------------------------------------------------------------------------
    def _indexes(self, shards: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray | None]:
        got = load_indexes([(self, s) for s in shards])
        return {s: got[(self.path, s)] for s in shards}

    def _decode_index(self, key: str, raw: bytes) -> np.ndarray | None:
        if not raw:
            return None  # missing shard: every chunk is fill
        if len(raw) != self._index_bytes:
            raise ReadError(f"{key}: shard index is {len(raw)} bytes, expected {self._index_bytes}", "corrupt")
        body = raw[:-4] if self._index_crc else raw
        if self._index_crc:
            if int.from_bytes(raw[-4:], "little") != crc32c(body):
                raise ReadError(f"{key}: shard index checksum mismatch (corrupt or truncated shard)", "corrupt")
        return np.frombuffer(body, dtype="<u8").reshape(self.per_shard + (2,))

    def prefetch_indexes(self, shards: list[tuple[int, ...]]) -> None:
        """Fetch missing shard indexes concurrently (one round trip for all)."""
        if self.shard_shape:
            self._indexes(shards)

    def missing_in_box(self, box) -> list[tuple[int, ...]]:
        """Chunks of a box that the (cached) shard indexes say are not stored (a shard whose
        index is not loaded yet is left out: unknown). Per shard, vectorised: a zoomed-out
        view's box holds tens of thousands of chunks."""
        if not self.shard_shape:
            return []
        out: list[tuple[int, ...]] = []
        spans = [(a // c, -(-b // c)) for (a, b), c in zip(box, self.chunk_shape)]
        for shard in self.shards_of_box(box):
            index = self.caches.indexes.get(self._object_key(shard), False)
            if index is False:
                continue
            lo = [max(a, s * p) for (a, _), s, p in zip(spans, shard, self.per_shard)]
            hi = [min(b, (s + 1) * p) for (_, b), s, p in zip(spans, shard, self.per_shard)]
            if index is None:
                out += list(product(*[range(a, b) for a, b in zip(lo, hi)]))
                continue
            sub = index[tuple(slice(a - s * p, b - s * p) for a, b, s, p in zip(lo, hi, shard, self.per_shard))]
            for hit in np.argwhere(sub[..., 0] == MISSING):
                out.append(tuple(int(h) + a for h, a in zip(hit, lo)))
        return out

    # -- decoding -----------------------------------------------------------------------------
    def _decode_chunk(self, data: bytes, where: str, subset: tuple[int, tuple[int, ...]] | None = None
                      ) -> np.ndarray:
        """A chunk's array from its stored bytes; with `subset=(axis, indices)` only those
        indices of that axis, decoded through a buffer each thread reuses (no fresh memory
        for the whole chunk)."""
        try:
            scratch = _scratch(self._chunk_bytes) if subset is not None and self._into is not None else None
            if scratch is not None:
                self._into.decode(data, out=scratch)
                data = scratch
            else:
                for codec in self._decoders:
                    data = codec.decode(data)
            arr = np.frombuffer(data, dtype=self.dtype.newbyteorder(self._endian)).reshape(self.chunk_shape)
            if subset is not None:
                arr = np.take(arr, subset[1], axis=subset[0])
        except Exception as exc:
            raise ReadError(f"{where}: cannot decode chunk ({type(exc).__name__}: {exc}); "
                            "the stored data is corrupt", "corrupt") from None
        return self.after_decode(arr) if self.after_decode is not None else arr

    # -- reading ------------------------------------------------------------------------------
    def chunks_in_box(self, box: tuple[tuple[int, int], ...]) -> int:
        """How many chunks chunk_range(box) lists (without listing them)."""
        return math.prod(max(0, -(-b // c) - a // c) for (a, b), c in zip(box, self.chunk_shape))

    def chunk_range(self, box: tuple[tuple[int, int], ...]) -> list[tuple[int, ...]]:
        spans = [range(a // c, -(-b // c)) for (a, b), c in zip(box, self.chunk_shape)]
        return list(product(*spans))

    def chunk_box(self, coords: tuple[int, ...], box) -> tuple[tuple[int, int], ...]:
        """The part of a box ((start, stop) per axis) inside a chunk."""
        return tuple((max(a, c * n), min(b, (c + 1) * n)) for c, n, (a, b) in zip(coords, self.chunk_shape, box))

    def paster(self, box, out: np.ndarray, select: tuple[int, Sequence[int]] | None = None,
               squeeze: int | None = None, chunk_shape: tuple[int, ...] | None = None
               ) -> Callable[[tuple[int, ...], np.ndarray], None]:
        """paste(coords, chunk): copy the part of a decoded chunk inside `box` into `out`.

        `out` has the box's shape, except that the `squeeze` axis (one index wide) is left
        out and the `select=(axis, indices)` axis holds only those indices. Chunks fill
        disjoint parts of `out`, so decode threads may paste at the same time. The source
        and destination of every chunk position along every axis are worked out once here:
        a warm window is thousands of pastes. `chunk_shape`: that of the arrays pasted, where
        they are not whole chunks (see requests())."""
        n = chunk_shape or self.chunk_shape
        sel_axis = select[0] if select is not None else None
        sel = np.asarray(select[1], dtype=np.int64) if select is not None else None
        los, tables, fancy = [], [], False
        for i, (ni, (a, b)) in enumerate(zip(n, box)):
            lo = a // ni
            los.append(lo)
            table = []
            for c in range(lo, -(-b // ni)):
                base = c * ni
                if i == squeeze:
                    table.append((a - base, None))
                elif i == sel_axis:
                    hit = np.nonzero((sel >= base) & (sel < base + ni))[0]
                    src = sel[hit] - base
                    if len(hit) == 0:
                        table.append(None)
                    elif np.array_equal(src, np.arange(src[0], src[0] + len(src))) and \
                            np.array_equal(hit, np.arange(hit[0], hit[0] + len(hit))):
                        table.append((slice(int(src[0]), int(src[0]) + len(src)),
                                      slice(int(hit[0]), int(hit[0]) + len(hit))))
                    else:
                        fancy = True
                        table.append((src, hit))
                else:
                    lo_, hi_ = max(a, base), min(b, base + ni)
                    table.append((slice(lo_ - base, hi_ - base), slice(lo_ - a, hi_ - a)))
            tables.append(table)
        axes = range(len(n))
        keep_axes = [i for i in axes if i != squeeze]

        if not fancy and squeeze == 0 and len(n) in (3, 4) and all(None not in t for t in tables):
            # The usual layouts, (time, band, y, x) and (time, y, x), spelled out: a warm
            # 1000 x 1000 px window is about 2000 pastes, and this halves their cost.
            t0 = [p[0] for p in tables[0]]
            if len(n) == 4:
                (l0, l1, l2, l3), (_, t1, t2, t3) = los, tables

                def paste4(c: tuple[int, ...], arr: np.ndarray) -> None:
                    b, y, x = t1[c[1] - l1], t2[c[2] - l2], t3[c[3] - l3]
                    out[b[1], y[1], x[1]] = arr[t0[c[0] - l0], b[0], y[0], x[0]]

                def row4(head: tuple[int, ...]) -> tuple[tuple, np.ndarray]:
                    b, y = t1[head[1] - l1], t2[head[2] - l2]
                    return (t0[head[0] - l0], b[0], y[0]), out[b[1], y[1]]

                paste4.many = _row_paste(row4, t3, l3)
                return paste4
            (l0, l1, l2), (_, t1, t2) = los, tables

            def paste3(c: tuple[int, ...], arr: np.ndarray) -> None:
                y, x = t1[c[1] - l1], t2[c[2] - l2]
                out[y[1], x[1]] = arr[t0[c[0] - l0], y[0], x[0]]

            def row3(head: tuple[int, ...]) -> tuple[tuple, np.ndarray]:
                y = t1[head[1] - l1]
                return (t0[head[0] - l0], y[0]), out[y[1]]

            paste3.many = _row_paste(row3, t2, l2)
            return paste3

        if not fancy:  # basic indexing only: the squeezed axis is an int in the source index
            def paste(coords: tuple[int, ...], arr: np.ndarray) -> None:
                parts = [tables[i][coords[i] - los[i]] for i in axes]
                if None in parts:
                    return
                out[tuple([parts[i][1] for i in keep_axes])] = arr[tuple([p[0] for p in parts])]

            return paste

        def paste_fancy(coords: tuple[int, ...], arr: np.ndarray) -> None:
            parts = [tables[i][coords[i] - los[i]] for i in axes]
            if None in parts:
                return
            if squeeze is not None:  # a view without that axis first: one fancy index at most
                arr = arr[(slice(None),) * squeeze + (parts[squeeze][0],)]
            out[tuple([parts[i][1] for i in keep_axes])] = arr[tuple([parts[i][0] for i in keep_axes])]

        return paste_fancy

    def chunks_for_select(self, box, select: tuple[int, Sequence[int]] | None) -> list[tuple[int, ...]]:
        coords = self.chunk_range(box)
        if select is None or self.chunk_shape[select[0]] == self.shape[select[0]]:
            return coords
        ax, n = select[0], self.chunk_shape[select[0]]
        wanted = {i // n for i in select[1]}
        return [c for c in coords if c[ax] in wanted]

    def read(self, box: tuple[tuple[int, int], ...], need: Callable[[tuple[int, ...]], bool] | None = None,
             cancel: Callable[[], bool] | None = None, keep: bool = True,
             select: tuple[int, list[int]] | None = None) -> np.ndarray:
        """The values in `box` ((start, stop) per axis, within the shape).

        `need(chunk_coords)` may say a chunk is not wanted: its pixels get the fill value
        and nothing is fetched for it. `keep=False` leaves fetched chunks out of the LRU
        (a streamed export reads each chunk once and must not fill memory). `select=(axis,
        indices)` keeps only those indices of that axis, so the result holds only the bands
        asked for.
        """
        shape = [b - a for a, b in box]
        if select is not None:
            shape[select[0]] = len(select[1])
        out = np.full(shape, self.fill_value, dtype=self.dtype)
        if out.size == 0:
            return out
        if not self.fast:
            data = self._read_with_zarr(box)
            return data if select is None else np.take(data, [i - box[select[0]][0] for i in select[1]],
                                                       axis=select[0])
        requests = self.requests(box, out, select, None, keep)
        if need is not None:
            for req in requests:
                req.coords = [c for c in req.coords if need(c)]
        read_wave(requests, cancel)
        return out

    def requests(self, box, out: np.ndarray, select: tuple[int, Sequence[int]] | None = None,
                 squeeze: int | None = None, keep: bool = True,
                 need: Callable[[tuple[int, ...]], bool] | None = None) -> list["ChunkRequest"]:
        """The chunk requests that paste `box` into `out` (see paster()).

        Where `select` keeps some of the indices of an axis that each chunk holds whole (a
        few bands of 128-band chunks), each chunk fetched is decoded through a reused buffer
        and only those indices are kept, and cached under a key of their own: a cold 3-band
        window then takes 3/128 of the fresh memory (on these machines faulting in a fresh
        128 KiB chunk adds about 40 % to its decoding), and its chunks hold 3/128 of the cache.
        Chunks already in memory whole are pasted from there."""
        coords = self.chunks_for_select(box, select)
        split = self.subset_split(coords, select) if select is not None and select[0] != squeeze else None
        if split is None:
            return [ChunkRequest(self, coords, self.paster(box, out, select, squeeze), keep, need)]
        axis = select[0]
        kept, coords, whole = split
        position = {b: j for j, b in enumerate(kept)}
        shape = tuple(len(kept) if i == axis else n for i, n in enumerate(self.chunk_shape))
        sub_box = tuple((0, len(kept)) if i == axis else ab for i, ab in enumerate(box))
        sub_paste = self.paster(sub_box, out, (axis, [position[int(b)] for b in select[1]]), squeeze, shape)
        out_requests = [ChunkRequest(self, coords, sub_paste, keep, need, subset=(axis, kept))]
        if whole:
            out_requests.append(ChunkRequest(self, whole, self.paster(box, out, select, squeeze), keep, need))
        return out_requests

    def subset_split(self, coords: list[tuple[int, ...]], select: tuple[int, Sequence[int]]
                     ) -> tuple[tuple[int, ...], list[tuple[int, ...]], list[tuple[int, ...]]] | None:
        """For `select=(axis, indices)`, a few of the indices of an axis each chunk holds
        whole: (the kept indices, sorted; the chunks to fetch keeping only those, see
        ChunkRequest.subset; the chunks in memory whole, which serve any). None where a
        subset does not apply (chunks split that axis, or every index is wanted)."""
        axis = select[0]
        kept = tuple(sorted({int(i) for i in select[1]}))
        if self.chunk_shape[axis] != self.shape[axis] or len(kept) == self.shape[axis]:
            return None
        lru = self.caches.chunks
        whole = [c for c in coords if lru.has((self.path, c))]
        held = set(whole)
        return kept, [c for c in coords if c not in held], whole

    def _read_with_zarr(self, box) -> np.ndarray:
        """Fallback for codec chains the fast path does not know: zarr-python's array API."""
        if self.zarr_fallback is None:
            raise ReadError(f"{self.path}: unsupported codecs {[c['name'] for c in self.meta['codecs']]}")
        arr = self.zarr_fallback(self.path)
        return np.asarray(arr[tuple(slice(a, b) for a, b in box)])

    def read_all(self) -> np.ndarray:
        return self.read(tuple((0, n) for n in self.shape))


# ---------------------------------------------------------------------------------------------
# Waves: the shard indexes of every array at once, then every chunk of every array at once
# ---------------------------------------------------------------------------------------------

MERGE_MAX_BYTES = 8 << 20  # adjacent chunks merged into one request up to this size
# Chunks this close are fetched with the bytes between them: small chunks (scales, about
# 4 KB) sit among other chunks of their shard (Morton order), and a window's scales then
# cost about 20 requests instead of 90, for 0.4 % more bytes.
MERGE_GAP_BYTES = 16 << 10
WARM_CONNECTIONS = 8  # about as many as the index wave opens (one per shard index)
# A cold wave's chunk requests go out together once its shard indexes are in; the source
# opens connections for them while the indexes are on their way (Source.get_suffixes'
# `then`). How many: about one request per this many bytes of (raw) chunks. A 1000 x 1000
# px window's 1024 chunks of 128 KB made 107 requests (runs of about ten chunks), its
# 1024 scales chunks of 4 KB 20 (small chunks merge across gaps).
RAW_BYTES_PER_REQUEST = 1 << 20


def expected_requests(chunks: Iterable[tuple[ArrayReader, int]]) -> int:
    """About how many requests fetching `n` chunks of each reader takes (see above)."""
    return sum(-(-n * rd._chunk_bytes // RAW_BYTES_PER_REQUEST) for rd, n in chunks if n)


def _row_paste(row_of, xtable: list, xlo: int):
    """many(items): paste many (coords, chunk) at once, the usual case of a window whose
    chunks are all in memory (thousands of them). Chunks side by side along the last axis
    (consecutive in `items`, as a window's coords come) are copied straight into their
    row of the output with one np.concatenate: one copy, no temporary. `row_of(head)`
    gives, for the coords before the last axis, the index into a chunk before its last
    axis and the output's row (a view). (It must not refer to the paste it is hung on:
    that cycle would keep the output array alive after the read, until Python's cycle
    collector ran.)"""
    def flush(head, run: list) -> None:
        src, dst = row_of(head)
        first, last = xtable[run[0][0] - xlo], xtable[run[-1][0] - xlo]
        np.concatenate([arr[src + (xtable[x - xlo][0],)] for x, arr in run], axis=-1,
                       out=dst[..., first[1].start:last[1].stop])

    def many(items) -> None:
        head, run = None, []
        for c, arr in items:
            h, x = c[:-1], c[-1]
            if h != head or x != run[-1][0] + 1:
                if run:
                    flush(head, run)
                head, run = h, []
            run.append((x, arr))
        if run:
            flush(head, run)
    return many


@dataclass(eq=False)
class ChunkRequest:
    """One array's part of a wave of reads: the chunks wanted and what becomes of each.

    `on_chunk(coords, array)` receives each decoded chunk (from the cache at once, or in a
    decode thread as its bytes arrive). `need(coords)`, asked only for chunks that are not
    cached, may say a chunk is not worth fetching. After the wave, `missing` lists the
    chunks the store does not hold (their part of the output keeps its fill value) and
    `cached` those that came from the memory cache (answers `in` and bool())."""

    reader: ArrayReader
    coords: list[tuple[int, ...]]
    on_chunk: Callable[[tuple[int, ...], np.ndarray], None]
    keep: bool = True
    need: Callable[[tuple[int, ...]], bool] | None = None
    missing: list[tuple[int, ...]] = field(default_factory=list)
    cached: Container = field(default_factory=frozenset)  # see _CachedCoords
    # on_chunk of the chunks in memory runs in the decode threads while the rest is fetched
    # (for costly on_chunk; never for an array whose pasted values a `need` reads)
    defer_cached: bool = False
    # (axis, indices): on_chunk gets only these indices of each chunk (see ArrayReader.requests)
    subset: tuple[int, tuple[int, ...]] | None = None

    @property
    def cache_path(self) -> str:
        """The path in this request's chunk keys: the array's, or one of its own for a subset."""
        if self.subset is None:
            return self.reader.path
        return f"{self.reader.path}#{self.subset[0]}:{','.join(map(str, self.subset[1]))}"


class _CachedCoords:
    """The coords of the chunks a wave took from memory, as a set would answer `in` and
    bool() (a warm window has thousands: no set is built)."""

    __slots__ = ("path", "keys")

    def __init__(self, path: str, keys: dict) -> None:
        self.path, self.keys = path, keys

    def __contains__(self, coords) -> bool:
        return (self.path, coords) in self.keys

    def __bool__(self) -> bool:
        return bool(self.keys)


def read_wave(requests: list[ChunkRequest], cancel: Callable[[], bool] | None = None,
              indexes_too: Iterable[tuple[ArrayReader, tuple[int, ...]]] = (),
              prepare: Callable[[list[tuple["ChunkRequest", list[tuple[int, ...]]]]], None] | None = None
              ) -> None:
    """Read the chunks of several arrays of one store in two dependent round trips at most:
    every missing shard index (of these requests, and `indexes_too`) in one batch, then
    every chunk not in memory in one batch of concurrent range requests, decoded and
    handed on as each response arrives. Concurrent waves share chunks in flight.

    `prepare(pending)` runs once every chunk is claimed and before any is handed on, with
    each request's chunks that are not in memory (those in memory are all handed on: a
    caller need fill its output with fill values only where the others lie)."""
    if prepare is not None and not all(r.reader.fast for r in requests):  # (of none: all of it)
        prepare([(r, list(r.coords)) for r in requests])
        prepare = None
    requests = [r for r in requests if r.reader.fast]
    if not requests:
        if indexes_too:
            load_indexes(list(indexes_too))
        return
    lru = requests[0].reader.caches.chunks
    claims: list[tuple[ChunkRequest, dict, list[ChunkKey], dict]] = []
    claimed: list[tuple[ChunkRequest, list[ChunkKey]]] = []
    waits: list[tuple[ChunkRequest, ChunkKey, Future]] = []
    deferred: list[tuple[ChunkRequest, dict]] = []
    try:
        for req in requests:
            path = req.cache_path
            claims.append((req, *lru.claim([(path, c) for c in req.coords])))
        if prepare is not None:
            prepare([(req, [k[1] for k in mine] + [k[1] for k in waiting]) for req, _, mine, waiting in claims])
        for i, (req, cached, mine, waiting) in enumerate(claims):
            on_chunk = req.on_chunk
            if req.defer_cached and cached:
                deferred.append((req, cached))
            elif len(cached) > 8 and hasattr(on_chunk, "many"):
                on_chunk.many([(key[1], arr) for key, arr in cached.items()])
            else:
                for key, arr in cached.items():
                    on_chunk(key[1], arr)
            req.cached = _CachedCoords(req.cache_path, cached)
            if req.need is not None:
                skipped = [k for k in mine if not req.need(k[1])]
                for key in skipped:
                    lru.release(key)
                if skipped:
                    drop = set(skipped)
                    mine = [k for k in mine if k not in drop]
                    claims[i] = (req, cached, mine, waiting)
            claimed.append((req, mine))
            waits += [(req, key, fut) for key, fut in waiting.items()]
    except BaseException as exc:
        for _, _, mine, _ in claims:
            for key in mine:
                lru.settle(key, error=exc)
        raise
    batch = None
    if deferred:  # in the decode threads: beside the fetch, and on every core
        batch = Batch()
        for req, cached in deferred:
            for key, arr in cached.items():
                batch.add(req.on_chunk, key[1], arr)
    try:
        _fetch_claimed(claimed, cancel, list(indexes_too))
    except BaseException:
        if batch is not None:  # the deferred work still writes into the caller's arrays
            batch.wait_quietly()
        raise
    if batch is not None:
        batch.wait()
    for req, key, fut in waits:
        try:
            arr = fut.result()
        except Cancelled:  # the other reader gave up (or skipped it); this one still wants it
            again = ChunkRequest(req.reader, [key[1]], req.on_chunk, req.keep, subset=req.subset)
            read_wave([again], cancel)
            req.missing += again.missing
            continue
        if arr is None:
            req.missing.append(key[1])
        else:
            req.on_chunk(key[1], arr)


def _fetch_claimed(claimed: list[tuple[ChunkRequest, list[ChunkKey]]], cancel,
                   indexes_too: list[tuple[ArrayReader, tuple[int, ...]]]) -> None:
    """Fetch and decode the chunks this caller claimed; settle each in the LRU."""
    if not any(keys for _, keys in claimed):
        if indexes_too:
            load_indexes(indexes_too)
        return
    lru = claimed[0][0].reader.caches.chunks
    pending = {key for _, keys in claimed for key in keys}
    lock = threading.Lock()

    def settle(key: ChunkKey, arr: np.ndarray | None, keep: bool = True) -> None:
        with lock:
            if key not in pending:
                return
            pending.discard(key)
        lru.settle(key, arr, keep=keep)

    try:
        _fetch_and_decode(claimed, cancel, indexes_too, settle)
    except BaseException as exc:
        with lock:
            left = list(pending)
            pending.clear()
        for key in left:
            lru.settle(key, error=exc)
        raise


def _fetch_and_decode(claimed, cancel, indexes_too, settle) -> None:
    wanted_indexes = list(indexes_too)
    shards_of: list[dict[tuple[int, ...], list[ChunkKey]]] = []
    for req, keys in claimed:
        by_shard: dict[tuple[int, ...], list[ChunkKey]] = {}
        if req.reader.shard_shape:
            per = req.reader.per_shard
            for key in keys:
                by_shard.setdefault(tuple([c // p for c, p in zip(key[1], per)]), []).append(key)
            wanted_indexes += [(req.reader, s) for s in by_shard]
        shards_of.append(by_shard)
    then = expected_requests((req.reader, len(keys)) for req, keys in claimed)
    indexes = load_indexes(wanted_indexes, cancel, then) if wanted_indexes else {}
    source = claimed[0][0].reader.source
    disk = claimed[0][0].reader.caches.disk
    targets: dict[Range, list[tuple[ChunkRequest, ChunkKey]]] = {}
    groups: list[list[Range]] = []
    for (req, keys), by_shard in zip(claimed, shards_of):
        rd = req.reader
        if not rd.shard_shape:
            for key in keys:
                r = Range(rd._object_key(key[1]), WHOLE, WHOLE)
                targets[r] = [(req, key)]
                groups.append([r])
            continue
        for shard, skeys in by_shard.items():
            index = indexes[(rd.path, shard)]
            if index is None:
                for key in skeys:
                    req.missing.append(key[1])
                    settle(key, None)
                continue
            groups += _runs(rd, index, skeys, req, settle, rd._object_key(shard), targets)

    def decoded(r: Range, data) -> None:
        for req, key in targets[r]:
            if data is None:  # an object that is not there (arrays without shards)
                req.missing.append(key[1])
                settle(key, None)
                continue
            arr = req.reader._decode_chunk(data, f"{r.key}@{r.start}", req.subset)
            req.on_chunk(key[1], arr)
            settle(key, arr, keep=req.keep)

    def done(r: Range, data) -> None:
        if disk is not None and data is not None:
            disk.put(_disk_name(r), data)
        decoded(r, data)

    if disk is not None:  # what the disk cache holds is decoded here; the rest is fetched
        fetch = []
        for group in groups:
            left = []
            for r in group:
                raw = disk.get(_disk_name(r))
                if raw is None:
                    left.append(r)
                else:
                    decoded(r, raw)
            fetch += _split_adjacent(left)
        groups = fetch
    if not groups:
        return
    # The largest requests first: they take longest to arrive, the small ones fit in after.
    # But the very first few go out on the connections the index wave left open, and their
    # responses start at once: give those the smallest requests, so that megabytes arriving
    # on them do not hold up the opening of connections for the rest of the wave.
    groups.sort(key=lambda g: g[0].start - g[-1].end)
    first = min(WARM_CONNECTIONS, len(groups) // 4)
    if first:
        groups = groups[-first:] + groups[:-first]
    source.fetch_many(groups, done, cancel)


_SCRATCH = threading.local()


def _scratch(nbytes: int) -> np.ndarray:
    """This thread's reusable buffer of `nbytes` (a decode thread decodes one chunk at a time)."""
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = {}
    buf = buffers.get(nbytes)
    if buf is None:
        buf = buffers[nbytes] = np.empty(nbytes, dtype=np.uint8)
    return buf


def _disk_name(r: Range) -> str:
    return f"{r.key}@{r.start}+{r.size}"


def _split_adjacent(ranges: list[Range]) -> list[list[Range]]:
    """Split a group's remaining ranges where they are further apart than MERGE_GAP_BYTES."""
    out: list[list[Range]] = []
    for r in ranges:
        if out and 0 <= r.start - out[-1][-1].end <= MERGE_GAP_BYTES:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def _runs(rd: ArrayReader, index: np.ndarray, keys: list[ChunkKey], req: ChunkRequest, settle, obj: str,
          targets: dict[Range, list]) -> list[list[Range]]:
    """The chunks of one shard (object `obj`) as runs of byte ranges at most MERGE_GAP_BYTES
    apart, each run at most MERGE_MAX_BYTES (a single larger chunk on its own); each range's
    (request, key) goes into `targets` (two index entries pointing at the same bytes: one
    range, fetched once); missing chunks are reported and settled. Vectorised where it can
    be: a window has thousands of chunks."""
    local = np.array([k[1] for k in keys], dtype=np.int64) % np.array(rd.per_shard, dtype=np.int64)
    flat = np.ravel_multi_index(tuple(local.T), rd.per_shard)
    entries = index.reshape(-1, 2)[flat]
    missing = entries[:, 0] == MISSING
    for i in np.nonzero(missing)[0]:
        req.missing.append(keys[i][1])
        settle(keys[i], None)
    present = np.nonzero(~missing)[0]
    if len(present) == 0:
        return []
    starts = entries[present, 0].astype(np.int64)
    ends = starts + entries[present, 1].astype(np.int64)
    order = np.argsort(starts, kind="stable")
    present, starts, ends = present[order], starts[order], ends[order]
    gap = starts[1:] - ends[:-1]
    apart = np.r_[True, (gap < 0) | (gap > MERGE_GAP_BYTES)].tolist()
    runs: list[list[Range]] = []
    run: list[Range] = []
    run_start = 0
    for i, a, b, first in zip(present.tolist(), starts.tolist(), ends.tolist(), apart):
        r = Range(obj, a, b)
        hit = targets.get(r)
        if hit is not None:
            hit.append((req, keys[i]))
            continue
        targets[r] = [(req, keys[i])]
        if run and (first or b - run_start > MERGE_MAX_BYTES):
            runs.append(run)
            run = []
        if not run:
            run_start = a
        run.append(r)
    if run:
        runs.append(run)
    return runs


def load_indexes(wanted: list[tuple[ArrayReader, tuple[int, ...]]], cancel: Callable[[], bool] | None = None,
                 then: int = 0) -> dict[tuple[str, tuple[int, ...]], np.ndarray | None]:
    """Decoded shard indexes (None: shard missing) of several arrays of one store, keyed by
    (array path, shard). Each is fetched once per store: the missing ones in one concurrent
    batch, while concurrent callers wait for fetches already in flight. A caller waiting for
    fetches in flight (those start_indexes began) stops waiting when `cancel` says so; the
    fetches go on, for whoever else waits and for the next read. `then`: about how many
    chunk requests follow (see expected_requests)."""
    result: dict[tuple[str, tuple[int, ...]], np.ndarray | None] = {}
    if not wanted:
        return result
    caches = wanted[0][0].caches
    waits: dict[tuple[str, tuple[int, ...]], Future] = {}
    mine = _claim_indexes(wanted, result, waits)
    if mine:
        error = _settle_indexes(caches, mine, result, then)
        if error is not None:
            raise error
    for k, fut in waits.items():
        while cancel is not None and not fut.done():
            futures_wait([fut], timeout=INDEX_CANCEL_POLL)
            if not fut.done() and cancel():
                raise Cancelled("cancelled")
        result[k] = fut.result()
    return result


INDEX_CANCEL_POLL = 0.05  # s: how often a reader waiting for shard indexes asks its cancel


INDEX_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tessera-index")


def start_indexes(wanted: list[tuple[ArrayReader, tuple[int, ...]]], then: int = 0) -> None:
    """Start fetching the shard indexes of `wanted` that are neither in memory nor on their
    way, in the background; load_indexes() waits for them. A read calls this first thing,
    so that the round trip runs while it plans and allocates the rest (its own pool: the
    fetch never waits for other work, so a reader waiting for it cannot starve it). `then`:
    about how many chunk requests follow (see expected_requests)."""
    if not wanted:
        return
    mine = _claim_indexes(wanted, {}, {})
    if mine:  # its errors reach whoever waits, through the indexes' futures
        INDEX_POOL.submit(_settle_indexes, wanted[0][0].caches, mine, {}, then)


def _claim_indexes(wanted, result: dict, waits: dict) -> dict[str, tuple[ArrayReader, tuple[int, ...]]]:
    """Sort `wanted` into indexes in memory (into `result`), on their way (their futures
    into `waits`) and the ones this caller fetches (returned, each with a future others
    can wait on)."""
    caches = wanted[0][0].caches
    mine: dict[str, tuple[ArrayReader, tuple[int, ...]]] = {}
    with caches.index_lock:
        for reader, shard in wanted:
            key = reader._object_key(shard)
            if key in caches.indexes:
                result[(reader.path, shard)] = caches.indexes[key]
            elif key in caches.index_inflight:
                waits[(reader.path, shard)] = caches.index_inflight[key]
            elif key not in mine:
                caches.index_inflight[key] = Future()
                mine[key] = (reader, shard)
    return mine


def _settle_indexes(caches, mine: dict[str, tuple[ArrayReader, tuple[int, ...]]], result: dict,
                    then: int = 0) -> BaseException | None:
    """Fetch and decode claimed indexes, keep them, settle their futures; the first error."""
    error: BaseException | None = None
    from_disk: set[str] = set()
    try:
        raws, from_disk = _load_raw_indexes(mine, then)
    except BaseException as exc:
        raws, error = {}, exc
    for key, (reader, shard) in mine.items():
        fut = caches.index_inflight[key]
        try:
            if error is not None:
                raise error
            index = reader._decode_index(key, raws[key])
        except BaseException as exc:
            with caches.index_lock:
                caches.index_inflight.pop(key, None)
            fut.set_exception(exc)
            error = error or exc
            continue
        if caches.disk is not None and key not in from_disk:
            caches.disk.put("index:" + key, raws[key])
        with caches.index_lock:
            caches.indexes[key] = index
            caches.index_inflight.pop(key, None)
        fut.set_result(index)
        result[(reader.path, shard)] = index
    return error


def _load_raw_indexes(mine: dict[str, tuple[ArrayReader, tuple[int, ...]]], then: int = 0
                      ) -> tuple[dict[str, bytes], set[str]]:
    """Raw index bytes (b"" for a missing shard), and which came from the disk cache: disk
    cache first, then one batch of suffix requests."""
    reader0 = next(iter(mine.values()))[0]
    disk = reader0.caches.disk
    out: dict[str, bytes] = {}
    for key in mine:
        raw = disk.get("index:" + key) if disk else None
        if raw is not None:
            out[key] = raw
    from_disk = set(out)
    suffixes = {k: r._index_bytes for k, (r, _) in mine.items() if k not in out and r._index_end}
    if suffixes:
        for key, raw in reader0.source.get_suffixes(suffixes, then).items():
            out[key] = raw or b""
    for key, (reader, _) in mine.items():
        if key not in out:  # index at the start of the shard
            try:
                out[key] = reader.source.get(key)[: reader._index_bytes]
            except FileNotFoundError:
                out[key] = b""
    return out, from_disk


def _parse_chain(codecs: list[dict]):
    """(bytes-to-bytes decoders in decode order, byte order) or (None, None) if unsupported."""
    if not codecs or codecs[0]["name"] != "bytes":
        return None, None
    endian = (codecs[0].get("configuration") or {}).get("endian", "little")
    decoders = []
    for conf in codecs[1:]:
        if conf["name"] == "crc32c":
            return None, None
        codec = _numcodec(conf)
        if codec is None:
            return None, None
        decoders.append(codec)
    return list(reversed(decoders)), "<" if endian == "little" else ">"


def _dtype_name(name) -> str:
    if not isinstance(name, str):
        raise ReadError(f"unsupported data type {name!r}")
    return {"bool": "bool"}.get(name, name)


def _fill(value, dtype: np.dtype):
    if value is None:
        return 0
    if isinstance(value, str):
        return {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}.get(value, 0)
    return dtype.type(value)


__all__ = ["ArrayReader", "ChunkLRU", "ChunkRequest", "DiskCache", "StoreCaches", "Cancelled", "load_indexes",
           "read_wave"]
