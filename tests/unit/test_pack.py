"""The field kit: packing an area of a store (core/pack) over real HTTP, checked against the
source read with zarr-python, the shard files parsed here, GDAL, and the server's request log."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import zarr
from pyproj import Transformer

from tessera_qgis.core.errors import ExtentError, ReadError, YearNotFound
from tessera_qgis.core.pack import PackError, plan_pack, run_pack
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store

from support.servers import RangeHTTPServer

AREA = (-0.036, 52.178, 0.037, 52.222)  # about 5 x 5 km, across utm30 and utm31
ZONES = ("utm30", "utm31")


def crc32c(data: bytes) -> int:
    try:
        import google_crc32c

        return google_crc32c.value(bytes(data))
    except ImportError:  # zarr 3.0 comes with the crc32c package instead
        from crc32c import crc32c as crc

        return crc(bytes(data))


# -- an independent reading of what the area is ----------------------------------------------------
def zone_window(group, zone: str, bbox=AREA) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and cols of the zone's pixels under the bbox (its part in the zone's 6-degree
    strip, edges densified), from the zone's transform: worked out here, not by the pack."""
    number = int(zone[3:])
    west, east = max(bbox[0], -180 + 6 * (number - 1)), min(bbox[2], -180 + 6 * number)
    t = np.linspace(0, 1, 50)
    lons = np.concatenate([west + (east - west) * t, np.full(50, east), east - (east - west) * t, np.full(50, west)])
    lats = np.concatenate([np.full(50, bbox[1]), bbox[1] + (bbox[3] - bbox[1]) * t, np.full(50, bbox[3]),
                           bbox[3] - (bbox[3] - bbox[1]) * t])
    xs, ys = Transformer.from_crs("EPSG:4326", group[zone].attrs["proj:code"], always_xy=True).transform(lons, lats)
    a, _, x0, _, e, y0 = group[zone].attrs["spatial:transform"]
    h, w = group[zone].attrs["spatial:shape"]
    cols = max(0, math.floor((min(xs) - x0) / a)), min(w, math.ceil((max(xs) - x0) / a))
    rows = max(0, math.floor((y0 - max(ys)) / -e)), min(h, math.ceil((y0 - min(ys)) / -e))
    return rows, cols


def shard_index(path: Path, n_local: int) -> np.ndarray:
    """A shard file's index, parsed from its last bytes, crc32c checked."""
    raw = path.read_bytes()[-(16 * n_local + 4):]
    assert crc32c(raw[:-4]) == int.from_bytes(raw[-4:], "little"), f"{path}: index crc32c"
    return np.frombuffer(raw[:-4], "<u8").reshape(n_local, 2)


def sharding(meta: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shard shape, inner chunk shape) from an array's zarr.json."""
    return (tuple(meta["chunk_grid"]["configuration"]["chunk_shape"]),
            tuple(meta["codecs"][0]["configuration"]["chunk_shape"]))


def area_chunks(store: Path, array: str, window, years_idx) -> dict[str, dict[int, bytes]]:
    """The source's inner chunks over the window: {shard key: {local index: chunk bytes}}
    (chunks absent from the source left out), read from the source's own shard files."""
    meta = json.loads((store / array / "zarr.json").read_text())
    shard, inner = sharding(meta)
    per = [s // c for s, c in zip(shard, inner)]
    dims = meta["dimension_names"]
    (r0, r1), (c0, c1) = window
    spans = []
    for d, n, c in zip(dims, meta["shape"], inner):
        spans.append(years_idx if d == "time" else range(r0 // c, -(-r1 // c)) if d == "y"
                     else range(c0 // c, -(-c1 // c)) if d == "x" else range(-(-n // c)))
    out: dict[str, dict[int, bytes]] = {}
    from itertools import product

    for coords in product(*spans):
        sh = tuple(i // p for i, p in zip(coords, per))
        key = f"{array}/c/" + "/".join(map(str, sh))
        path = store / key
        if not path.exists():
            continue
        local = int(np.ravel_multi_index(tuple(i % p for i, p in zip(coords, per)), per))
        offset, nbytes = shard_index(path, int(np.prod(per)))[local]
        if int(offset) == 2**64 - 1:
            continue
        with open(path, "rb") as f:
            f.seek(int(offset))
            out.setdefault(key, {})[local] = f.read(int(nbytes))
    return out


def packed_chunks(pack: Path, array: str) -> dict[str, dict[int, bytes]]:
    """Every inner chunk in a pack's shard files for an array."""
    meta = json.loads((pack / array / "zarr.json").read_text())
    shard, inner = sharding(meta)
    n = int(np.prod([s // c for s, c in zip(shard, inner)]))
    out: dict[str, dict[int, bytes]] = {}
    for path in sorted((pack / array / "c").rglob("*")):
        if path.is_file():
            index = shard_index(path, n)
            data = path.read_bytes()
            key = str(path.relative_to(pack))
            out[key] = {i: data[int(o): int(o) + int(b)] for i, (o, b) in enumerate(index) if int(o) != 2**64 - 1}
    return out


def renumber(chunks: dict[str, dict[int, bytes]], time_map: dict[int, int]) -> dict[str, dict[int, bytes]]:
    """Shard keys c/{t}/... of the source as the pack names them."""
    out = {}
    for key, v in chunks.items():
        head, tail = key.split("/c/")
        parts = tail.split("/")
        parts[0] = str(time_map[int(parts[0])])
        out[f"{head}/c/" + "/".join(parts)] = v
    return out


def assert_bitwise_equal(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype.kind == "f":
        a, b = a.view(f"u{a.dtype.itemsize}"), b.view(f"u{b.dtype.itemsize}")
    np.testing.assert_array_equal(a, b)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def v2big() -> Path:
    """The sample's v2 flavour over the default 8 x 7 km area: depths 4, 16 and 128,
    geoemb:depths, a global_rgb pyramid."""
    from support.stores import cached_sample
    from tessera_qgis.core.sample import SampleSpec

    return cached_sample(SampleSpec(layout="v2"))


@pytest.fixture(scope="module")
def http_pack(sample_store, tmp_path_factory):
    """The default sample packed over HTTP at 30 ms a request: (server log, plan, summary, pack)."""
    from support.servers import RangeHTTPServer

    srv = RangeHTTPServer(sample_store.parent, latency=0.03).start()
    try:
        out = tmp_path_factory.mktemp("pack") / "area.zarr"
        plan = plan_pack(f"{srv.url}/{sample_store.name}", AREA, [2024, 2025], out)
        planned = srv.requests()
        estimate = {"total": plan.total_bytes, "run": plan.bytes_to_fetch, "requests": plan.requests,
                    "text": plan.describe()}
        summary = run_pack(plan)
        yield {"log": srv.requests(), "planned": planned, "estimate": estimate, "summary": summary, "pack": out,
               "url": f"{srv.url}/{sample_store.name}"}
    finally:
        srv.stop()


# -- the pack equals the source ------------------------------------------------------------------
def test_pack_over_http_holds_exactly_the_areas_chunks_bit_for_bit(sample_store, http_pack):
    pack = http_pack["pack"]
    assert pack.is_dir() and not Path(str(pack) + ".part").exists()
    src = zarr.open_group(str(sample_store), mode="r")
    got = zarr.open_group(str(pack), mode="r")
    assert sorted(got.group_keys()) == list(ZONES)
    for zone in ZONES:
        rows, cols = zone_window(src, zone)
        for name in ("embeddings", "scales"):
            want = area_chunks(sample_store, f"{zone}/{name}", (rows, cols), [0, 1])
            assert packed_chunks(pack, f"{zone}/{name}") == want, f"{zone}/{name}: other chunks or bytes"
            a = np.asarray(src[zone][name][..., rows[0]:rows[1], cols[0]:cols[1]])
            b = np.asarray(got[zone][name][..., rows[0]:rows[1], cols[0]:cols[1]])
            assert_bitwise_equal(a, b)
        assert got[zone]["embeddings"].shape == src[zone]["embeddings"].shape
        assert dict(got[zone].attrs) == dict(src[zone].attrs)
        for coord in ("x", "y", "time", "band"):
            assert_bitwise_equal(np.asarray(src[zone][coord][...]), np.asarray(got[zone][coord][...]))
        a = np.asarray(src[zone]["sample_landcover"][:, rows[0]:rows[1], cols[0]:cols[1]])
        np.testing.assert_array_equal(a, np.asarray(got[zone]["sample_landcover"][:, rows[0]:rows[1],
                                                                                  cols[0]:cols[1]]))
    src_attrs, pack_attrs = dict(src.attrs), dict(got.attrs)
    info = pack_attrs.pop("tessera:pack")
    assert pack_attrs == src_attrs
    assert info["years"] == [2024, 2025] and info["areas"] == [list(AREA)] and info["source"] == http_pack["url"]
    # consolidated metadata that zarr-python takes as it is
    assert zarr.open_consolidated(str(pack)).metadata.consolidated_metadata is not None


def test_the_size_estimate_is_what_was_fetched(http_pack):
    estimate, log = http_pack["estimate"], http_pack["log"]
    fetched = sum(r.bytes for r in log)
    assert abs(estimate["total"] - fetched) <= 0.10 * fetched, (estimate["total"], fetched)
    ran = log[len(http_pack["planned"]):]
    assert sum(r.bytes for r in ran) == estimate["run"], "the run fetches exactly the bytes planned"
    assert len(ran) == estimate["requests"]
    assert http_pack["summary"]["chunks_checked"] > 0
    assert "MB to fetch" in estimate["text"] and "at the measured speed" in estimate["text"]


def test_our_reader_opens_the_pack_and_reads_what_the_source_has(sample_store, http_pack):
    pack = open_store(http_pack["pack"])
    src = open_store(sample_store)
    assert pack.years == [2024, 2025] and sorted(pack.zones) == list(ZONES)
    for lon, lat in ((-0.02, 52.19), (0.02, 52.21)):
        for year in (2024, 2025):
            assert pack.pixel(lon, lat, year) == src.pixel(lon, lat, year)
    # a layer of the pack opens on the area, not on the whole zone grid
    from tessera_qgis.core.region import data_extent

    w, s, e, n = data_extent(pack, "EPSG:4326")
    assert w <= AREA[0] and s <= AREA[1] and e >= AREA[2] and n >= AREA[3]
    assert max(AREA[0] - w, AREA[1] - s, e - AREA[2], n - AREA[3]) < 0.005  # UTM grids turn about 2.4 degrees here
    assert data_extent(src, "EPSG:4326")[0] < AREA[0] - 0.02, "the source's zones reach further"


@pytest.mark.gdal
def test_gdal_opens_the_pack_with_its_georeferencing(sample_store, http_pack):
    import subprocess

    from osgeo import gdal

    gdal.UseExceptions()
    pack = http_pack["pack"]
    src = zarr.open_group(str(sample_store), mode="r")
    rows, cols = zone_window(src, "utm31")
    ds = gdal.OpenEx(str(pack), gdal.OF_MULTIDIM_RASTER)
    arr = ds.GetRootGroup().OpenGroup("utm31").OpenMDArray("embeddings")
    got = arr.ReadAsArray(array_start_idx=[1, 0, rows[0], cols[0]], count=[1, 128, 40, 30])
    np.testing.assert_array_equal(got, src["utm31"]["embeddings"][1:2, :, rows[0]:rows[0] + 40,
                                                                  cols[0]:cols[0] + 30])
    info = subprocess.run(["gdalinfo", f'ZARR:"{pack}":/utm30/scales'], capture_output=True, text=True)
    a, _, x0, _, e, y0 = src["utm30"].attrs["spatial:transform"]
    assert info.returncode == 0, info.stderr
    assert f"Origin = ({x0:.15f},{y0:.15f})" in info.stdout and f"Pixel Size = ({a:.15f},{e:.15f})" in info.stdout


# -- resuming ------------------------------------------------------------------------------------
def ranges_of(log) -> list[tuple[str, int, int]]:
    out = []
    for r in log:
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", r.range or "")
        if m and r.status == 206:
            out.append((r.path, int(m.group(1)), int(m.group(2)) + 1))
    return out


class KillAfter:
    """The server killed half-way: the request for a chunk object after the first `n` has its
    connection reset while the server stops (every later connection is refused)."""

    def __init__(self, n: int, server) -> None:
        import threading

        self.n, self.seen, self.lock, self.server, self.stall = n, 0, threading.Lock(), server, 0

    def take(self, path: str, has_range: bool = True, rng: str | None = None) -> str | None:
        import threading

        if "/c/" not in path:
            return None
        with self.lock:
            self.seen += 1
            if self.seen == self.n + 1:  # stopped from another thread: this one is the server's
                threading.Thread(target=self.server.stop, daemon=True).start()
            return "reset" if self.seen > self.n else None


def test_an_interrupted_pack_resumes_and_fetches_only_what_is_missing(sample_store, range_server, tmp_path,
                                                                     request):
    first = range_server(sample_store.parent, latency=0.03)
    url = f"{first.url}/{sample_store.name}"
    out = tmp_path / "area.zarr"
    opts = StoreOptions(retries=0)
    plan = plan_pack(url, AREA, [2024, 2025], out, options=opts)
    first.faults = KillAfter(plan.requests // 2, first)
    with pytest.raises(ReadError):
        run_pack(plan)
    first._thread.join(60)  # the killed server is gone (its port is free)
    assert not first._thread.is_alive()
    srv = RangeHTTPServer(sample_store.parent, latency=0.03)  # the server back, at the same address
    srv.port = first.port
    srv.start()
    request.addfinalizer(srv.stop)
    part = tmp_path / "area.zarr.part"
    assert part.is_dir() and not out.exists(), "an interrupted pack is not renamed into place"
    # What the first run stored, from the .part folder itself; what the area needs, from the source.
    stored = {}
    for f in (part / "_pack" / "pieces").rglob("*"):
        if f.is_file() and not f.name.startswith("."):  # not a temporary file
            stored[(str(f.parent.relative_to(part / "_pack" / "pieces")), int(f.name.split(".")[0]))] = f.stat().st_size
    src = zarr.open_group(str(sample_store), mode="r")
    needed = {}
    for zone in ZONES:
        for name in ("embeddings", "scales"):
            for key, chunks in area_chunks(sample_store, f"{zone}/{name}", zone_window(src, zone), [0, 1]).items():
                for local, data in chunks.items():
                    needed[(key, local)] = len(data)
    assert stored and set(stored) < set(needed), "the first run stopped half-way"
    missing = {k: v for k, v in needed.items() if k not in stored}

    again = plan_pack(url, AREA, [2024, 2025], out, options=opts)
    assert again.resumed_bytes >= sum(stored.values())
    summary = run_pack(again)
    log = srv.requests()
    assert not any((r.range or "").startswith("bytes=-") for r in log), "no shard index is fetched again"
    whole = [r.path for r in log if not r.range]
    assert all(p.endswith("/zarr.json") or "/time/" in p for p in whole), whole  # opening the store only
    prefix = f"/{sample_store.name}/"
    # the ranges asked for are exactly the chunks that were missing, each once
    asked = sorted(ranges_of(log))
    want = []
    for (key, local), _ in missing.items():
        meta = json.loads((sample_store / key.split("/c/")[0] / "zarr.json").read_text())
        shard, inner = sharding(meta)
        n = int(np.prod([s // c for s, c in zip(shard, inner)]))
        o, b = (int(v) for v in shard_index(sample_store / key, n)[local])
        want.append((prefix + key, o, o + b))
    covered = sorted(want)
    merged = []
    for path, a, b in covered:  # adjacent chunks are asked for in one request
        if merged and merged[-1][0] == path and merged[-1][2] == a:
            merged[-1] = (path, merged[-1][1], b)
        else:
            merged.append((path, a, b))
    spans = {(p, a, b) for p, a, b in asked}
    assert sum(b - a for _, a, b in asked) == sum(missing.values())
    for path, a, b in asked:
        assert any(p == path and pa <= a and b <= pb for p, pa, pb in merged), (path, a, b)
    assert len(spans) == len(asked), "no range asked twice"
    assert summary["resumed_bytes"] > 0
    for zone in ZONES:
        assert packed_chunks(out, f"{zone}/embeddings") == area_chunks(sample_store, f"{zone}/embeddings",
                                                                        zone_window(src, zone), [0, 1])


def test_a_cancelled_pack_keeps_its_part_folder(sample_store, tmp_path):
    plan = plan_pack(sample_store, AREA, [2024], tmp_path / "a.zarr", probe=False)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 3

    from tessera_qgis.core.errors import Cancelled

    with pytest.raises(Cancelled):
        run_pack(plan, cancel=cancel)
    assert (tmp_path / "a.zarr.part" / "_pack" / "manifest.json").is_file() and not (tmp_path / "a.zarr").exists()
    with pytest.raises(PackError, match="another store, area"):
        plan_pack(sample_store, AREA, [2025], tmp_path / "a.zarr")



def test_a_chunk_damaged_on_disk_before_assembly_is_caught_and_fetched_again(sample_store, tmp_path):
    out = tmp_path / "d.zarr"
    calls = []

    def stop_soon() -> bool:
        calls.append(1)
        return len(calls) > 20

    from tessera_qgis.core.errors import Cancelled

    with pytest.raises(Cancelled):
        run_pack(plan_pack(sample_store, AREA, [2024], out, probe=False), cancel=stop_soon)
    piece = next(f for f in (tmp_path / "d.zarr.part" / "_pack" / "pieces").rglob("*") if f.is_file())
    data = bytearray(piece.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same length, other bytes
    piece.write_bytes(bytes(data))
    with pytest.raises(PackError, match="damaged on disk"):
        run_pack(plan_pack(sample_store, AREA, [2024], out))
    assert not out.exists() and not piece.exists()
    run_pack(plan_pack(sample_store, AREA, [2024], out))
    src = zarr.open_group(str(sample_store), mode="r")
    for zone in ZONES:
        assert packed_chunks(out, f"{zone}/embeddings") == area_chunks(sample_store, f"{zone}/embeddings",
                                                                        zone_window(src, zone), [0])

# -- years, depths, the preview ------------------------------------------------------------------
def test_a_subset_of_years_renumbers_the_time_axis(sample_store, tmp_path):
    out = tmp_path / "y.zarr"
    run_pack(plan_pack(sample_store, AREA, [2025], out))
    src = zarr.open_group(str(sample_store), mode="r")
    got = zarr.open_group(str(out), mode="r")
    for zone in ZONES:
        assert list(got[zone]["time"][...]) == [2025]
        assert got[zone]["embeddings"].shape[0] == 1 and got[zone]["scales"].shape[0] == 1
        rows, cols = zone_window(src, zone)
        for name in ("embeddings", "scales"):
            want = renumber(area_chunks(sample_store, f"{zone}/{name}", (rows, cols), [1]), {1: 0})
            assert packed_chunks(out, f"{zone}/{name}") == want
        assert_bitwise_equal(np.asarray(src[zone]["scales"][1, rows[0]:rows[1], cols[0]:cols[1]]),
                             np.asarray(got[zone]["scales"][0, rows[0]:rows[1], cols[0]:cols[1]]))
    assert open_store(out).years == [2025]


def test_depth_4_keeps_only_embeddings_d4_scales_and_the_preview_over_the_area(v2big, tmp_path):
    out = tmp_path / "d4.zarr"
    run_pack(plan_pack(v2big, AREA, [2024, 2025], out, depth=4))
    src = zarr.open_group(str(v2big), mode="r")
    got = zarr.open_group(str(out), mode="r")
    assert got.attrs["geoemb:depths"] == [{"dimensions": 4, "array": "embeddings_d4"}]
    for zone in ZONES:
        names = sorted(got[zone].array_keys())
        assert names == ["band_d4", "embeddings_d4", "sample_landcover", "scales", "time", "x", "y"], names
        rows, cols = zone_window(src, zone)
        for name in ("embeddings_d4", "scales"):
            assert packed_chunks(out, f"{zone}/{name}") == area_chunks(v2big, f"{zone}/{name}", (rows, cols), [0, 1])
        assert_bitwise_equal(np.asarray(src[zone]["embeddings_d4"][:, :, rows[0]:rows[1], cols[0]:cols[1]]),
                             np.asarray(got[zone]["embeddings_d4"][:, :, rows[0]:rows[1], cols[0]:cols[1]]))
    levels = sorted(src["global_rgb"].group_keys(), key=int)
    assert len(levels) == 10
    for n in levels:
        res = 0.0001 * 2 ** int(n)
        r0, r1 = math.floor((90 - AREA[3]) / res), math.ceil((90 - AREA[1]) / res)
        c0, c1 = math.floor((180 + AREA[0]) / res), math.ceil((180 + AREA[2]) / res)
        a = np.asarray(src["global_rgb"][n]["rgb"][r0:r1, c0:c1])
        np.testing.assert_array_equal(a, np.asarray(got["global_rgb"][n]["rgb"][r0:r1, c0:c1]))
        assert a[..., 3].any(), "the preview has data over the area"
        tiles = {p.relative_to(out / "global_rgb" / n / "rgb" / "c").as_posix()
                 for p in (out / "global_rgb" / n / "rgb" / "c").rglob("*") if p.is_file()}
        want = {f"{r}/{c}/0" for r in range(r0 // 512, -(-r1 // 512)) for c in range(c0 // 512, -(-c1 // 512))
                if (v2big / "global_rgb" / n / "rgb" / "c" / str(r) / str(c) / "0").is_file()}
        assert tiles == want, "only the preview tiles over the area"
    assert dict(got["global_rgb"].attrs) == dict(src["global_rgb"].attrs)


def test_depth_16_over_http(v2big, range_server, tmp_path):
    srv = range_server(v2big.parent, latency=0.03)
    out = tmp_path / "d16.zarr"
    plan = plan_pack(f"{srv.url}/{v2big.name}", AREA, [2024], out, depth=16)
    run_pack(plan)
    got = zarr.open_group(str(out), mode="r")
    assert "embeddings" not in got["utm30"] and "embeddings_d4" not in got["utm30"]
    src = zarr.open_group(str(v2big), mode="r")
    rows, cols = zone_window(src, "utm30")
    assert_bitwise_equal(np.asarray(src["utm30"]["embeddings_d16"][0, :, rows[0]:rows[1], cols[0]:cols[1]]),
                         np.asarray(got["utm30"]["embeddings_d16"][0, :, rows[0]:rows[1], cols[0]:cols[1]]))



def test_zones_keep_the_years_they_have(partial_year_store, tmp_path):
    out = tmp_path / "p.zarr"
    area = (-0.01, 52.192, 0.01, 52.2)  # across the meridian: utm30 has 2024 and 2025, utm31 2024 only
    run_pack(plan_pack(partial_year_store, area, [2024, 2025], out))
    got = zarr.open_group(str(out), mode="r")
    assert list(got["utm30"]["time"][...]) == [2024, 2025] and list(got["utm31"]["time"][...]) == [2024]
    assert got["utm31"]["embeddings"].shape[0] == 1
    assert open_store(out).info()["partial_years"] == {2025: ["utm30"]}
    with pytest.raises(PackError, match="2025 is not in the zones over this area"):
        plan_pack(partial_year_store, (0.003, 52.192, 0.01, 52.2), [2025], tmp_path / "q.zarr")


def test_the_earlier_per_year_layout_packs_too(per_year_store, tmp_path):
    out = tmp_path / "2024.zarr"  # the year is in the name, as in the earlier layout
    src = per_year_store / "2024.zarr"
    run_pack(plan_pack(src, (-0.01, 52.192, 0.01, 52.2), [2024], out))
    a, b = open_store(src), open_store(out)
    assert b.layout == "per_year" and b.years == [2024]
    for lon in (-0.005, 0.005):
        assert b.pixel(lon, 52.196, 2024) == a.pixel(lon, 52.196, 2024)


@pytest.mark.parametrize("layout, depth", [("v2", 4), ("v2", None), ("v1", None), ("v1.1-dclimate", None)])
def test_the_published_layouts_pack_whatever_their_zones_hold(layout, depth, v2_store, v1_store, dclimate_store,
                                                              tmp_path):
    """The generator's published layouts (observation counts, depths, previews, out-of-range
    scales): every array of a zone is packed over the area, chunk for chunk."""
    store = {"v2": v2_store, "v1": v1_store, "v1.1-dclimate": dclimate_store}[layout]
    area = (-0.01, 52.193, 0.01, 52.202)
    out = tmp_path / "p.zarr"
    run_pack(plan_pack(store, area, [2025], out, depth=depth))
    src, got = zarr.open_group(str(store), mode="r"), zarr.open_group(str(out), mode="r")
    t = list(src["utm30"]["time"][...]).index(2025)
    for zone in ZONES:
        rows, cols = zone_window(src, zone, area)
        names = sorted(got[zone].array_keys())
        if depth == 4:
            assert "embeddings" not in names and "embeddings_d16" not in names and "embeddings_d4" in names
        else:
            assert names == sorted(src[zone].array_keys())
        for name in names:
            meta = json.loads((store / zone / name / "zarr.json").read_text())
            dims = meta["dimension_names"]
            if meta["codecs"][0]["name"] == "sharding_indexed":
                want = renumber(area_chunks(store, f"{zone}/{name}", (rows, cols), [t]), {t: 0})
                assert packed_chunks(out, f"{zone}/{name}") == want, f"{zone}/{name}"
            else:
                sel = tuple(slice(t, t + 1) if d == "time" else slice(*rows) if d == "y" else slice(*cols)
                            if d == "x" else slice(None) for d in dims)
                a = np.asarray(src[zone][name][sel])
                b = np.asarray(got[zone][name][tuple(slice(0, 1) if d == "time" else s for d, s in zip(dims, sel))])
                assert_bitwise_equal(a, b)
    attrs = dict(got.attrs)
    assert attrs.pop("tessera:pack")["depth"] == depth
    want = dict(src.attrs)
    if depth:
        want["geoemb:depths"] = [d for d in want["geoemb:depths"] if d["dimensions"] == depth]
    assert attrs == want
    if "global_rgb" in src:
        levels = sorted(src["global_rgb"].group_keys(), key=int)
        assert sorted(got["global_rgb"].group_keys(), key=int) == levels
        for n in levels:
            res = 0.0001 * 2 ** int(n)
            r0, r1 = math.floor((90 - area[3]) / res), math.ceil((90 - area[1]) / res)
            c0, c1 = math.floor((180 + area[0]) / res), math.ceil((180 + area[2]) / res)
            np.testing.assert_array_equal(np.asarray(src["global_rgb"][n]["rgb"][r0:r1, c0:c1]),
                                          np.asarray(got["global_rgb"][n]["rgb"][r0:r1, c0:c1]))

# -- refused, and nothing written ----------------------------------------------------------------
def test_depth_on_a_store_without_depths_is_refused(sample_store, tmp_path):
    with pytest.raises(PackError, match="single depth"):
        plan_pack(sample_store, AREA, [2024], tmp_path / "d.zarr", depth=4)
    assert list(tmp_path.iterdir()) == []


def test_a_depth_the_store_lacks_is_refused(v2big, tmp_path):
    with pytest.raises(PackError, match="depth 8 is not in this store; it has 4, 16, 128"):
        plan_pack(v2big, AREA, [2024], tmp_path / "d.zarr", depth=8)


@pytest.mark.parametrize("area, years, error, words", [
    ((10.0, 10.0, 10.05, 10.05), [2024], PackError, "outside the store's data"),
    (AREA, [2019], YearNotFound, "2019 is not in this store"),
    ((0.03, 52.2, -0.03, 52.21), [2024], ExtentError, "inverted"),
    ((0.0, 85.0, 0.1, 86.0), [2024], ExtentError, "UTM latitudes"),
    ((200.0, 52.2, 201.0, 52.21), [2024], PackError, "lon/lat"),
    (AREA, [], PackError, "no years"),
])
def test_bad_input_is_refused_before_anything_is_written(sample_store, sample_http, tmp_path, area, years, error,
                                                         words):
    sample_http.reset()
    with pytest.raises(error, match=words):
        plan_pack(sample_http.store_url, area, years, tmp_path / "bad.zarr")
    assert list(tmp_path.iterdir()) == []
    assert not any("/c/" in r.path and "/time/" not in r.path for r in sample_http.requests()), \
        "no chunk is fetched for a refused pack"


def test_an_existing_output_is_refused(sample_store, tmp_path):
    (tmp_path / "x.zarr").mkdir()
    with pytest.raises(PackError, match="exists"):
        plan_pack(sample_store, AREA, [2024], tmp_path / "x.zarr")


# -- the command line ----------------------------------------------------------------------------
def cli(*args):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-m", "tessera_qgis", *args], capture_output=True, text=True, cwd=repo,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo), "PROJ_DATA": "/usr/share/proj"})


def test_cli_pack_estimates_then_packs(sample_store, tmp_path):
    out = tmp_path / "cli.zarr"
    bbox = ",".join(map(str, AREA))
    dry = cli("pack", str(sample_store), f"--bbox={bbox}", "--years", "2024", "--out", str(out), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    estimate = json.loads(dry.stdout)
    assert estimate["bytes_to_fetch"] > 1e6 and estimate["zones"] == list(ZONES) and not out.exists()
    res = cli("pack", str(sample_store), f"--bbox={bbox}", "--years", "2024", "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    assert "MB to fetch" in res.stderr and "at the measured speed" in res.stderr and "MB (" in res.stderr
    summary = json.loads(res.stdout)
    assert summary["path"] == str(out) and summary["chunks_checked"] > 0
    assert list(zarr.open_group(str(out), mode="r")["utm30"]["time"][...]) == [2024]


def test_cli_pack_refuses_a_depth_in_one_line(sample_store, tmp_path):
    res = cli("pack", str(sample_store), "--bbox=" + ",".join(map(str, AREA)), "--years", "2024", "--depth", "4",
              "--out", str(tmp_path / "d.zarr"))
    assert res.returncode == 1 and res.stderr.startswith("error: this store has a single depth")
    assert len(res.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []
