"""Command line: ``python -m tessera_qgis COMMAND ...`` (also ``make cli ARGS='...'``).

Errors are one clear line on stderr and a non-zero exit; ``--debug`` shows the traceback.
Machine-readable output (``--json``) goes to stdout alone; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Sequence


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

    s = sub.add_parser("sample", help="write the synthetic sample store (current TESSERA layout)")
    s.add_argument("out", help="folder to create (must not exist or be empty)")
    s.add_argument("--bbox", type=_bbox, help="W,S,E,N in lon/lat (default: around Cambridge, UK, "
                   "straddling the 0 degree meridian)")
    s.add_argument("--years", type=_years, help="comma-separated years (default 2024,2025)")
    s.add_argument("--shard", type=int, default=256,
                   help="shard size in pixels (default 256; production stores use 4096, benchmarks 1024)")
    s.add_argument("--seed", type=int, default=2026)
    s.add_argument("--time-order", choices=["ascending", "descending"], default="ascending")
    s.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    s.set_defaults(func=cmd_sample)
    return p


def cmd_sample(args: argparse.Namespace) -> int:
    from .core.sample import SampleSpec, generate

    kw = {"shard": args.shard, "seed": args.seed, "time_order": args.time_order}
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
             f"  area (lon/lat W,S,E,N): {', '.join(f'{v:g}' for v in s['bbox'])}",
             f"  years: {', '.join(map(str, s['years']))}; bands: {s['bands']}; "
             f"inner chunks {s['chunk']} px, shards {s['shard']} px"]
    for name, z in s["zones"].items():
        lines.append(f"  {name}: {z['crs']}, {z['shape'][0]} x {z['shape'][1]} px, "
                     f"top-left ({z['transform'][2]:.0f}, {z['transform'][5]:.0f})")
    lines.append("  classes (ground truth in each zone's sample_landcover array): "
                 + ", ".join(f"{k} {v}" for k, v in s["classes"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        warnings.filterwarnings("ignore", message="Consolidated metadata")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line unless --debug
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
