"""The GeoTIFF writer of exports: tiled files written block by block, described (band
names, nodata, colours, categories, metadata), optionally converted to a Cloud Optimized
GeoTIFF with nearest-neighbour overviews. Files are written under temporary names; the
caller renames them into place when everything has succeeded."""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import ExportError
from ..gdal_io import driver, gdal_module
from ..memory import release_memory
from ..storeref import public_url
from .products import BandGroups, Output, products, read_block, year_reader
from .request import ExportRequest, Progress, block_transform, blocks

UMASK = os.umask(0o022)
os.umask(UMASK)


def gdal_type(dtype: str) -> int:
    gdal = gdal_module()
    return {"float32": gdal.GDT_Float32, "uint8": gdal.GDT_Byte, "int8": gdal.GDT_Int8,
            "uint16": gdal.GDT_UInt16}[dtype]


def gdal_colour(name: str) -> int:
    gdal = gdal_module()
    return {"red": gdal.GCI_RedBand, "green": gdal.GCI_GreenBand, "blue": gdal.GCI_BlueBand,
            "alpha": gdal.GCI_AlphaBand}[name]


PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf", "#999999",
           "#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494"]


def class_style(names: list[str]) -> str:
    """A QGIS style (.qml) for a class raster: a palette with the class names (1..n)."""
    entries = "\n".join(
        f'        <paletteEntry value="{i}" label={quoteattr(name)} color="{PALETTE[(i - 1) % len(PALETTE)]}" '
        'alpha="255"/>' for i, name in enumerate(names, start=1))
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.44" styleCategories="Symbology">\n  <pipe>\n'
            '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
            f"      <colorPalette>\n{entries}\n      </colorPalette>\n"
            "    </rasterrenderer>\n  </pipe>\n</qgis>\n")


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    for side in (path.with_name(path.name + ".aux.xml"),):
        try:
            side.unlink()
        except FileNotFoundError:
            pass



def create(path: Path, width, height, count, dtype, crs, transform, compress, block, intermediate=False):
    """A tiled GeoTIFF to write block by block. `intermediate`: only a step before the COG
    conversion, so compressed fast (ZSTD level 1), not small."""
    if intermediate:
        compress = "ZSTD"
    opts = ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "BIGTIFF=IF_SAFER",
            f"COMPRESS={compress}", "NUM_THREADS=ALL_CPUS",
            "INTERLEAVE=PIXEL" if count <= 4 else "INTERLEAVE=BAND"]
    if intermediate:
        opts.append("ZSTD_LEVEL=1")
    if compress in ("DEFLATE", "ZSTD"):
        opts.append("PREDICTOR=3" if dtype == "float32" else "PREDICTOR=2")
    drv = driver("GTiff")
    ds = drv.Create(str(path), width, height, count, gdal_type(dtype), options=opts)
    if ds is None:
        raise ExportError(f"GDAL could not create {path}")
    ds.SetGeoTransform((transform[2], transform[0], transform[1], transform[5], transform[3], transform[4]))
    from osgeo import osr  # with GDAL, on first use (see gdal_module)

    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    ds.SetProjection(srs.ExportToWkt())
    return ds



def describe(ds, store, req: ExportRequest, out: Output) -> None:
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
            band.SetColorInterpretation(gdal_colour(out.colours[i]))
    if out.categories:
        ds.GetRasterBand(1).SetCategoryNames(out.categories)


def write(store, req, grid, bands, pca, target: Path, prog: Progress, temps: list[Path],
          overviews: bool = True):
    crs, transform, width, height, native = grid
    outputs, compute = products(store, req, bands, pca)
    files: list[tuple[Path, Path]] = []
    datasets = []
    small_gdal_cache(+1)
    try:
        for out in outputs:
            fd, name = tempfile.mkstemp(prefix=f".{target.stem}{out.suffix}.", suffix=".tif.part",
                                        dir=target.parent)
            os.close(fd)
            tmp = Path(name)
            os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; an export is an ordinary file
            temps.append(tmp)
            ds = create(tmp, width, height, len(out.names), out.dtype, crs, transform, req.compress, req.block,
                        intermediate=req.cog)
            describe(ds, store, req, out)
            datasets.append((ds, tmp, out))
        for r0, r1, c0, c1 in blocks(grid, req.block):
            prog.check()
            q, scales = read_block(store, req, grid, r0, c0, r1 - r0, c1 - c0, prog.cancel)
            extra = {}
            if req.kind == "change":
                extra["year2"] = read_block(store, req, grid, r0, c0, r1 - r0, c1 - c0, prog.cancel,
                                             year=req.year2)
            inside = None
            if req.mask is not None:  # pixels outside the polygons are nodata
                inside = req.mask(block_transform(transform, r0, c0), c1 - c0, r1 - r0, crs)
                scales = np.where(inside, scales, np.inf).astype(np.float32)
                q = np.where(inside[None], q, 0).astype(np.int8)
            # other years of the same block, read when a product asks (trajectories)
            extra["read"] = year_reader(store, req, grid, r0, c0, r1 - r0, c1 - c0, prog.cancel, inside)
            for (ds, _, _), data in zip(datasets, compute(q, scales, extra)):
                if isinstance(data, BandGroups):  # float32 a few bands at a time: 8x less memory
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
                tmp = to_cog(tmp, req, prog, temps, len(out.names), overviews)
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
        small_gdal_cache(-1)


_CACHE_LOCK = threading.Lock()
_CACHE_USERS = [0, 0]  # writers running, GDAL's cache size before the first


def small_gdal_cache(step: int) -> None:
    """GDAL's block cache at 64 MB while any export writes (several may run in threads),
    restored after the last: dirty tiles then leave for the file early instead of piling up."""
    with _CACHE_LOCK:
        if step > 0 and _CACHE_USERS[0] == 0:
            _CACHE_USERS[1] = gdal_module().GetCacheMax()
            gdal_module().SetCacheMax(64 << 20)
        _CACHE_USERS[0] += step
        if step < 0 and _CACHE_USERS[0] == 0:
            gdal_module().SetCacheMax(_CACHE_USERS[1])





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


def to_cog(src: Path, req: ExportRequest, prog: Progress, temps: list[Path], count: int,
            overviews: bool = True) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{src.stem}.cog.", suffix=".tif.part", dir=src.parent)
    os.close(fd)
    dst = Path(name)
    temps.append(dst)

    def cb(frac, _msg, _data):
        return 0 if (prog.cancel is not None and prog.cancel()) else 1

    if overviews:
        build_overviews(src, req.block, count, cb)
        prog.check()
    gdal_module().Translate(str(dst), str(src), format="COG", creationOptions=cog_options(req, count, overviews),
                            callback=cb)
    prog.check()
    remove(src)
    return dst


def build_overviews(path: Path, block: int, count: int, cb) -> None:
    """Nearest-neighbour overviews inside the intermediate file, band by band, which the COG
    driver then copies. Left to the COG driver, 128 bands' overviews took memory in
    proportion to the region (1.0 GB for 1000 x 1000 px, 2.4 GB and 190 s for 2000 x 2000);
    this way 0.25 and 0.32 GB."""
    gdal = gdal_module()
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


