"""Running a pack: fetch what is missing into OUT.part, write the store, check it, rename."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..arrays import crc32c
from ..errors import Cancelled, ReadError
from ..sources import TASK_POOL, Range, StoreOptions, coalesce
from ..storeref import StoreRef
from . import partdir
from .layout import MISSING, PackArray, PackError, Piece
from .plan import MERGE_MAX, PackPlan, fetch_merged, get_or_none, plan_pack

CHECK_SLAB = 64 << 20  # bytes zarr-python decodes at once when checking the pack


@dataclass(frozen=True)
class PackProgress:
    stage: str  # "fetch", "assemble", "check", "done"
    done_bytes: int
    total_bytes: int
    eta_seconds: float | None  # time left, from the speed so far (or the plan's estimate)
    message: str = ""

    @property
    def fraction(self) -> float:
        return 1.0 if self.total_bytes <= 0 else min(1.0, self.done_bytes / self.total_bytes)


class _Meter:
    """Progress in bytes with a time estimate, reported from whichever thread fetched
    (at most five times a second)."""

    def __init__(self, plan: PackPlan, progress: Callable[[PackProgress], None] | None) -> None:
        self.progress = progress
        self.plan = plan
        self.total = plan.total_bytes
        self.done = self.start = plan.plan_bytes
        self.t0 = time.perf_counter()
        self.lock = threading.Lock()
        self.last = 0.0

    def add(self, nbytes: int) -> None:
        with self.lock:
            self.done += nbytes
            now = time.perf_counter()
            if self.progress is None or now - self.last < 0.2:
                return
            self.last = now
            done, total = self.done, max(self.total, self.done)
        moved, elapsed = done - self.start, now - self.t0
        eta = (total - done) * elapsed / moved if moved > 0 and elapsed > 0.2 else self.plan.seconds()
        self.progress(PackProgress("fetch", done, total, eta))

    def say(self, stage: str, message: str) -> None:
        if self.progress is not None:
            with self.lock:
                done, total = self.done, max(self.total, self.done)
            self.progress(PackProgress(stage, done, total, 0.0 if stage == "done" else None, message))


def pack(source: "StoreRef | str | Path", areas, years: Sequence[int], out: "str | Path",
         depth: int | None = None, options: StoreOptions | None = None,
         progress: Callable[[PackProgress], None] | None = None,
         cancel: Callable[[], bool] | None = None) -> dict:
    """plan_pack() then run_pack(): a whole pack in one call (the estimate is the first
    progress message)."""
    plan = plan_pack(source, areas, years, out, depth, options, cancel=cancel)
    return run_pack(plan, progress, cancel)


def run_pack(plan: PackPlan, progress: Callable[[PackProgress], None] | None = None,
             cancel: Callable[[], bool] | None = None) -> dict:
    """Fetch what is missing into OUT.part, write the store, check every chunk, rename to OUT.

    Interrupted (a network failure, cancel), OUT.part stays and a new plan_pack() + run_pack()
    of the same pack resumes it. Returns a summary (path, bytes fetched, chunks checked,
    size on disk, seconds)."""
    t_start = time.perf_counter()
    if plan.out.exists():
        raise PackError(f"{plan.out} exists; choose another output folder or remove it")
    part, src = plan.part, plan.store.source
    before = src.stats.snapshot()
    meter = _Meter(plan, progress)
    meter.say("fetch", plan.describe())
    manifest = part / "_pack" / "manifest.json"
    if not manifest.exists():
        partdir.write_atomic(manifest, json.dumps(partdir.manifest(
            plan.root_sha, plan.areas, plan.years, plan.depth, plan.ref.public_url)).encode())
    _keep_planned(plan)
    _fetch_pieces(plan, meter, cancel)
    _fetch_wholes(plan, meter, cancel)
    meter.say("assemble", "writing shards and metadata")
    written = _assemble(plan, cancel)
    meter.say("check", "checking every chunk")
    checked = _verify(plan, written, cancel)
    shutil.rmtree(part / "_pack")
    if plan.out.exists():
        raise PackError(f"{plan.out} appeared while packing; the finished pack is left in {part}")
    os.replace(part, plan.out)
    after = src.stats.snapshot()
    summary = {"path": str(plan.out), "zones": list(plan.zones), "years": plan.years, "depth": plan.depth,
               "fetched_bytes": after["bytes"] - before["bytes"] + plan.plan_bytes,
               "run_requests": after["requests"] - before["requests"], "chunks_checked": checked,
               "bytes_on_disk": sum(p.stat().st_size for p in plan.out.rglob("*") if p.is_file()),
               "seconds": round(time.perf_counter() - t_start, 2), "resumed_bytes": plan.resumed_bytes,
               "skipped": plan.skipped}
    meter.say("done", f"wrote {plan.out}")
    return summary


def _keep_planned(plan: PackPlan) -> None:
    """Write what planning fetched: shard indexes, small objects and the probe's chunks."""
    for key, raw in plan.indexes.items():
        partdir.write_atomic(partdir.index_path(plan.part, key, bool(raw)), raw or b"")
    plan.indexes.clear()
    sizes = {(p.src_key, p.local): p.nbytes for p in plan.pieces}
    for (key, local), data in list(plan.probe.items()):
        crc = crc32c(data)
        partdir.write_atomic(partdir.piece_path(plan.part, key, local, len(data), crc), data)
        plan.done[(key, local)] = (sizes[(key, local)], crc)
    plan.probe.clear()
    for key, data in list(plan.whole_data.items()):
        _store_whole(plan, key, data)
    plan.whole_data.clear()


def _store_whole(plan: PackPlan, key: str, data: bytes | None) -> None:
    if data is None:
        partdir.write_atomic(partdir.whole_path(plan.part, key), b"")
        plan.whole_done[key] = None
        return
    crc = crc32c(data)
    partdir.write_atomic(partdir.whole_path(plan.part, key, len(data), crc), data)
    plan.whole_done[key] = (len(data), crc)


def _fetch_pieces(plan: PackPlan, meter: _Meter, cancel) -> None:
    """The inner chunks still missing, as merged range requests; each chunk is stored as it
    arrives, with the crc32c of the bytes received."""
    todo = plan.todo()
    if not todo:
        return
    merged = {Range(g[0].key, g[0].start, g[-1].end): g for g in coalesce([p.range for p in todo], 0, MERGE_MAX)}
    pieces = {(p.src_key, p.offset): p for p in todo}
    gate = _Gate()

    def got(big: Range, data: bytes) -> None:
        if not gate.enter():
            return  # arrived after the fetch failed: OUT.part stays as it was reported
        try:
            view = memoryview(data)
            for r in merged[big]:
                p = pieces[(r.key, r.start)]
                chunk = view[r.start - big.start: r.end - big.start]
                if len(chunk) != p.nbytes:
                    raise ReadError(f"{r.key}: chunk {p.local} came with {len(chunk)} bytes; the shard index "
                                    f"says {p.nbytes}", "short")
                crc = crc32c(chunk)
                partdir.write_atomic(partdir.piece_path(plan.part, p.src_key, p.local, p.nbytes, crc), chunk)
                gate.record(plan.done, (p.src_key, p.local), (p.nbytes, crc))
        finally:
            gate.leave()
        meter.add(big.size)

    try:
        fetch_merged(plan.store.source, merged, got, cancel)
    except BaseException:
        gate.close()  # OUT.part no longer changes once the failure is reported
        raise


class _Gate:
    """Lets a failed fetch wait for the chunk writes already under way, and turns away the
    ones that arrive after it (a source may still run callbacks after it has raised)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.running = 0
        self.closed = False

    def enter(self) -> bool:
        with self.cond:
            if self.closed:
                return False
            self.running += 1
            return True

    def leave(self) -> None:
        with self.cond:
            self.running -= 1
            self.cond.notify_all()

    def record(self, done: dict, key, value) -> None:
        with self.cond:
            done[key] = value

    def close(self, timeout: float = 60.0) -> None:
        with self.cond:
            self.closed = True
            self.cond.wait_for(lambda: self.running == 0, timeout)


def _fetch_wholes(plan: PackPlan, meter: _Meter, cancel) -> None:
    """Unsharded objects too large to fetch while planning."""
    gate = _Gate()

    def one(key: str) -> None:
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        data = get_or_none(plan.store.source, key)
        if not gate.enter():
            return
        try:
            _store_whole(plan, key, data)
        finally:
            gate.leave()
        meter.add(len(data or b""))

    futures = [TASK_POOL.submit(one, k) for k in plan.todo_wholes()]
    try:
        for fut in futures:
            fut.result()
    except BaseException:
        for fut in futures:
            fut.cancel()
        gate.close()
        raise


# -- writing the store ---------------------------------------------------------------------------
def _assemble(plan: PackPlan, cancel) -> dict:
    """Metadata, rewritten coordinates, shards and unsharded objects, into OUT.part.

    Returns {key in the pack: (array, [(local, offset, nbytes, crc), ...] or (nbytes, crc))}."""
    part = plan.part
    _write_metadata(plan)
    _write_rewrites(part, [a for a in plan.arrays if a.rewrite is not None])
    written: dict = {}
    by_shard: dict[tuple[PackArray, tuple[int, ...]], list[Piece]] = {}
    for p in plan.pieces:
        by_shard.setdefault((p.array, p.shard), []).append(p)
    for (arr, shard), pieces in by_shard.items():
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        out_key = arr.out_key(shard)
        written[out_key] = (arr, _write_shard(plan, arr, out_key, pieces))
    for key, arr in plan.wholes.items():
        state = plan.whole_done.get(key)
        if state is None:
            continue
        src = partdir.whole_path(part, key, *state)
        data = src.read_bytes()
        if crc32c(data) != state[1]:
            src.unlink()
            raise PackError(f"{key} was damaged on disk in {part.name}; run the pack again to fetch it again")
        out_key = arr.out_key(arr.coords_of(key))
        partdir.write_atomic(part / out_key, data)
        written[out_key] = (arr, state)
    return written


def _write_metadata(plan: PackPlan) -> None:
    """zarr.json of every node, and the root's with consolidated metadata, `geoemb:depths`
    as packed and where the pack came from (`tessera:pack`)."""
    part = plan.part
    entries: dict[str, dict] = {}
    for key, meta in plan.groups.items():
        entries[key] = meta
        body = {k: v for k, v in meta.items() if k != "consolidated_metadata"}
        partdir.write_atomic(part / key / "zarr.json", json.dumps(body, indent=2).encode())
    for arr in plan.arrays:
        entries[arr.path] = arr.out_meta()
        partdir.write_atomic(part / arr.path / "zarr.json", json.dumps(entries[arr.path], indent=2).encode())
    root = json.loads(json.dumps(plan.root))
    attrs = root.setdefault("attributes", {})
    if plan.depth is not None:
        attrs["geoemb:depths"] = [d for d in attrs.get("geoemb:depths") or []
                                  if isinstance(d, dict) and int(d.get("dimensions", -1)) == plan.depth]
    attrs["tessera:pack"] = {
        "source": plan.ref.public_url, "areas": [list(a) for a in plan.areas], "years": plan.years,
        "depth": plan.depth, "zones": plan.zones, "tool": "tessera-qgis pack",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    root["consolidated_metadata"] = {"kind": "inline", "must_understand": False,
                                     "metadata": dict(sorted(entries.items()))}
    partdir.write_atomic(part / "zarr.json", json.dumps(root, indent=2).encode())


def _write_rewrites(part: Path, arrays: list[PackArray]) -> None:
    """Coordinates written anew (the `time` of a subset of years), encoded by zarr-python."""
    if not arrays:
        return
    import zarr  # QGIS start-up cost: zarr is loaded only when a pack is written

    for arr in arrays:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z = zarr.open_array(store=str(part), path=arr.path, mode="r+")
            z[...] = arr.rewrite.astype(z.dtype)


def _write_shard(plan: PackPlan, arr: PackArray, out_key: str, pieces: list[Piece]) -> list:
    """One shard file, streamed: the chunks in the source's order, the index (2^64-1 where a
    chunk is not in the pack) and its crc32c, as the sharding codec lays them out."""
    pieces = sorted(pieces, key=lambda p: p.offset)
    index = np.full((arr.n_local, 2), MISSING, dtype="<u8")
    offset = 0 if arr.index_end else arr.index_bytes
    layout = []
    for p in pieces:
        nbytes, crc = plan.done[(p.src_key, p.local)]
        index[p.local] = (offset, nbytes)
        layout.append((p.local, offset, nbytes, crc))
        offset += nbytes
    body = index.tobytes()
    index_raw = body + (crc32c(body).to_bytes(4, "little") if arr.index_crc else b"")
    path = plan.part / out_key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        if not arr.index_end:
            f.write(index_raw)
        for p, (_, _, nbytes, crc) in zip(pieces, layout):
            src = partdir.piece_path(plan.part, p.src_key, p.local, nbytes, crc)
            data = src.read_bytes()
            if len(data) != nbytes or crc32c(data) != crc:
                src.unlink(missing_ok=True)
                raise PackError(f"a stored chunk of {p.src_key} was damaged on disk in {plan.part.name}; "
                                "run the pack again to fetch it again")
            f.write(data)
        if arr.index_end:
            f.write(index_raw)
    os.replace(tmp, path)
    return layout


# -- checking ------------------------------------------------------------------------------------
def _verify(plan: PackPlan, written: dict, cancel) -> int:
    """Every chunk of the pack checked: shard indexes (crc32c) list exactly the chunks packed,
    at the offsets written; each chunk has the length of the source's index entry and the
    crc32c of the bytes received; then zarr-python decodes every array over the area.
    Returns the number of chunks (and unsharded objects) checked."""
    checked = 0
    for out_key, (arr, layout) in written.items():
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        path = plan.part / out_key
        if isinstance(layout, tuple):
            data = path.read_bytes()  # an unsharded object: one chunk
            if len(data) != layout[0] or crc32c(data) != layout[1]:
                raise PackError(f"{out_key} in the pack differs from what was fetched")
            checked += 1
            continue
        with open(path, "rb") as f:  # a shard: read chunk by chunk (a full one is 2 GiB)
            f.seek(-arr.index_bytes if arr.index_end else 0, os.SEEK_END if arr.index_end else os.SEEK_SET)
            index = arr.decode_index(out_key, f.read(arr.index_bytes))
            expect = {local: (offset, nbytes, crc) for local, offset, nbytes, crc in layout}
            if {i for i in range(arr.n_local) if int(index[i, 0]) != MISSING} != set(expect):
                raise PackError(f"{out_key}: the shard index lists other chunks than were packed")
            for local, (offset, nbytes, crc) in sorted(expect.items(), key=lambda kv: kv[1][0]):
                f.seek(offset)
                if (int(index[local, 0]), int(index[local, 1])) != (offset, nbytes) or crc32c(f.read(nbytes)) != crc:
                    raise PackError(f"{out_key}: chunk {local} differs from what was fetched")
                checked += 1
    _decode_check(plan, cancel)
    return checked


def _decode_check(plan: PackPlan, cancel) -> None:
    """zarr-python reads every array of the pack over the area: each chunk must decode."""
    import zarr  # QGIS start-up cost: zarr is loaded only when a pack is written

    for arr in plan.arrays:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            z = zarr.open_array(store=str(plan.part), path=arr.path, mode="r")
            for box in _check_boxes(arr, z.shape):
                if cancel is not None and cancel():
                    raise Cancelled("cancelled")
                try:
                    z[box]
                except Exception as exc:
                    raise PackError(f"{arr.path} in the pack cannot be decoded ({type(exc).__name__}: {exc})") \
                        from None


def _check_boxes(arr: PackArray, shape) -> list[tuple[slice, ...]]:
    """Boxes covering the packed windows, split along y to decode at most CHECK_SLAB at once."""
    out = []
    for window in (arr.windows or [None]):
        box = [window[0] if window is not None and d == "y" else window[1] if window is not None and d == "x"
               else (0, n) for d, n in zip(arr.dims, shape)]
        if any(b <= a for a, b in box):
            continue
        if "y" not in arr.dims:
            out.append(tuple(slice(a, b) for a, b in box))
            continue
        yi = arr.dims.index("y")
        row_bytes = arr.itemsize * int(np.prod([b - a for i, (a, b) in enumerate(box) if i != yi]))
        step = max(arr.inner[yi], CHECK_SLAB // max(1, row_bytes) // arr.inner[yi] * arr.inner[yi])
        for y0 in range(box[yi][0], box[yi][1], step):
            sub = list(box)
            sub[yi] = (y0, min(box[yi][1], y0 + step))
            out.append(tuple(slice(a, b) for a, b in sub))
    return out
