#!/usr/bin/env python3
"""Field-kit figures: bytes and time to pack a 5 x 5 km area at 128, 16 and 4 dimensions.

Each pack runs over HTTP (tests/support RangeHTTPServer on 127.0.0.1, 30 ms added to every
request), from opening the store to the checked, renamed pack. Measured: bytes and requests
from the server's log, wall time, the plan's estimate (bytes and seconds) and the pack's size
on disk. Results go to build/bench/pack.json and a Markdown table on stdout.

Stores: the default sample (legacy layout, 128 dimensions) and its v2 flavour (depths 4, 16 and
128, global_rgb), both 256 px shards over the same area.

    python scripts/bench_pack.py
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "bench"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
warnings.filterwarnings("ignore", message="Consolidated metadata")

from support.servers import RangeHTTPServer  # noqa: E402
from support.stores import cached_sample  # noqa: E402

from tessera_qgis.core.pack import plan_pack, run_pack  # noqa: E402
from tessera_qgis.core.sample import SampleSpec  # noqa: E402

AREA = (-0.036, 52.178, 0.037, 52.222)  # about 5 x 5 km (5.0 km x 4.9 km), across utm30 and utm31
LATENCY = 0.03


def one(store: Path, years: list[int], depth: int | None, work: Path) -> dict:
    out = work / f"pack-{depth}-{len(years)}.zarr"
    srv = RangeHTTPServer(store.parent, latency=LATENCY).start()
    try:
        t0 = time.perf_counter()
        plan = plan_pack(f"{srv.url}/{store.name}", AREA, years, out, depth=depth)
        estimate = {"bytes": plan.total_bytes, "seconds": round(plan.seconds(), 2), "requests": plan.requests}
        planned = time.perf_counter() - t0
        summary = run_pack(plan)
        wall = time.perf_counter() - t0
        log = srv.requests()
    finally:
        srv.stop()
    shutil.rmtree(out, ignore_errors=True)
    return {"depth": depth or 128, "years": years, "estimate": estimate, "plan_seconds": round(planned, 2),
            "seconds": round(wall, 2), "bytes": sum(r.bytes for r in log), "requests": len(log),
            "bytes_on_disk": summary["bytes_on_disk"], "chunks_checked": summary["chunks_checked"]}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-pack-", dir=OUT))
    try:
        sample = cached_sample()
        v2 = cached_sample(SampleSpec(layout="v2"))
        rows = [one(sample, [2024], None, work), one(sample, [2024, 2025], None, work)]
        rows += [one(v2, [2024], d, work) for d in (128, 16, 4)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows[0]["store"] = rows[1]["store"] = "sample"
    for r in rows[2:]:
        r["store"] = "sample, v2 flavour"
    (OUT / "pack.json").write_text(json.dumps(rows, indent=1))
    print(f"Pack of a 5 x 5 km area {AREA} over HTTP at {LATENCY * 1000:.0f} ms a request (127.0.0.1)\n")
    print("| store | depth | years | fetched | requests | estimate | time | pack on disk |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        e = r["estimate"]
        print(f"| {r['store']} | {r['depth']} | {len(r['years'])} | {r['bytes'] / 1e6:.1f} MB | {r['requests']} | "
              f"{e['bytes'] / 1e6:.1f} MB, {e['seconds']:.1f} s | {r['seconds']:.1f} s | "
              f"{r['bytes_on_disk'] / 1e6:.1f} MB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
