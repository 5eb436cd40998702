#!/usr/bin/env python3
"""`make demo`: the main job on the bundled sample store, end to end.

Builds the sample store (once; reused while the generator is unchanged) and prints what it
holds. Later steps (rendering, export) are added as the plugin grows.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", message="Consolidated metadata")

from tessera_qgis.cli import format_sample_summary  # noqa: E402
from tessera_qgis.core import sample  # noqa: E402


def build_sample(out: Path) -> dict | None:
    """Generate the sample store unless an up-to-date one is there; returns its summary."""
    stamp = hashlib.sha256(Path(sample.__file__).read_bytes()).hexdigest()[:16]
    store = out / "sample.zarr"
    marker = out / "sample.stamp"
    if store.exists() and marker.exists() and marker.read_text() == stamp:
        return None
    shutil.rmtree(store, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    summary = sample.generate(store, sample.SampleSpec())
    marker.write_text(stamp)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "build" / "demo")
    args = ap.parse_args()
    t0 = time.perf_counter()
    summary = build_sample(args.out)
    store = args.out / "sample.zarr"
    if summary is None:
        print(f"Sample store up to date: {store}")
        import zarr

        g = zarr.open_group(str(store), mode="r")
        for name in sorted(g.group_keys()):
            z = g[name]
            print(f"  {name}: {z.attrs['proj:code']}, {z['embeddings'].shape} int8 (time, band, y, x), "
                  f"years {z['time'][:].tolist()}")
    else:
        print(format_sample_summary(summary))
    print(f"demo finished in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
