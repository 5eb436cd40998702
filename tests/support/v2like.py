"""A v2-like store made from a sample store with zarr-python: what v2 stores add to the
current layout (embeddings_d4 / _d16 as byte-exact prefixes of `embeddings` with the
published chunking, their band coordinates, `geoemb:depths`, and a three-level `global_rgb`
pyramid with tiles only over the sample). For the pack tests and figures until the sample
generator writes v2 stores itself."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

DEPTH_CHUNK = {4: 128, 16: 64}  # inner chunk side of each depth (128 -> 32)
LEVELS = 3


def make_v2_like(sample: Path, dst: Path, bbox=(-0.06, 52.17, 0.06, 52.23)) -> Path:
    """Copy `sample` to `dst` and add the v2 arrays and attributes (dst must not exist)."""
    import zarr
    from zarr.codecs import BloscCodec

    shutil.copytree(sample, dst)
    root = zarr.open_group(str(dst), mode="r+")
    blosc = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    for zone in sorted(root.group_keys()):
        g = root[zone]
        emb = g["embeddings"]
        t, _, h, w = emb.shape
        meta = json.loads((sample / zone / "embeddings" / "zarr.json").read_text())
        shard = meta["chunk_grid"]["configuration"]["chunk_shape"][-1]
        full = emb[...]
        for d, side in DEPTH_CHUNK.items():
            arr = g.create_array(f"embeddings_d{d}", shape=(t, d, h, w), dtype="int8", chunks=(1, d, side, side),
                                 shards=(1, d, shard, shard), fill_value=0, compressors=blosc,
                                 dimension_names=["time", f"band_d{d}", "y", "x"])
            arr[...] = full[:, :d]
            coord = g.create_array(f"band_d{d}", shape=(d,), dtype="int32", chunks=(d,), dimension_names=[f"band_d{d}"])
            coord[...] = np.arange(d, dtype="int32")
    layout = []
    pre = root.create_group("global_rgb")
    for n in range(LEVELS):
        res = 0.0001 * 2 ** n
        shape = (1_800_000 // 2 ** n, 3_600_000 // 2 ** n)
        layout.append({"asset": str(n), "spatial:shape": list(shape),
                       "spatial:transform": [res, 0.0, -180.0, 0.0, -res, 90.0]})
        lg = pre.create_group(str(n))
        rgb = lg.create_array("rgb", shape=(*shape, 4), dtype="uint8", chunks=(512, 512, 4), fill_value=0,
                              compressors=BloscCodec(cname="zstd", clevel=3), dimension_names=["lat", "lon", "band"])
        r0, r1 = math.floor((90 - bbox[3]) / res), math.ceil((90 - bbox[1]) / res)
        c0, c1 = math.floor((180 + bbox[0]) / res), math.ceil((180 + bbox[2]) / res)
        yy, xx = np.mgrid[r0:r1, c0:c1]
        rgb[r0:r1, c0:c1] = np.stack([yy % 251, xx % 241, (yy + xx + n) % 256, np.full_like(yy, 255)],
                                     axis=-1).astype("uint8")
        band = lg.create_array("band", shape=(4,), dtype="int32", chunks=(4,), dimension_names=["band"])
        band[...] = np.arange(4, dtype="int32")
    pre.attrs.update({"proj:code": "EPSG:4326", "multiscales": {"layout": layout, "resampling_method": "mean"}})
    root.attrs["geoemb:depths"] = [{"dimensions": d, "array": f"embeddings_d{d}"} for d in DEPTH_CHUNK] + [
        {"dimensions": 128, "array": "embeddings"}]
    zarr.consolidate_metadata(str(dst))
    return dst
