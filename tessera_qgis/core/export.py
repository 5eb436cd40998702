"""Export a region to GeoTIFF, streamed block by block with bounded memory.

Output kinds: float32 dequantised embeddings (all bands or a subset, NaN nodata), PCA RGB
(uint8 with an alpha band), or quantised int8 plus a float32 scales file. Files are written
to a temporary name beside the target and renamed into place only when complete; a cancel
or an error removes the temporary files, and an existing output is replaced only on success.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import Cancelled, ExportError, ExtentError
from .memory import release_memory
from .pca import PCA
from .region import (_ring, check_bounds, cosine, dequantise, fit_pca, plan, read_grid_quantised, transformer,
                     unit)
from .store import TesseraStore
from .urls import redact_url

_UMASK = os.umask(0o022)
os.umask(_UMASK)
KINDS = ("float32", "pca", "int8", "similarity", "change", "classify")
EXPORT_CHUNK_CACHE = 96 << 20


@dataclass
class ExportRequest:
    bounds: tuple[float, float, float, float]
    crs: str  # CRS of `bounds`
    year: int
    out: str
    kind: str = "float32"
    bands: Sequence[int] | None = None  # 1-based; None = all (float32 only)
    dst_crs: str | None = None  # None: the native zone CRS
    per_zone: bool = False
    cog: bool = False
    compress: str = "DEFLATE"
    block: int = 512  # pixels per block side: memory ~ block^2 * bands * 5 bytes
    pca: PCA | None = None
    resolution: float | None = None  # metres (or dst CRS units); default 10
    reference: Sequence[float] | None = None  # "similarity": the reference embedding
    year2: int | None = None  # "change": the other year
    classifier: object | None = None  # "classify": a KNNClassifier
    # mask(transform, width, height, crs) -> bool (height, width): pixels to keep (polygons)
    mask: Callable | None = None
    max_pixels: int = 2_000_000_000  # refuse larger outputs (about 450 km square at 10 m)
    # Run as tasks, each writing one COG tile (tied by a VRT): on this Dask scheduler
    # ("tcp://host:port"), or in local threads when the output ends in .vrt.
    dask: str | None = None
    tile: int | None = None  # pixels per task side; default: the store's shard size
    extra: dict = field(default_factory=dict)


def public_url(url: str) -> str:
    """The store URL with any password masked (``http://alice:***@host/...``), for metadata
    and messages."""
    return redact_url(url)


class _Progress:
    def __init__(self, total: int, cb: Callable[[float], None] | None, cancel: Callable[[], bool] | None):
        self.total, self.done, self.cb, self.cancel = max(total, 1), 0, cb, cancel

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("export cancelled")

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.cb is not None:
            self.cb(min(1.0, self.done / self.total))
        self.check()


def _gdal():
    from osgeo import gdal

    gdal.UseExceptions()
    return gdal


def _targets(req: ExportRequest, zones: list[str]) -> list[tuple[str | None, Path]]:
    out = Path(req.out)
    if req.per_zone and len(zones) > 1:
        return [(z, out.with_name(f"{out.stem}_{z}{out.suffix or '.tif'}")) for z in zones]
    return [(zones[0] if req.per_zone else None, out)]


@dataclass
class Prepared:
    """An export checked and planned: the outputs' grids, bands and PCA basis."""

    store: TesseraStore  # with the export's private chunk cache
    req: ExportRequest
    bands: list[int]
    pca: PCA | None
    plans: list[tuple[Path, tuple]]  # (target, grid) per output file (one per zone with per_zone)

    def blocks(self) -> int:
        return sum(len(list(_blocks(g, self.req.block))) for _, g in self.plans)


def prepare(store: TesseraStore, req: ExportRequest, cancel: Callable[[], bool] | None = None) -> Prepared:
    """Check an export request against the store and plan its output grids; raises
    ExportError/ExtentError/YearNotFound with a message for the user."""
    if req.kind not in KINDS:
        raise ExportError(f"unknown export kind {req.kind!r}; use one of {', '.join(KINDS)}")
    store.check_year(req.year)
    if req.kind == "change":
        if req.year2 is None:
            raise ExportError("a change export needs a second year")
        store.check_year(req.year2)
    if req.kind == "similarity" and (req.reference is None or len(req.reference) != store.bands):
        raise ExportError(f"a similarity export needs a reference embedding of {store.bands} values")
    if req.kind == "classify" and req.classifier is None:
        raise ExportError("a classification needs a trained classifier")
    # A private chunk cache: enough for the chunks that straddle two blocks, and no more,
    # so memory stays bounded whatever the region's size and whatever else uses the store.
    store = store.with_memory_cache(EXPORT_CHUNK_CACHE)
    bounds = check_bounds(req.bounds)
    bands = store.check_bands(req.bands) if req.bands else list(range(1, store.bands + 1))
    if req.kind != "float32" and req.bands:
        raise ExportError("bands can only be chosen for float32 exports")
    parts = [p for p in plan(store, bounds, req.crs) if req.year in p.zone.years]
    if not parts:
        raise ExtentError("the region does not intersect the store's data for that year")
    out = Path(req.out)
    if not out.parent.is_dir():
        raise ExportError(f"output folder {out.parent} does not exist")
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a file name ending in .tif")
    if not os.access(out.parent, os.W_OK):
        raise ExportError(f"cannot write to {out.parent}: permission denied or a read-only file system")
    if str(out.resolve()).startswith(str(Path(store.url).resolve()) + os.sep) and "://" not in store.url:
        raise ExportError("the output path lies inside the store being read; choose another folder")
    if not 16 <= req.block <= 2048 or req.block % 16:
        raise ExportError("the export block size must be a multiple of 16 pixels, 16 to 2048")
    zones_used = sorted({p.zone.name for p in parts})
    plans = [(target, _grid_for(store, req, bounds, parts, zone_name))
             for zone_name, target in _targets(req, zones_used)]
    pixels = sum(g[2] * g[3] for _, g in plans)
    if pixels > req.max_pixels:
        raise ExtentError(f"the region is {pixels:,} pixels at this resolution, more than the limit of "
                          f"{req.max_pixels:,}; choose a smaller region (or one file per zone)")
    pca = req.pca
    if req.kind == "pca" and pca is None:
        pca = _pca_for(store, req, cancel)
    return Prepared(store, req, bands, pca, plans)


def export(store: TesseraStore, req: ExportRequest, progress: Callable[[float], None] | None = None,
           cancel: Callable[[], bool] | None = None) -> list[Path]:
    """Write the GeoTIFF(s) for `req`; returns the paths written.

    With `req.dask` (a scheduler address) or an output ending in .vrt, the export runs as
    tasks that each write one tile (a COG), tied together by a VRT or mosaicked into the
    output: see `cluster.export_tiles`."""
    prep = prepare(store, req, cancel)
    if req.dask or Path(req.out).suffix.lower() == ".vrt":
        from .cluster import export_tiles

        return export_tiles(prep, progress, cancel)
    written: list[Path] = []
    temps: list[Path] = []
    try:
        prog = _Progress(prep.blocks() * (2 if req.cog else 1), progress, cancel)
        for target, grid in prep.plans:
            written.extend(_write(prep.store, req, grid, prep.bands, prep.pca, target, prog, temps))
        # All complete: move into place (an existing output is replaced only now).
        final = []
        for tmp, target in written:
            os.replace(tmp, target)
            aux = tmp.with_name(tmp.name + ".aux.xml")  # category names, statistics (GDAL PAM)
            if aux.exists():
                os.replace(aux, target.with_name(target.name + ".aux.xml"))
            final.append(target)
        if req.kind == "classify":  # class names and colours as the default QGIS style
            final[0].with_suffix(".qml").write_text(class_style(req.classifier.names), encoding="utf-8")
        return final
    except BaseException:
        for tmp in temps:
            _remove(tmp)
        raise
    finally:
        for tmp in temps:
            if tmp.exists() and tmp.suffix == ".part":
                _remove(tmp)


PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf", "#999999",
           "#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494"]


def class_style(names: list[str]) -> str:
    """A QGIS style (.qml) for a class raster: a palette with the class names (1..n)."""
    from xml.sax.saxutils import quoteattr

    entries = "\n".join(
        f'        <paletteEntry value="{i}" label={quoteattr(name)} color="{PALETTE[(i - 1) % len(PALETTE)]}" '
        'alpha="255"/>' for i, name in enumerate(names, start=1))
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.44" styleCategories="Symbology">\n  <pipe>\n'
            '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
            f"      <colorPalette>\n{entries}\n      </colorPalette>\n"
            "    </rasterrenderer>\n  </pipe>\n</qgis>\n")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    for side in (path.with_name(path.name + ".aux.xml"),):
        try:
            side.unlink()
        except FileNotFoundError:
            pass


def _grid_for(store, req, bounds, parts, zone_name):
    """(crs, transform, width, height, native_zone) of the output grid."""
    if req.dst_crs is None:
        if zone_name is None:  # one file: the zone holding most of the region
            zone_name = max(parts, key=lambda p: p.pixels).zone.name
        part = next(p for p in parts if p.zone.name == zone_name)
        zone = part.zone
        if len(parts) == 1 or req.per_zone:
            a, b, c, d, e, f = zone.transform
            t = (a, b, c + a * part.cols[0], d, e, f + e * part.rows[0])
            return (zone.crs, t, part.cols[1] - part.cols[0], part.rows[1] - part.rows[0], part)
        dst_crs = zone.crs
    else:
        dst_crs = req.dst_crs
    res = req.resolution or _default_resolution(dst_crs)
    rx, ry = _ring(bounds)
    tx, ty = transformer(req.crs, dst_crs).transform(rx, ry) if req.crs != dst_crs else (rx, ry)
    x0, x1, y0, y1 = min(tx), max(tx), min(ty), max(ty)
    x0, y1 = math.floor(x0 / res) * res, math.ceil(y1 / res) * res
    width, height = math.ceil((x1 - x0) / res), math.ceil((y1 - y0) / res)
    return (dst_crs, (res, 0.0, x0, 0.0, -res, y1), width, height, None)


def _default_resolution(crs: str) -> float:
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    if c.is_geographic:
        return 10.0 / 111320.0  # about 10 m in degrees
    return 10.0


def _pca_for(store, req, cancel) -> PCA:
    """The store's global PCA for the year, else one fitted on a sample of the region."""
    st = store.stretch(req.year)
    pca = PCA.from_stretch(st) if st else None
    return pca if pca is not None else fit_pca(store, req.bounds, req.crs, req.year, cancel=cancel)


def _create(path: Path, width, height, count, dtype, crs, transform, compress, block, intermediate=False):
    """A tiled GeoTIFF to write block by block. `intermediate`: only a step before the COG
    conversion, so compressed fast (ZSTD level 1), not small."""
    gdal = _gdal()
    from osgeo import osr

    if intermediate:
        compress = "ZSTD"
    opts = ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "BIGTIFF=IF_SAFER",
            f"COMPRESS={compress}", "NUM_THREADS=ALL_CPUS",
            "INTERLEAVE=PIXEL" if count <= 4 else "INTERLEAVE=BAND"]
    if intermediate:
        opts.append("ZSTD_LEVEL=1")
    if compress in ("DEFLATE", "ZSTD"):
        opts.append("PREDICTOR=3" if dtype == gdal.GDT_Float32 else "PREDICTOR=2")
    drv = gdal.GetDriverByName("GTiff")
    ds = drv.Create(str(path), width, height, count, dtype, options=opts)
    if ds is None:
        raise ExportError(f"GDAL could not create {path}")
    ds.SetGeoTransform((transform[2], transform[0], transform[1], transform[5], transform[3], transform[4]))
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    ds.SetProjection(srs.ExportToWkt())
    return ds


@dataclass
class _Output:
    """One GeoTIFF an export writes: its name suffix, type, band names, nodata."""

    suffix: str
    dtype: int
    names: list[str]
    nodata: float | None = None
    colours: list[int] | None = None
    categories: list[str] | None = None
    meta: dict = field(default_factory=dict)


def _products(store, req: ExportRequest, bands: list[int], pca: PCA | None):
    """(outputs, compute) for an export kind. compute(q, scales, extra) -> one array per
    output for a block; q/scales are the year's quantised values, extra holds what other
    kinds need (the second year for "change")."""
    gdal = _gdal()
    if req.kind == "float32":
        outs = [_Output("", gdal.GDT_Float32, [f"A{b:03d}" for b in bands], float("nan"),
                        meta={"TESSERA_BANDS": ",".join(map(str, bands))})]
        idx = [b - 1 for b in bands]
        return outs, lambda q, s, x: [_BandGroups(q, s, idx)]
    if req.kind == "pca":
        outs = [_Output("", gdal.GDT_Byte, ["PC1", "PC2", "PC3", "alpha"], None,
                        [gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand, gdal.GCI_AlphaBand],
                        meta={"TESSERA_PCA": pca.source, "TESSERA_PCA_BASIS": json.dumps(pca.to_json())})]
        return outs, lambda q, s, x: [pca.to_rgba(dequantise(q, s))]
    if req.kind == "int8":
        outs = [_Output("", gdal.GDT_Int8, [f"A{b:03d}" for b in range(1, store.bands + 1)]),
                _Output("_scales", gdal.GDT_Float32, ["scale"], float("inf"),
                        meta={"TESSERA_DEQUANTISE": "value = int8 * scale; nodata where scale is not finite"})]
        return outs, lambda q, s, x: [q, s]
    if req.kind == "similarity":
        ref = unit(req.reference)[:, None, None]
        outs = [_Output("", gdal.GDT_Float32, ["cosine similarity"], float("nan"))]
        return outs, lambda q, s, x: [cosine(q, ref, np.isfinite(s))[None]]
    if req.kind == "change":
        outs = [_Output("", gdal.GDT_Float32, [f"cosine distance {req.year} to {req.year2}"], float("nan"),
                        meta={"TESSERA_YEAR2": str(req.year2)})]

        def change(q, s, x):
            q2, s2 = x["year2"]
            valid = np.isfinite(s) & np.isfinite(s2)
            q2f = q2.astype(np.float32)
            q2f /= np.maximum(np.linalg.norm(q2f, axis=0), 1e-12)[None]
            return [(1.0 - cosine(q, q2f, valid))[None]]
        return outs, change
    if req.kind == "classify":
        model = req.classifier
        outs = [_Output("", gdal.GDT_Byte, ["class"], 0, categories=["no data", *model.names],
                        meta={"TESSERA_CLASSES": json.dumps(model.names), "TESSERA_K": str(model.k)}),
                _Output("_confidence", gdal.GDT_Float32, ["confidence"], float("nan"))]

        def classify(q, s, x):
            cls, conf = model.predict(q, s)
            return [cls, conf]
        return outs, classify
    raise ExportError(f"unknown export kind {req.kind!r}; use one of {', '.join(KINDS)}")


def describe(ds, store, req: ExportRequest, out: _Output) -> None:
    """Band names, nodata, colours, categories and the export's metadata on a dataset."""
    ds.SetMetadata({"TESSERA_YEAR": str(req.year), "TESSERA_STORE": public_url(store.url),
                    "TESSERA_DATASET": str(store.attrs.get("tessera:dataset") or ""),
                    "TESSERA_MODEL": str(store.attrs.get("tessera:model") or ""),
                    "TESSERA_KIND": req.kind, **out.meta})
    for i, band_name in enumerate(out.names):
        band = ds.GetRasterBand(i + 1)
        band.SetDescription(band_name)
        if out.nodata is not None:
            band.SetNoDataValue(out.nodata)
        if out.colours:
            band.SetColorInterpretation(out.colours[i])
    if out.categories:
        ds.GetRasterBand(1).SetCategoryNames(out.categories)


class _BandGroups:
    """A block's float32 values, dequantised 16 bands at a time as they are written (a 512 px
    block of 128 bands is 134 MB of float32 at once, 17 MB this way)."""

    GROUP = 16

    def __init__(self, q: np.ndarray, scales: np.ndarray, idx: list[int]) -> None:
        self.q, self.scales, self.idx = q, scales, idx

    def __iter__(self):
        whole = self.idx == list(range(self.q.shape[0]))
        for g in range(0, len(self.idx), self.GROUP):
            sel = self.idx[g:g + self.GROUP]
            yield g, dequantise(self.q[sel[0]:sel[-1] + 1] if whole else self.q[sel], self.scales)


def _write(store, req, grid, bands, pca, target: Path, prog: _Progress, temps: list[Path],
           overviews: bool = True):
    gdal = _gdal()
    crs, transform, width, height, native = grid
    outputs, compute = _products(store, req, bands, pca)
    files: list[tuple[Path, Path]] = []
    datasets = []
    _small_gdal_cache(gdal, +1)
    try:
        for out in outputs:
            fd, name = tempfile.mkstemp(prefix=f".{target.stem}{out.suffix}.", suffix=".tif.part",
                                        dir=target.parent)
            os.close(fd)
            tmp = Path(name)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; an export is an ordinary file
            temps.append(tmp)
            ds = _create(tmp, width, height, len(out.names), out.dtype, crs, transform, req.compress, req.block,
                         intermediate=req.cog)
            describe(ds, store, req, out)
            datasets.append((ds, tmp, out))
        for r0, r1, c0, c1 in _blocks(grid, req.block):
            prog.check()
            q, scales = _read_block(store, req, grid, r0, c0, r1 - r0, c1 - c0, prog.cancel)
            extra = {}
            if req.kind == "change":
                extra["year2"] = _read_block(store, req, grid, r0, c0, r1 - r0, c1 - c0, prog.cancel,
                                             year=req.year2)
            if req.mask is not None:  # pixels outside the polygons are nodata
                inside = req.mask(_block_transform(transform, r0, c0), c1 - c0, r1 - r0, crs)
                scales = np.where(inside, scales, np.inf).astype(np.float32)
                q = np.where(inside[None], q, 0).astype(np.int8)
            for (ds, _, _), data in zip(datasets, compute(q, scales, extra)):
                if isinstance(data, _BandGroups):  # float32 a few bands at a time: 8x less memory
                    for first, values in data:
                        ds.WriteArray(values, xoff=c0, yoff=r0, band_list=list(range(first + 1, first + 1 + len(values))))
                        del values
                else:
                    ds.WriteArray(data if data.ndim == 3 else data[None], xoff=c0, yoff=r0)
            del q, scales, extra
            release_memory()
            prog.step()
        closed = [(tmp, out) for _, tmp, out in datasets]
        for entry in datasets:
            entry[0].FlushCache()
            entry[0].Close()  # written completely before any COG conversion or rename
        datasets.clear()
        for tmp, out in closed:
            if req.cog:
                tmp = _to_cog(tmp, req, prog, temps, len(out.names), overviews)
            files.append((tmp, target if not out.suffix else
                          target.with_name(f"{target.stem}{out.suffix}{target.suffix or '.tif'}")))
        return files
    except OSError as exc:
        raise ExportError(f"writing {target} failed: {exc.strerror or exc}") from None
    except RuntimeError as exc:  # GDAL errors (disk full, permissions) arrive as RuntimeError
        raise ExportError(f"writing {target} failed: {exc}") from None
    finally:
        for entry in datasets:  # on failure: close now, quietly (the files are removed next)
            try:
                entry[0].Close()
            except Exception:
                pass
        datasets.clear()
        _small_gdal_cache(gdal, -1)


_CACHE_LOCK = threading.Lock()
_CACHE_USERS = [0, 0]  # writers running, GDAL's cache size before the first


def _small_gdal_cache(gdal, step: int) -> None:
    """GDAL's block cache at 64 MB while any export writes (several may run in threads),
    restored after the last: dirty tiles then leave for the file early instead of piling up."""
    with _CACHE_LOCK:
        if step > 0 and _CACHE_USERS[0] == 0:
            _CACHE_USERS[1] = gdal.GetCacheMax()
            gdal.SetCacheMax(64 << 20)
        _CACHE_USERS[0] += step
        if step < 0 and _CACHE_USERS[0] == 0:
            gdal.SetCacheMax(_CACHE_USERS[1])




def _block_transform(transform, r0: int, c0: int) -> tuple:
    a, b, c, d, e, f = transform
    return (a, b, c + a * c0, d, e, f + e * r0)


def _blocks(grid, block: int):
    """Output blocks (r0, r1, c0, c1): exactly the GeoTIFF's tiles, so each tile is
    compressed and written once. Chunks straddling two blocks come from the export's
    private chunk cache the second time."""
    _, _, width, height, _ = grid
    for r0 in range(0, height, block):
        for c0 in range(0, width, block):
            yield r0, min(r0 + block, height), c0, min(c0 + block, width)


def _read_block(store, req, grid, r0, c0, h, w, cancel, year: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Quantised values and scales of one output block (all bands)."""
    crs, transform, _, _, native = grid
    year = req.year if year is None else year
    if native is not None:  # the zone's own pixel grid: no resampling, each chunk read once
        win = native.zone.read(year, (native.rows[0] + r0, native.rows[0] + r0 + h),
                               (native.cols[0] + c0, native.cols[0] + c0 + w), cancel=cancel)
        return win.q, win.scales
    return read_grid_quantised(store, year, crs, _block_transform(transform, r0, c0), w, h, cancel=cancel)


def cog_options(req: ExportRequest, count: int, overviews: bool = True) -> list[str]:
    """COG creation options: band-interleaved beyond 4 bands (pixel-interleaved tiles of 128
    bands are 128 MB each: the conversion took 3x longer and 1.2 GB), overviews by nearest
    neighbour (embeddings are never blended)."""
    opts = [f"COMPRESS={req.compress}", "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS",
            f"BLOCKSIZE={req.block}", f"OVERVIEWS={'AUTO' if overviews else 'NONE'}", "RESAMPLING=NEAREST"]
    if count > 4:
        opts.append("INTERLEAVE=BAND")
    if req.compress in ("DEFLATE", "ZSTD", "LZW"):
        opts.append("PREDICTOR=YES")
    return opts


def _to_cog(src: Path, req: ExportRequest, prog: _Progress, temps: list[Path], count: int,
            overviews: bool = True) -> Path:
    gdal = _gdal()
    fd, name = tempfile.mkstemp(prefix=f".{src.stem}.cog.", suffix=".tif.part", dir=src.parent)
    os.close(fd)
    dst = Path(name)
    temps.append(dst)

    def cb(frac, _msg, _data):
        return 0 if (prog.cancel is not None and prog.cancel()) else 1

    if overviews:
        _build_overviews(gdal, src, req.block, count, cb)
        prog.check()
    gdal.Translate(str(dst), str(src), format="COG", creationOptions=cog_options(req, count, overviews), callback=cb)
    prog.check()
    _remove(src)
    return dst


def _build_overviews(gdal, path: Path, block: int, count: int, cb) -> None:
    """Nearest-neighbour overviews inside the intermediate file, band by band, which the COG
    driver then copies. Left to the COG driver, 128 bands' overviews took memory in
    proportion to the region (1.0 GB for 1000 x 1000 px, 2.4 GB and 190 s for 2000 x 2000);
    this way 0.25 and 0.32 GB."""
    ds = gdal.Open(str(path), gdal.GA_Update)
    try:
        factors, size = [], max(ds.RasterXSize, ds.RasterYSize)
        while size > block:
            factors.append(2 ** (len(factors) + 1))
            size = (size + 1) // 2
        if factors:
            with gdal.config_options({"COMPRESS_OVERVIEW": "ZSTD", "ZSTD_LEVEL_OVERVIEW": "1",
                                      "INTERLEAVE_OVERVIEW": "BAND" if count > 4 else "PIXEL"}):
                ds.BuildOverviews("NEAREST", factors, callback=cb)
    finally:
        ds = None


__all__ = ["ExportRequest", "Prepared", "export", "prepare", "KINDS", "public_url"]
