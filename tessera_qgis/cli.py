"""Command line: ``python -m tessera_qgis COMMAND ...`` (also ``make cli ARGS='...'``).

Errors are one clear line on stderr and a non-zero exit; ``--debug`` shows the traceback.
Machine-readable output (``--json``) goes to stdout alone; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Sequence

from .core.pack import PackProgress, plan_pack, run_pack
from .core.quant import INVALID, NO_DATA, NOT_EMBEDDED
from .core.sample import SampleSpec, generate
from .core.sources import StoreOptions
from .core.store import describe_years, open_store
from .core.storeref import StoreRef
from .core.urls import redact_url


def _bbox(text: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bbox must be four numbers W,S,E,N, got {text!r}") from None
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"bbox must be four numbers W,S,E,N, got {text!r}")
    return parts  # type: ignore[return-value]


def _years(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"years must be integers like 2024,2025, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tessera_qgis",
                                description="TESSERA embeddings from Zarr v3 stores.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("store", help="store URL: a folder, file://, http(s):// or s3://")
    common.add_argument("--s3-endpoint", metavar="URL", help="S3 endpoint URL (S3-compatible services)")
    common.add_argument("--s3-region", metavar="REGION")
    common.add_argument("--s3-profile", metavar="NAME", help="AWS profile for S3 credentials")
    common.add_argument("--anon", action="store_true", help="anonymous S3 access (ignore credentials)")
    common.add_argument("--cache-dir", metavar="DIR", help="on-disk chunk cache (areas seen once work offline)")
    common.add_argument("--concurrency", type=int, default=64, help="parallel requests (default 64)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")

    i = sub.add_parser("info", parents=[common], help="what a store holds")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    px = sub.add_parser("pixel", parents=[common], help="the 128 values at a point")
    px.add_argument("--lon", type=float, required=True)
    px.add_argument("--lat", type=float, required=True)
    px.add_argument("--year", type=int, required=True)
    px.add_argument("--json", action="store_true")
    px.set_defaults(func=cmd_pixel)

    r = sub.add_parser("render", parents=[common], help="an area as a PNG (bands as RGB, or PCA)")
    _region_args(r)
    r.add_argument("--out", required=True, help="output PNG")
    r.add_argument("--width", type=int, default=1024, help="image width in pixels (default 1024)")
    r.add_argument("--depth", type=int, choices=[4, 16, 128],
                   help="PCA on the first N dimensions (Matryoshka depths of v2 stores)")
    r.add_argument("--stretch", choices=["global", "cdf", "zone"], default="global",
                   help="the store's published colours: its linear range (global), equalised by its CDF (cdf), "
                        "or each zone's own (zone)")
    r.add_argument("--budget", type=int, default=4096 * 4096, metavar="PIXELS",
                   help="10 m pixels read at most; a larger area is drawn from the store's preview, "
                        "or a coarse one (default 4096 x 4096)")
    r.set_defaults(func=cmd_render)

    e = sub.add_parser("export", parents=[common], help="an area to GeoTIFF")
    _region_args(e, pca_or_bands_required=False)
    e.add_argument("--quantized", "--quantised", action="store_true",
                   help="int8 embeddings plus a float32 *_scales.tif file")
    e.add_argument("--out", required=True, help="output GeoTIFF")
    target = e.add_mutually_exclusive_group()
    target.add_argument("--crs", help="output CRS, e.g. EPSG:3857 (default: the native UTM zone)")
    target.add_argument("--per-zone", action="store_true", help="one file per UTM zone")
    e.add_argument("--cog", action="store_true", help="write Cloud Optimized GeoTIFF")
    e.add_argument("--compress", choices=["DEFLATE", "ZSTD", "LZW", "NONE"], default="DEFLATE")
    e.add_argument("--block", type=int, default=512, help="block size in pixels (memory per block)")
    e.add_argument("--dask", metavar="tcp://HOST:PORT",
                   help="run the export as tasks on this Dask scheduler (workers read the store and write "
                        "COG tiles; an --out ending in .vrt keeps the tiles and a VRT, .tif mosaics them)")
    e.add_argument("--tile", type=int, help="pixels per task side for tiled exports (default: the shard size)")
    e.add_argument("--depth", type=int, choices=[4, 16, 128],
                   help="only the first N dimensions (Matryoshka depths of v2 stores), read from their own array")
    e.set_defaults(func=cmd_export)

    k = sub.add_parser("pack", parents=[common], help="take an area offline: a portable store of its chunks")
    k.add_argument("--bbox", type=_bbox, required=True, action="append",
                   help="W,S,E,N in lon/lat (repeat the option for several areas)")
    k.add_argument("--years", type=_years, required=True, help="comma-separated years, e.g. 2024,2025")
    k.add_argument("--depth", type=int, choices=[4, 16, 128],
                   help="only the embeddings of this depth (stores with geoemb:depths; default: every depth)")
    k.add_argument("--out", required=True, help="the pack to write (a folder, e.g. AREA.zarr; must not exist)")
    k.add_argument("--dry-run", action="store_true", help="say what it would fetch and how long that takes; "
                   "write nothing")
    k.add_argument("--json", action="store_true", help="print the summary (or the estimate) as JSON on stdout")
    k.set_defaults(func=cmd_pack)

    s = sub.add_parser("sample", help="write the synthetic sample store (the published TESSERA layouts)")
    s.add_argument("out", help="folder to create (must not exist or be empty)")
    s.add_argument("--bbox", type=_bbox, help="W,S,E,N in lon/lat (default: around Cambridge, UK, "
                   "straddling the 0 degree meridian)")
    s.add_argument("--years", type=_years, help="comma-separated years (default 2024,2025)")
    s.add_argument("--shard", type=int, default=256,
                   help="shard size in pixels (default 256; production stores use 4096, benchmarks 1024)")
    s.add_argument("--seed", type=int, default=2026)
    s.add_argument("--time-order", choices=["ascending", "descending"], default="ascending")
    s.add_argument("--layout", choices=["v2", "v1", "v1.1-dclimate", "legacy", "per-year"], default="v2",
                   help="v2 (default): depths 4/16/128, bands stretch, global_rgb preview; v1: PCA stretch, "
                        "global_rgb, garbage scales; v1.1-dclimate: NaN nodata, observation counts; legacy: "
                        "one geoemb:stretch.YEAR attribute per year; per-year: one store per year")
    s.add_argument("--preview-levels", type=int, default=10, help="global_rgb levels (v2, v1; default 10)")
    s.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    s.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_sample)
    return p


def _bands(text: str) -> list[int]:
    try:
        return [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bands must be numbers like 1,2,3, got {text!r}") from None


def _region_args(p: argparse.ArgumentParser, pca_or_bands_required: bool = True) -> None:
    p.add_argument("--bbox", type=_bbox, required=True, help="W,S,E,N in lon/lat")
    p.add_argument("--year", type=int, required=True)
    mode = p.add_mutually_exclusive_group(required=pca_or_bands_required)
    mode.add_argument("--bands", type=_bands, help="bands numbered 1 to 128, e.g. 1,2,3")
    mode.add_argument("--pca", action="store_true", help="the first three principal components as RGB")


def _ref(args: argparse.Namespace) -> StoreRef:
    """The store reference of the command line (S3 keys from the environment, never from
    arguments)."""
    key = secret = None
    if not args.anon and not args.s3_profile:
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    return StoreRef(args.store, s3_endpoint=args.s3_endpoint, s3_region=args.s3_region, anon=args.anon,
                    profile=args.s3_profile, cache=args.cache_dir, key=key, secret=secret)


def _open(args: argparse.Namespace):
    return open_store(_ref(args), StoreOptions(concurrency=args.concurrency))


def cmd_info(args: argparse.Namespace) -> int:
    info = _open(args).info()
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['url']}\n  layout: {info['layout']}; dataset: {info['dataset']}; model: {info['model']}")
    print(f"  years: {describe_years(info)}; bands: {info['bands']}; depths: {', '.join(map(str, info['depths']))}; "
          f"global PCA for: {', '.join(map(str, info['global_pca_years'])) or 'none'}")
    stretch = ", ".join(f"{y} {m}" for y, m in info["stretch"].items())
    print(f"  published stretch: {stretch or 'none'}")
    for name, z in info["zones"].items():
        e = z["embeddings"]
        print(f"  {name}: {z['crs']}, {z['shape'][0]} x {z['shape'][1]} px, years {z['years']}, "
              f"chunks {e['chunk_px'][0]}x{e['chunk_px'][1]} px, shards {e['shard']}")
    return 0


NODATA_WHY = {  # a nodata pixel's reason (core.quant.nodata_reason), for people
    NOT_EMBEDDED: "not embedded: the store holds no embedding here (scale +inf)",
    NO_DATA: "water or no source data (scale NaN)",
    INVALID: "the stored scale is out of range, so the embedding is not usable",
}


def cmd_pixel(args: argparse.Namespace) -> int:
    # Opened for this pixel: its zone's years come with zarr.json (one round trip less).
    store = open_store(_ref(args), StoreOptions(concurrency=args.concurrency),
                       pixel=(args.lon, args.lat, args.year))
    res = store.pixel(args.lon, args.lat, args.year)
    if args.json:
        print(json.dumps(res))
    elif res["zone"] is None:
        print(f"no data at ({args.lon}, {args.lat}): no zone of the store covers it in {args.year}")
    elif not res["valid"]:
        print(f"{res['zone']} row {res['row']} col {res['col']}: nodata in {args.year} "
              f"({NODATA_WHY.get(res['nodata'], res['nodata'])})")
    else:
        vals = " ".join(f"{v:.4f}" for v in res["embedding"])
        print(f"{res['zone']} ({res['crs']}) row {res['row']} col {res['col']} year {res['year']} "
              f"scale {res['scale']:.6g}\n{vals}")
    if not args.json and res.get("observations"):  # v1.1-dclimate: how well the pixel was observed
        print("observations: " + ", ".join(f"{name} {'-' if n is None else n}"
                                          for name, n in res["observations"].items()))
    return 0


class _Progress:
    """Progress on stderr: a live percentage on a terminal, a line per 10 % otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -1

    def __call__(self, frac: float) -> None:
        if self.tty:
            print(f"\r{frac * 100:5.1f} %", end="" if frac < 1 else "\n", file=sys.stderr, flush=True)
        elif int(frac * 10) > self.last:
            self.last = int(frac * 10)
            print(f"{self.last * 10} %", file=sys.stderr, flush=True)


def cmd_render(args: argparse.Namespace) -> int:
    from .core.render import render_png  # GDAL: only render and export need it

    store = _open(args)
    info = render_png(store, args.bbox, args.year, args.out, width=args.width,
                      bands=args.bands, pca=args.pca, depth=args.depth, budget=args.budget, stretch=args.stretch)
    print(f"wrote {info['path']} ({info['width']} x {info['height']} px, {info['mode']}, "
          f"{info['valid_fraction'] * 100:.0f} % with data)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .core.export import ExportRequest, export  # GDAL: only render and export need it

    store = _open(args)
    kind = "pca" if args.pca else "int8" if args.quantized else "float32"
    if args.quantized and args.bands:
        raise ValueError("--quantized exports all bands; drop --bands")
    req = ExportRequest(bounds=args.bbox, crs="EPSG:4326", year=args.year, out=args.out, kind=kind,
                        bands=args.bands, dst_crs=args.crs, per_zone=args.per_zone, cog=args.cog,
                        compress=args.compress, block=args.block, dask=args.dask, tile=args.tile, depth=args.depth)
    for p in export(store, req, progress=_Progress()):
        print(p)
    return 0


class _PackMeter:
    """Pack progress on stderr: bytes and time left (live on a terminal, a line per 10 % otherwise)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -1

    def __call__(self, p: PackProgress) -> None:
        if p.stage == "done":
            return
        if p.message:
            if self.tty:
                print(file=sys.stderr)
            print(p.message, file=sys.stderr, flush=True)
            return
        eta = "" if p.eta_seconds is None else f", about {p.eta_seconds:.0f} s left"
        text = f"{p.done_bytes / 1e6:.1f} of {p.total_bytes / 1e6:.1f} MB ({p.fraction * 100:.0f} %){eta}"
        if self.tty:
            print(f"\r{text}   ", end="", file=sys.stderr, flush=True)
        elif int(p.fraction * 10) > self.last:
            self.last = int(p.fraction * 10)
            print(text, file=sys.stderr, flush=True)


def cmd_pack(args: argparse.Namespace) -> int:
    plan = plan_pack(_ref(args), args.bbox, args.years, args.out, depth=args.depth,
                     options=StoreOptions(concurrency=args.concurrency))
    if args.dry_run:
        estimate = {"bytes": plan.total_bytes, "bytes_to_fetch": plan.bytes_to_fetch, "requests": plan.requests,
                    "seconds": round(plan.seconds(), 1), "resumed_bytes": plan.resumed_bytes,
                    "zones": list(plan.zones), "years": plan.years, "depth": plan.depth}
        print(json.dumps(estimate) if args.json else f"would fetch: {plan.describe()}")
        return 0
    try:
        summary = run_pack(plan, progress=_PackMeter())
    except BaseException:
        if plan.part.exists():
            print(f"the pack is unfinished in {plan.part}: run the same command again to resume it",
                  file=sys.stderr)
        raise
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"wrote {summary['path']}: {summary['bytes_on_disk'] / 1e6:.1f} MB, {summary['chunks_checked']} "
              f"chunks checked; fetched {summary['fetched_bytes'] / 1e6:.1f} MB in {summary['seconds']} s")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    kw = {"shard": args.shard, "seed": args.seed, "time_order": args.time_order, "layout": args.layout,
          "preview_levels": args.preview_levels}
    if args.bbox:
        kw["bbox"] = args.bbox
    if args.years:
        kw["years"] = args.years
    spec = SampleSpec(**kw)
    summary = generate(args.out, spec, progress=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_sample_summary(summary))
    return 0


def format_sample_summary(s: dict) -> str:
    lines = [f"Sample store written to {s['path']} ({s['bytes'] / 1e6:.1f} MB in {s['seconds']} s)",
             f"  layout: {s.get('layout', 'legacy')}",
             f"  area (lon/lat W,S,E,N): {', '.join(f'{v:g}' for v in s['bbox'])}",
             f"  years: {', '.join(map(str, s['years']))}; bands: {s['bands']}; "
             f"inner chunks {s['chunk']} px, shards {s['shard']} px"]
    if "depths" in s:
        lines.append(f"  depths: {', '.join(map(str, s['depths']))}")
    if s.get("preview"):
        p = s["preview"]
        lines.append(f"  global_rgb preview: {p['year']}, {p['levels']} levels, drawn with the {p['mode']} stretch")
    if s.get("invalid_scales"):
        lines.append(f"  {len(s['invalid_scales'])} pixels with out-of-range scales (listed in each zone's "
                     "sample_landcover attribute invalid_scale_pixels)")
    for name, z in s["zones"].items():
        lines.append(f"  {name}: {z['crs']}, {z['shape'][0]} x {z['shape'][1]} px, "
                     f"top-left ({z['transform'][2]:.0f}, {z['transform'][5]:.0f})")
    lines.append("  classes (ground truth in each zone's sample_landcover array): "
                 + ", ".join(f"{k} {v}" for k, v in s["classes"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:  # library warnings are not for the user's terminal (some libraries
        # install their own filters, so silence the display itself)
        warnings.showwarning = lambda *a, **k: None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line unless --debug
        if args.debug:
            raise
        print(f"error: {redact_url(str(exc))}", file=sys.stderr)
        return 1
