"""Exports as tasks: one Cloud-Optimised GeoTIFF tile per task, tied by a VRT.

The same export code (`geotiff.write`) runs per tile, either in local threads or on a Dask
cluster (dask.distributed, optional). Tiles follow the store's shards where the output is in
the zone's own grid, so each task reads each shard index once. Workers open the store
themselves (no data passes through the client) and write their own tiles into a shared
folder; a tile is written under a temporary name and renamed when complete, under a name
fixed by the plan, so a retried task (a lost worker) replaces rather than duplicates. The
output appears only when every task has succeeded; a cancel or a failure removes the tiles.

Secrets (S3 keys, proxy passwords, credentials in the URL) reach the workers through a
worker plugin registered for the export, never through the task graph.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import Cancelled, ExportError, TesseraError
from ..region import ZonePart
from ..sources import StoreOptions
from ..store import open_store
from ..storeref import public_url
from ..gdal_io import gdal_module
from .geotiff import UMASK, class_style, cog_options, describe, remove, write
from .products import products
from .request import CLASS_KINDS, EXPORT_CHUNK_CACHE, Progress, blocks

INSTALL_HINT = ('a Dask cluster export needs the optional packages dask and distributed in this Python '
                '(the same versions as on the cluster): python -m pip install "dask[distributed]"')
LOCAL_TILE_THREADS = 2
CONNECT_TIMEOUT = 15.0  # seconds to reach a Dask scheduler


@dataclass(frozen=True)
class Tile:
    """One task: a window of one output grid, written to `name` in the tiles folder."""

    plan: int  # index into Prepared.plans
    rows: tuple[int, int]  # within the output grid
    cols: tuple[int, int]
    name: str  # file name of the tile's first output (".tif"); other outputs add their suffix

    def grid(self, grid: tuple) -> tuple:
        crs, (a, b, c, d, e, f), _, _, native = grid
        (r0, r1), (c0, c1) = self.rows, self.cols
        sub_native = None
        if native is not None:  # (zone name, rows, cols) in the zone's array: rebuilt on the worker
            sub_native = (native.zone.name, (native.rows[0] + r0, native.rows[0] + r1),
                          (native.cols[0] + c0, native.cols[0] + c1))
        return (crs, (a, b, c + a * c0, d, e, f + e * r0), c1 - c0, r1 - r0, sub_native)


def plan_tiles(prep, tile: int | None = None) -> list[Tile]:
    """Chunk-aligned tasks for a prepared export: shard-aligned in a zone's own grid."""
    tiles: list[Tile] = []
    for i, (target, grid) in enumerate(prep.plans):
        _, _, width, height, native = grid
        size = tile or _shard_size(native) or 4096
        size = max(prep.req.block, size - size % prep.req.block) if size >= prep.req.block else prep.req.block
        r_edges = _edges(native.rows[0] if native else 0, height, size)
        c_edges = _edges(native.cols[0] if native else 0, width, size)
        for r0, r1 in zip(r_edges, r_edges[1:]):
            for c0, c1 in zip(c_edges, c_edges[1:]):
                tiles.append(Tile(i, (r0, r1), (c0, c1), f"{target.stem}_r{r0:07d}_c{c0:07d}.tif"))
    return tiles


def _shard_size(native) -> int | None:
    if native is None:
        return None
    zone = native.zone
    arr = zone.embeddings
    shape = arr.shard_shape or arr.chunk_shape
    return int(min(shape[zone.emb_axes.index("y")], shape[zone.emb_axes.index("x")]))


def _edges(origin: int, length: int, size: int) -> list[int]:
    """Cut [0, length) at multiples of `size` in the array's own coordinates (origin + i)."""
    edges = [0]
    nxt = (origin // size + 1) * size - origin
    while nxt < length:
        edges.append(nxt)
        nxt += size
    edges.append(length)
    return edges


# -- the task, as run in a thread or on a Dask worker --------------------------------------------
@dataclass(frozen=True)
class StoreSpec:
    """How a worker opens the store: the URL and options without their secrets."""

    url: str
    options: StoreOptions
    token: str  # names the secrets registered on the workers for this export


_SECRETS: dict[str, dict] = {}
_STORES: dict[tuple, object] = {}
_STORES_LOCK = threading.Lock()


def _secret_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(StoreOptions) if not f.repr]


def split_secrets(url: str, options: StoreOptions, token: str) -> tuple[StoreSpec, dict]:
    secrets = {name: getattr(options, name) for name in _secret_fields() if getattr(options, name) is not None}
    public = dataclasses.replace(options, **{name: None for name in secrets}, cache_dir=None)
    if public_url(url) != url:
        secrets["url"] = url
    return StoreSpec(public_url(url), public, token), secrets


def _worker_store(spec: StoreSpec):
    """The store opened on this worker (once per process and export)."""
    key = (spec.url, repr(spec.options), spec.token)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            secrets = dict(_SECRETS.get(spec.token, {}))
            url = secrets.pop("url", spec.url)
            options = dataclasses.replace(spec.options, memory_cache_bytes=EXPORT_CHUNK_CACHE, **secrets)
            store = _STORES[key] = open_store(url, options)
            while len(_STORES) > 8:
                _STORES.pop(next(iter(_STORES)))
        return store


def run_tile(store_or_spec, req, bands, pca, grid: tuple, folder: str, name: str,
             cancel: Callable[[], bool] | None = None,
             progress: Callable[[float], None] | None = None) -> list[str]:
    """Write one tile (each of the export's outputs) into `folder`; returns the file names.
    Idempotent: a tile already complete (renamed into place) is not written again.
    `progress(fraction)` after each block of the tile."""
    if not Path(folder).is_dir():
        raise ExportError(f"the tiles folder {folder} cannot be reached from {socket.gethostname()}: a cluster "
                          "export writes into the output's folder, which the workers and this computer must "
                          "share (the same path on a shared file system)")
    store = _worker_store(store_or_spec) if isinstance(store_or_spec, StoreSpec) else store_or_spec
    crs, transform, width, height, native = grid
    if native is not None:
        zone_name, rows, cols = native
        native = ZonePart(store.zones[zone_name], rows, cols)
    grid = (crs, transform, width, height, native)
    target = Path(folder) / name
    outputs, _ = products(store, req, bands, pca)
    names = [target.name if not o.suffix else f"{target.stem}{o.suffix}.tif" for o in outputs]
    if all((target.parent / n).exists() for n in names):
        return names
    tile_req = dataclasses.replace(req, cog=True)
    prog = Progress(len(list(blocks(grid, req.block))), progress, cancel)
    temps: list[Path] = []
    try:
        for tmp, final in write(store, tile_req, grid, bands, pca, target, prog, temps, overviews=False):
            prog.check()
            os.replace(tmp, final)
        return names
    finally:
        for tmp in temps:
            if tmp.exists():
                remove(tmp)


# -- the client side ----------------------------------------------------------------------------
def export_tiles(prep, progress: Callable[[float], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> list[Path]:
    """Run a prepared export as tile tasks (local threads, or Dask when `req.dask` is set).

    An output ending in .vrt becomes a VRT plus a folder `<name>.tiles` of COG tiles; any
    other output (.tif) is mosaicked from the tiles into one GeoTIFF (COG with `req.cog`)."""
    req = prep.req
    out = Path(req.out)
    tiles = plan_tiles(prep, req.tile)
    as_vrt = out.suffix.lower() == ".vrt"
    token = uuid.uuid4().hex
    work = Path(tempfile.mkdtemp(prefix=f".{out.stem}.tiles.", suffix=".part", dir=out.parent))
    os.chmod(work, 0o755)
    share = 1.0 if as_vrt else 0.8
    fractions: dict[str, float] = {}  # tile name -> how much of it is written
    shown = [0.0]
    lock = threading.Lock()

    def tile_progress(name: str, frac: float) -> None:
        """Record a tile's progress (from any thread); reported by report_progress()."""
        with lock:
            fractions[name] = max(fractions.get(name, 0.0), frac)

    def report_progress() -> None:
        with lock:
            value = share * sum(fractions.values()) / max(len(tiles), 1)
        if progress is not None and value > shown[0]:
            shown[0] = value
            progress(value)

    def tile_done(name: str) -> None:
        tile_progress(name, 1.0)
        report_progress()

    temps: list[Path] = []
    try:
        if req.dask:
            _run_dask(prep, tiles, work, token, tile_progress, report_progress, tile_done, cancel)
        else:
            _run_local(prep, tiles, work, tile_progress, report_progress, tile_done, cancel)
        for leftover in work.glob("*.part"):  # attempts of a lost worker
            leftover.unlink()
        return _finish(prep, tiles, work, out, as_vrt, temps, progress, share, cancel)
    except (OSError, RuntimeError) as exc:  # GDAL's errors, a full disk (TesseraErrors pass as they are)
        raise ExportError(f"the export failed: {exc}") from None
    finally:
        for tmp in temps:
            remove(tmp)
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _run_local(prep, tiles: list[Tile], work: Path, tile_progress, report_progress, tile_done, cancel) -> None:
    stop = threading.Event()  # set when a tile fails: the others stop at their next block

    def stopped() -> bool:
        return stop.is_set() or (cancel is not None and cancel())

    with ThreadPoolExecutor(LOCAL_TILE_THREADS, thread_name_prefix="tessera-tile") as pool:
        names = {}
        for t in tiles:
            fut = pool.submit(run_tile, prep.store, prep.req, prep.bands, prep.pca, t.grid(prep.plans[t.plan][1]),
                              str(work), t.name, stopped, lambda f, n=t.name: tile_progress(n, f))
            names[fut] = t.name
        pending = set(names)
        try:
            while pending:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                report_progress()
                for fut in done:
                    fut.result()
                    tile_done(names[fut])
                if cancel is not None and cancel():
                    raise Cancelled("export cancelled")
        except BaseException:
            stop.set()
            for fut in pending:
                fut.cancel()
            raise


class _Canceller:
    """cancel() for a task on a worker: the export's Dask Event, asked at most twice a second."""

    def __init__(self, name: str) -> None:
        self.name, self.last, self.value, self.event = name, 0.0, False, None

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.value and now - self.last > 0.5:
            from distributed import Event  # optional: cluster exports only

            self.last = now
            if self.event is None:
                self.event = Event(self.name)
            self.value = self.event.is_set()
        return self.value

    def __reduce__(self):
        return (_Canceller, (self.name,))


class _Reporter:
    """progress() for a task on a worker: the tile's fraction as a worker event on the export's
    topic (the client subscribes to it), at most five times a second."""

    def __init__(self, topic: str, name: str) -> None:
        self.topic, self.name, self.last = topic, name, 0.0

    def __call__(self, frac: float) -> None:
        now = time.monotonic()
        if frac < 1.0 and now - self.last < 0.2:
            return
        self.last = now
        try:
            from distributed import get_worker  # optional: cluster exports only

            get_worker().log_event(self.topic, {"tile": self.name, "fraction": float(frac)})
        except Exception:  # progress is a nicety: never fail a task over it
            pass


def _dask_tile(spec, req, bands, pca, grid, folder, name, event_name, topic=None):
    reporter = _Reporter(topic, name) if topic else None
    return run_tile(spec, req, bands, pca, grid, folder, name, _Canceller(event_name), reporter)


def _secrets_plugin(token: str, secrets: dict):
    # distributed is optional: imported only when a cluster export runs
    from distributed.diagnostics.plugin import WorkerPlugin

    class TesseraSecrets(WorkerPlugin):
        """Puts one export's credentials in the worker's memory (not in any task)."""

        def __init__(self, token: str, values: dict) -> None:
            self.token, self._values = token, values
            self.name = f"tessera-secrets-{token}"

        def setup(self, worker) -> None:
            from tessera_qgis.core.export import cluster  # the worker's own copy of this module

            cluster._SECRETS[self.token] = self._values

        def teardown(self, worker) -> None:
            from tessera_qgis.core.export import cluster  # the worker's own copy of this module

            cluster._SECRETS.pop(self.token, None)
            for key in [k for k in cluster._STORES if k[2] == self.token]:
                cluster._STORES.pop(key, None)

        def __repr__(self) -> str:
            return f"<TesseraSecrets {self.token[:8]}>"

    return TesseraSecrets(token, secrets)


def connect(address: str, timeout: float | None = None):
    """A dask.distributed Client for a scheduler address, with a clear message on failure."""
    try:
        from distributed import Client  # optional: cluster exports only
    except ImportError:
        raise ExportError(INSTALL_HINT) from None
    try:
        return Client(address, timeout=timeout or CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ExportError(f"could not reach the Dask scheduler at {address}: {exc}") from None


def _run_dask(prep, tiles: list[Tile], work: Path, token: str, tile_progress, report_progress, tile_done,
              cancel) -> None:
    if prep.store.offline:
        raise ExportError("a cluster export needs the store online (it is open from the offline cache)")
    address = prep.req.dask
    client = address if not isinstance(address, str) else connect(address)
    try:
        from distributed import Event  # optional: cluster exports only

        def cannot_import() -> str:  # sent by value: it must run where our package is missing
            try:
                import tessera_qgis.core.export.geotiff  # noqa: F401 (GDAL and the package, on the worker)
                from osgeo import gdal  # noqa: F401
            except ImportError as exc:
                return (f"{exc}: install zarr, numcodecs, fsspec, s3fs, pyproj, GDAL's Python bindings and "
                        "this plugin's tessera_qgis package on the workers")
            return ""

        try:
            missing = client.run(cannot_import)
        except Exception as exc:
            raise ExportError(f"the Dask workers did not answer: {exc}") from None
        bad = {w: m for w, m in missing.items() if m}
        if bad:
            raise ExportError("the Dask workers cannot use the export: " + "; ".join(sorted(set(bad.values()))))
        spec, secrets = split_secrets(prep.store.url, prep.store.options, token)
        plugin = _secrets_plugin(token, secrets)
        client.register_plugin(plugin, name=plugin.name)
        event_name = f"tessera-cancel-{token}"
        event = Event(event_name, client=client)
        topic = f"tessera-progress-{token}"

        def on_event(event) -> None:  # in the client's event loop: record only
            msg = event[1] if isinstance(event, tuple) else event
            try:
                tile_progress(str(msg["tile"]), float(msg["fraction"]))
            except (TypeError, KeyError, ValueError):
                pass

        client.subscribe_topic(topic, on_event)
        req = dataclasses.replace(prep.req, dask=None)
        keys = []
        futures = []
        try:
            for i, t in enumerate(tiles):
                key = f"tessera-tile-{token}-{i}"
                keys.append(key)
                futures.append(client.submit(_dask_tile, spec, req, prep.bands, prep.pca,
                                             t.grid(prep.plans[t.plan][1]), str(work), t.name, event_name, topic,
                                             key=key, pure=False, retries=0))
            pending = set(futures)
            while pending:
                if cancel is not None and cancel():
                    raise Cancelled("export cancelled")
                done = [f for f in pending if f.done()]
                report_progress()
                if not done:
                    time.sleep(0.2)
                for fut in done:
                    pending.discard(fut)
                    if fut.status == "error":
                        exc = fut.exception()
                        raise ExportError(f"a task of the export failed ({_tile_of(fut.key, tiles)}): "
                                          f"{_describe(exc, public_url(prep.store.url))}")
                    if fut.status == "cancelled":
                        raise ExportError("the Dask cluster cancelled a task of the export")
                    fut.release()  # its result is the tile on disk: nothing to recompute if a worker goes
                    tile_done(tiles[int(str(fut.key).rsplit("-", 1)[1])].name)
        except BaseException:
            event.set()
            client.cancel(futures, force=True)
            _wait_idle(client, set(keys))
            raise
        finally:
            for tidy in (lambda: client.unsubscribe_topic(topic),
                         lambda: client.unregister_worker_plugin(plugin.name),
                         event.clear):  # an Event nobody waits on is deleted by clear()
                try:
                    tidy()
                except Exception:  # a scheduler gone away: its workers' memory goes with it
                    pass
    finally:
        if isinstance(address, str):
            client.close()


def _executing(dask_worker) -> list[str]:
    try:
        return [str(ts.key) for ts in dask_worker.state.executing]
    except AttributeError:
        return []


def _wait_idle(client, keys: set[str], limit: float = 60.0) -> None:
    """After a cancel: wait until no worker still runs a task of this export (each stops at
    its next block, removing its own temporary files), so no tile appears afterwards."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            running = {k for ks in client.run(_executing).values() for k in ks}
        except Exception:
            return
        if not running & keys:
            return
        time.sleep(0.2)


def _tile_of(key, tiles: list[Tile]) -> str:
    try:
        t = tiles[int(str(key).rsplit("-", 1)[1])]
        return f"rows {t.rows[0]}-{t.rows[1]}, columns {t.cols[0]}-{t.cols[1]}"
    except (ValueError, IndexError):
        return str(key)


def _describe(exc: BaseException | None, url: str) -> str:
    text = str(exc) if exc is not None else "unknown error"
    return text if isinstance(exc, TesseraError) else f"{type(exc).__name__}: {text} (store {url})"


# -- tying the tiles together --------------------------------------------------------------------
def _finish(prep, tiles: list[Tile], work: Path, out: Path, as_vrt: bool, temps: list[Path],
            progress, share: float, cancel) -> list[Path]:
    req = prep.req
    outputs, _ = products(prep.store, req, prep.bands, prep.pca)
    gdal = gdal_module()
    finals: list[tuple[Path, Path]] = []  # (temporary, final)
    tiles_dir = out.with_name(out.name[: -len(out.suffix)] + ".tiles") if as_vrt else None
    jobs = [(i, target, o) for i, (target, _) in enumerate(prep.plans) for o in outputs]
    for n, (i, target, o) in enumerate(jobs):
        sources = [str(work / (t.name if not o.suffix else f"{Path(t.name).stem}{o.suffix}.tif"))
                   for t in tiles if t.plan == i]
        final = target if not o.suffix else target.with_name(f"{target.stem}{o.suffix}{target.suffix}")
        fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".vrt.part", dir=out.parent)
        os.close(fd)
        vrt = Path(name)
        temps.append(vrt)
        ds = gdal.BuildVRT(str(vrt), sources)
        if ds is None:
            raise ExportError(f"GDAL could not tie the tiles of {final.name} together")
        describe(ds, prep.store, req, o)
        ds = None
        if as_vrt:  # the tiles folder gets its final name below: point the VRT there
            text = vrt.read_text(encoding="utf-8").replace(f">{work.name}/", f">{tiles_dir.name}/")
            vrt.write_text(text, encoding="utf-8")
            finals.append((vrt, final))
            continue
        fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".tif.part", dir=out.parent)
        os.close(fd)
        tif = Path(name)
        temps.append(tif)

        def cb(frac, _msg, _data, n=n):
            if progress is not None:
                progress(share + (1 - share) * (n + frac) / len(jobs))
            return 0 if (cancel is not None and cancel()) else 1

        if req.cog:
            gdal.Translate(str(tif), str(vrt), format="COG", creationOptions=cog_options(req, len(o.names)),
                           callback=cb)
        else:
            opts = [f"COMPRESS={req.compress}", "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS", "TILED=YES",
                    f"BLOCKXSIZE={req.block}", f"BLOCKYSIZE={req.block}",
                    "INTERLEAVE=BAND" if len(o.names) > 4 else "INTERLEAVE=PIXEL"]
            if req.compress in ("DEFLATE", "ZSTD"):
                opts.append("PREDICTOR=3" if o.dtype == "float32" else "PREDICTOR=2")
            gdal.Translate(str(tif), str(vrt), format="GTiff", callback=cb, creationOptions=opts)
        if cancel is not None and cancel():
            raise Cancelled("export cancelled")
        os.chmod(tif, 0o666 & ~UMASK)
        finals.append((tif, final))
    # Everything is written: move into place (an earlier output is replaced only now).
    old = None
    if as_vrt:
        if tiles_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{tiles_dir.name}.old.", dir=out.parent))
            os.replace(tiles_dir, old / tiles_dir.name)
        os.replace(work, tiles_dir)
    result = []
    for tmp, final in finals:
        os.chmod(tmp, 0o666 & ~UMASK)
        os.replace(tmp, final)
        aux = tmp.with_name(tmp.name + ".aux.xml")
        if aux.exists():
            os.replace(aux, final.with_name(final.name + ".aux.xml"))
        result.append(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if req.kind in CLASS_KINDS:
        result[0].with_suffix(".qml").write_text(class_style(req.classifier.names), encoding="utf-8")
    if progress is not None:
        progress(1.0)
    return result


__all__ = ["INSTALL_HINT", "StoreSpec", "Tile", "connect", "export_tiles", "plan_tiles", "run_tile",
           "split_secrets"]
