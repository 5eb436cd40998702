"""Reading boxes of a Zarr v3 array the way the best clients do.

Under zarr-python's array API: shard indexes are fetched once (by suffix range) and cached
with their crc32c checked; only the inner chunks a box needs are fetched, as concurrent
range requests merged where they touch; decoding (zarr's codec chain, through numcodecs)
runs in threads while other downloads continue; decoded chunks live in a byte-bounded LRU
shared by every reader of a store, concurrent requests for the same chunk are made once,
and an optional disk cache keeps the raw bytes so an area seen once works offline.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .errors import Cancelled, ReadError
from .sources import Range, Source, coalesce

MISSING = np.uint64(2**64 - 1)
ChunkKey = tuple[str, tuple[int, ...]]


class ChunkLRU:
    """Decoded chunks, bounded by bytes, safe across threads; plus in-flight de-duplication."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[ChunkKey, np.ndarray] = OrderedDict()
        self._inflight: dict[ChunkKey, Future] = {}
        self.lock = threading.Lock()

    def get(self, key: ChunkKey) -> np.ndarray | None:
        with self.lock:
            arr = self._items.get(key)
            if arr is not None:
                self._items.move_to_end(key)
            return arr

    def put(self, key: ChunkKey, arr: np.ndarray) -> None:
        if arr.nbytes > self.max_bytes:
            return
        with self.lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._items[key] = arr
            self.bytes += arr.nbytes
            while self.bytes > self.max_bytes and self._items:
                _, evicted = self._items.popitem(last=False)
                self.bytes -= evicted.nbytes

    def claim(self, keys: Iterable[ChunkKey]) -> tuple[dict, list, dict]:
        """Split keys into (cached arrays, keys this caller must fetch, futures to wait on)."""
        cached, mine, waits = {}, [], {}
        with self.lock:
            for key in keys:
                arr = self._items.get(key)
                if arr is not None:
                    self._items.move_to_end(key)
                    cached[key] = arr
                elif key in self._inflight:
                    waits[key] = self._inflight[key]
                else:
                    self._inflight[key] = Future()
                    mine.append(key)
        return cached, mine, waits

    def settle(self, key: ChunkKey, arr: np.ndarray | None = None, error: BaseException | None = None,
               keep: bool = True) -> None:
        """Hand a fetched chunk to whoever waits for it; `keep` it in the LRU or not."""
        with self.lock:
            fut = self._inflight.pop(key, None)
        if arr is not None and keep:
            self.put(key, arr)
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

    def with_chunk_lru(self, max_bytes: int) -> "StoreCaches":
        """The same shard indexes and disk cache, but a private LRU of decoded chunks."""
        other = StoreCaches(ChunkLRU(max_bytes), self.disk)
        other.indexes, other.index_inflight, other.index_lock = self.indexes, self.index_inflight, self.index_lock
        return other


def crc32c(data: bytes) -> int:
    """CRC-32C as zarr's crc32c codec computes it (zarr 3.4 uses google-crc32c, zarr 3.0 the
    crc32c package; either is there with zarr)."""
    try:
        import google_crc32c

        return google_crc32c.value(bytes(data))
    except ImportError:
        from crc32c import crc32c as _crc

        return _crc(bytes(data))


def _numcodec(conf: dict):
    """numcodecs codec for a Zarr v3 bytes-to-bytes codec entry, or None if unknown."""
    import numcodecs

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
        if self.shard_shape:
            self.per_shard = tuple(s // c for s, c in zip(self.shard_shape, self.chunk_shape))
            self._index_bytes = 16 * int(np.prod(self.per_shard)) + (4 if self._index_crc else 0)
        self.dimension_names = tuple(meta.get("dimension_names") or ())

    def with_caches(self, caches: StoreCaches) -> "ArrayReader":
        import copy

        other = copy.copy(self)
        other.caches = caches
        return other

    # -- keys ---------------------------------------------------------------------------------
    def _object_key(self, coords: tuple[int, ...]) -> str:
        if self._v2_keys:
            return f"{self.path}/" + self._sep.join(map(str, coords))
        return f"{self.path}/c" + "".join(f"{self._sep}{c}" for c in coords)

    # -- shard index --------------------------------------------------------------------------
    def _indexes(self, shards: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray | None]:
        """Decoded shard indexes (None: shard missing), each fetched once per store: the
        missing ones in one concurrent batch, while concurrent callers wait for fetches in flight."""
        caches = self.caches
        result: dict[tuple[int, ...], np.ndarray | None] = {}
        mine: dict[str, tuple[int, ...]] = {}
        waits: dict[tuple[int, ...], Future] = {}
        with caches.index_lock:
            for shard in shards:
                key = self._object_key(shard)
                if key in caches.indexes:
                    result[shard] = caches.indexes[key]
                elif key in caches.index_inflight:
                    waits[shard] = caches.index_inflight[key]
                else:
                    caches.index_inflight[key] = Future()
                    mine[key] = shard
        if mine:
            error: BaseException | None = None
            try:
                raws = self._load_indexes(list(mine))
            except BaseException as exc:
                raws, error = {}, exc
            for key, shard in mine.items():
                fut = caches.index_inflight[key]
                try:
                    if error is not None:
                        raise error
                    index = self._decode_index(key, raws[key])
                except BaseException as exc:
                    with caches.index_lock:
                        caches.index_inflight.pop(key, None)
                    fut.set_exception(exc)
                    error = error or exc
                    continue
                if caches.disk is not None:
                    caches.disk.put("index:" + key, raws[key])
                with caches.index_lock:
                    caches.indexes[key] = index
                    caches.index_inflight.pop(key, None)
                fut.set_result(index)
                result[shard] = index
            if error is not None:
                raise error
        for shard, fut in waits.items():
            result[shard] = fut.result()
        return result

    def _load_indexes(self, keys: list[str]) -> dict[str, bytes]:
        """Raw index bytes (b"" for a missing shard): disk cache first, then one batch."""
        disk = self.caches.disk
        out: dict[str, bytes] = {}
        for key in keys:
            raw = disk.get("index:" + key) if disk else None
            if raw is not None:
                out[key] = raw
        todo = [k for k in keys if k not in out]
        if todo and self._index_end:
            for key, raw in self.source.get_suffixes(todo, self._index_bytes).items():
                out[key] = raw or b""
        elif todo:
            for key in todo:
                try:
                    out[key] = self.source.get(key)[: self._index_bytes]
                except FileNotFoundError:
                    out[key] = b""
        return out

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

    # -- decoding -----------------------------------------------------------------------------
    def _decode_chunk(self, data: bytes, where: str) -> np.ndarray:
        try:
            for codec in self._decoders:
                data = codec.decode(data)
            arr = np.frombuffer(data, dtype=self.dtype.newbyteorder(self._endian))
            return arr.reshape(self.chunk_shape)
        except Exception as exc:
            raise ReadError(f"{where}: cannot decode chunk ({type(exc).__name__}: {exc}); "
                            "the stored data is corrupt", "corrupt") from None

    # -- reading ------------------------------------------------------------------------------
    def chunk_range(self, box: tuple[tuple[int, int], ...]) -> list[tuple[int, ...]]:
        spans = [range(a // c, -(-b // c)) for (a, b), c in zip(box, self.chunk_shape)]
        return list(product(*spans))

    def read(self, box: tuple[tuple[int, int], ...], need: Callable[[tuple[int, ...]], bool] | None = None,
             cancel: Callable[[], bool] | None = None, keep: bool = True,
             select: tuple[int, list[int]] | None = None) -> np.ndarray:
        """The values in `box` ((start, stop) per axis, within the shape).

        `need(chunk_coords)` may say a chunk is not wanted: its pixels get the fill value
        and nothing is fetched for it. `keep=False` leaves fetched chunks out of the LRU
        (a streamed export reads each chunk once and must not fill memory). `select=(axis,
        indices)` keeps only those indices of an axis that is one chunk wide (the band axis),
        so the result holds only the bands asked for.
        """
        if select is not None and self.chunk_shape[select[0]] != self.shape[select[0]]:
            full = self.read(box, need, cancel, keep)  # band axis split in chunks: select after
            return np.take(full, [i - box[select[0]][0] for i in select[1]], axis=select[0])
        shape = [b - a for a, b in box]
        if select is not None:
            shape[select[0]] = len(select[1])
        out = np.full(shape, self.fill_value, dtype=self.dtype)
        if out.size == 0:
            return out
        if not self.fast:
            data = self._read_with_zarr(box)
            return data if select is None else np.take(data, select[1], axis=select[0])
        coords = [c for c in self.chunk_range(box) if need is None or need(c)]
        keys = [(self.path, c) for c in coords]
        cached, mine, waits = self.caches.chunks.claim(keys)

        def paste(key: ChunkKey, arr: np.ndarray | None) -> None:
            # Runs in the decode threads as chunks arrive: chunks fill disjoint parts of `out`.
            if arr is not None:
                self._paste(out, box, key[1], arr, select)

        for key, arr in cached.items():
            paste(key, arr)
        try:
            if mine:
                self._fetch(mine, cancel, keep, paste)
        except BaseException as exc:
            for key in mine:
                self.caches.chunks.settle(key, error=exc)
            raise
        for key, fut in waits.items():
            try:
                arr = fut.result()
            except Cancelled:  # the other reader gave up; this one still wants the chunk
                arr = self._fetch_one(key, cancel)
            if arr is not None:
                self._paste(out, box, key[1], arr, select)
        return out

    def _fetch_one(self, key: ChunkKey, cancel) -> np.ndarray | None:
        while True:
            cached, mine, waits = self.caches.chunks.claim([key])
            if cached:
                return cached[key]
            if mine:
                try:
                    return self._fetch(mine, cancel).get(key)
                except BaseException as exc:
                    self.caches.chunks.settle(key, error=exc)
                    raise
            try:
                return waits[key].result()
            except Cancelled:
                continue

    def _paste(self, out: np.ndarray, box, coords, arr: np.ndarray, select=None) -> None:
        src, dst = [], []
        for i, ((a, b), c, n) in enumerate(zip(box, coords, self.chunk_shape)):
            if select is not None and i == select[0]:
                src.append(select[1])
                dst.append(slice(None))
                continue
            lo, hi = max(a, c * n), min(b, (c + 1) * n)
            src.append(slice(lo - c * n, hi - c * n))
            dst.append(slice(lo - a, hi - a))
        if select is None:
            out[tuple(dst)] = arr[tuple(src)]
        else:  # one fancy index: take the selected indices first, then slice the rest
            ax = select[0]
            picked = np.take(arr, select[1], axis=ax)
            src[ax] = slice(None)
            out[tuple(dst)] = picked[tuple(src)]

    def _fetch(self, keys: list[ChunkKey], cancel, keep: bool = True,
               on_chunk: Callable[[ChunkKey, np.ndarray | None], None] | None = None
               ) -> dict[ChunkKey, np.ndarray | None]:
        """Fetch and decode chunks; each is handed to `on_chunk` and settled in the LRU as soon
        as it is decoded (in a decode thread), while other downloads go on."""
        results: dict[ChunkKey, np.ndarray | None] = {}
        ranges: dict[Range, ChunkKey] = {}
        disk = self.caches.disk
        if self.shard_shape:
            by_shard: dict[tuple[int, ...], list[ChunkKey]] = {}
            for key in keys:
                shard = tuple(c // p for c, p in zip(key[1], self.per_shard))
                by_shard.setdefault(shard, []).append(key)
            indexes = self._indexes(list(by_shard))
            for shard, skeys in by_shard.items():
                index = indexes[shard]
                obj = self._object_key(shard)
                for key in skeys:
                    local = tuple(c % p for c, p in zip(key[1], self.per_shard))
                    if index is None:
                        offset, nbytes = MISSING, MISSING
                    else:
                        offset, nbytes = index[local]
                    if offset == MISSING:
                        results[key] = None
                        self.caches.chunks.settle(key, None)
                        continue
                    ranges[Range(obj, int(offset), int(offset + nbytes))] = key
        else:
            for key in keys:
                ranges[Range(self._object_key(key[1]), -1, -1)] = key

        def done(r: Range, data: bytes) -> None:
            key = ranges[r]
            arr = self._decode_chunk(data, f"{r.key}@{r.start}")
            if on_chunk is not None:
                on_chunk(key, arr)
            if keep or on_chunk is None:
                results[key] = arr
            self.caches.chunks.settle(key, arr, keep=keep)

        todo = []
        for r, key in ranges.items():
            raw = disk.get(f"{r.key}@{r.start}+{r.size}") if disk else None
            if raw is not None:
                done(r, raw)
            else:
                todo.append(r)
        if self.shard_shape:
            self._fetch_ranges(todo, done, cancel)
        else:
            for r in todo:
                self._fetch_whole(r, done, results, ranges)
        return results

    def _fetch_ranges(self, todo: list[Range], done, cancel) -> None:
        disk = self.caches.disk
        groups = coalesce(todo, max_gap=0)
        merged = {Range(g[0].key, g[0].start, g[-1].end): g for g in groups}

        def on_merged(big: Range, data: bytes) -> None:
            view = memoryview(data)  # slices without copying the merged response
            for r in merged[big]:
                piece = view[r.start - big.start: r.end - big.start]
                if disk is not None:
                    disk.put(f"{r.key}@{r.start}+{r.size}", piece)
                done(r, piece)

        self.source.fetch_many(list(merged), on_merged, cancel)

    def _fetch_whole(self, r: Range, done, results, ranges) -> None:
        try:
            data = self.source.get(r.key)
        except FileNotFoundError:
            key = ranges[r]
            results[key] = None
            self.caches.chunks.settle(key, None)
            return
        if self.caches.disk is not None:
            self.caches.disk.put(f"{r.key}@{r.start}+{r.size}", data)
        done(r, data)

    def _read_with_zarr(self, box) -> np.ndarray:
        """Fallback for codec chains the fast path does not know: zarr-python's array API."""
        if self.zarr_fallback is None:
            raise ReadError(f"{self.path}: unsupported codecs {[c['name'] for c in self.meta['codecs']]}")
        arr = self.zarr_fallback(self.path)
        return np.asarray(arr[tuple(slice(a, b) for a, b in box)])

    def read_all(self) -> np.ndarray:
        return self.read(tuple((0, n) for n in self.shape))


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


__all__ = ["ArrayReader", "ChunkLRU", "DiskCache", "StoreCaches", "Cancelled"]
