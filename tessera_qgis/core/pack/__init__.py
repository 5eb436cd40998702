"""The field kit: a study area taken offline as a portable store (a "pack").

A pack is a real Zarr v3 store in the published layout: the same root and zone attributes
(global and per-zone stretches; `geoemb:depths` rewritten to the depth packed), consolidated
metadata, the coordinate arrays, the `global_rgb` preview tiles over the area, and the shards
of the area holding only its inner chunks. Array metadata is the source's, shapes included,
so pixel coordinates and `spatial:transform` stay valid and readers see the same grid; the
time axis holds only the years packed (chunk keys `c/{t}/...` renumbered). Inner chunks are
copied as the compressed bytes the source holds (never decoded and encoded again) and shards
are written here the way the sharding codec lays them out: the chunks, then an index of
(offset, length) per inner chunk (2^64-1 for chunks not in the pack) with its crc32c.

Two steps, so a user can be told the cost before anything is written:

1. `plan_pack()` (plan.py) opens the source, finds the shards and inner chunks of every
   array over the area (`region.plan`), fetches those shards' indexes (crc32c checked) and
   the small unsharded objects (coordinates, preview tiles), and measures the speed.
   Latency: the round trip of the root `zarr.json`. Throughput: a probe, the first wave of
   chunk requests (at most PROBE_BYTES; its bytes are kept and written by the run). It
   writes nothing, and refuses bad input (area outside the data, a year or depth the store
   does not have, an output that exists) with a message.
2. `run_pack()` (run.py) writes into `OUT.part` (partdir.py): fetched pieces first (each
   inner chunk a file named with its length and crc32c, written atomically), so an
   interrupted pack resumes and fetches only what is missing; then the shards, metadata and
   coordinates; then it checks every chunk and renames `OUT.part` to `OUT` when all is well.

What "checked" means: the stores carry no per-chunk checksum (only the shard index has a
crc32c). Each shard index is checked against its crc32c when fetched; each inner chunk's
length must equal the length in that index; its crc32c is recorded when it arrives and every
chunk in the finished pack must have that crc32c (so nothing changed between the network and
the pack's shard files); and zarr-python must decode every array of the pack over the area
(so each chunk decodes to its full shape).
"""
from .layout import PackError
from .plan import PackPlan, plan_pack
from .run import PackProgress, pack, run_pack

__all__ = ["PackError", "PackPlan", "PackProgress", "pack", "plan_pack", "run_pack"]
