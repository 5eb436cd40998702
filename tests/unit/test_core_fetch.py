"""How the core fetches: request counts and bytes from the server's own log."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from tessera_qgis.core.errors import ReadError
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store

INDEX_BYTES = 8 * 8 * 16 + 4  # 256 px shards of 32 px chunks: 64 entries + crc32c


def shard_index(path: Path) -> np.ndarray:
    raw = path.read_bytes()[-INDEX_BYTES:]
    return np.frombuffer(raw[:-4], dtype="<u8").reshape(8, 8, 2)


def minimum_bytes(store_dir: Path, zone: str, t: int, rows, cols) -> tuple[int, int]:
    """(compressed bytes of the intersecting inner chunks + shard indexes, index count)."""
    total, indexes = 0, 0
    for array in ("embeddings", "scales"):
        shards: dict = {}
        for cr in range(rows[0] // 32, -(-rows[1] // 32)):
            for cc in range(cols[0] // 32, -(-cols[1] // 32)):
                shards.setdefault((cr // 8, cc // 8), []).append((cr % 8, cc % 8))
        for (sr, sc), chunks in shards.items():
            key = [str(t), "0", str(sr), str(sc)] if array == "embeddings" else [str(t), str(sr), str(sc)]
            path = store_dir / zone / array / "c" / Path(*key)
            idx = shard_index(path)
            total += INDEX_BYTES
            indexes += 1
            for r, c in chunks:
                if idx[r, c, 0] != 2**64 - 1:
                    total += int(idx[r, c, 1])
    return total, indexes


def test_window_fetches_exactly_the_intersecting_chunks(sample_store, sample_http):
    store = open_store(sample_http.store_url)
    sample_http.reset()
    rows, cols = (200, 330), (100, 300)  # crosses shard borders in both directions
    store.zones["utm31"].read(2024, rows, cols)
    log = sample_http.requests()
    want, n_index = minimum_bytes(sample_store, "utm31", 0, rows, cols)
    got = sum(r.bytes for r in log)
    assert got == want, "no byte more than the chunks and indexes the window needs"
    assert sum(1 for r in log if r.range.startswith("bytes=-")) == n_index, "each shard index read once"
    n_chunks = 2 * len(range(200 // 32, -(-330 // 32))) * len(range(100 // 32, -(-300 // 32)))
    assert len(log) - n_index < n_chunks, "adjacent chunk ranges were merged"
    # Warm: the same window again makes no request at all.
    sample_http.reset()
    again = store.zones["utm31"].read(2024, rows, cols)
    assert sample_http.stats()["requests"] == 0
    g = zarr.open_group(str(sample_store), mode="r")["utm31"]
    np.testing.assert_array_equal(again.scales, g["scales"][0, 200:330, 100:300])


def test_single_pixel_cold_and_warm(sample_http):
    store = open_store(sample_http.store_url)
    sample_http.reset()
    store.pixel(0.02, 52.2, 2024)
    log = sample_http.requests()
    assert len(log) == 4, "an index and a chunk per array"
    assert sorted(r.range.startswith("bytes=-") for r in log) == [False, False, True, True]
    sample_http.reset()
    store.pixel(0.02, 52.2, 2024)
    store.pixel(0.02005, 52.2, 2024)  # a neighbour in the same chunk
    assert sample_http.stats()["requests"] == 0
    sample_http.reset()
    px = store.pixel(0.045, 52.18, 2024)  # same zone, another shard's chunk: index + chunk per array
    assert px["valid"] and sample_http.stats()["requests"] <= 4


def test_nodata_chunks_fetch_no_embeddings(sample_store, sample_http):
    """Scales are read first: where every pixel of a chunk is nodata (the lake, water NaN, or
    the unembedded +inf strip) no embeddings chunk is fetched."""
    store = open_store(sample_http.store_url)
    g = zarr.open_group(str(sample_store), mode="r")["utm31"]
    s = g["scales"][1]
    # Find a 64x64 block, chunk aligned, that is all nodata inside the zone's data area.
    block = None
    for r in range(0, s.shape[0] - 64, 32):
        for c in range(0, s.shape[1] - 64, 32):
            sub = s[r:r + 64, c:c + 64]
            if not np.isfinite(sub).any() and (g["sample_landcover"][1, r:r + 64, c:c + 64] > 0).all():
                block = (r, c)
                break
        if block:
            break
    assert block is not None, "the sample has a nodata area with land-cover (the unembedded strip)"
    sample_http.reset()
    win = store.zones["utm31"].read(2025, (block[0], block[0] + 64), (block[1], block[1] + 64))
    assert not win.valid.any()
    emb = [r for r in sample_http.requests() if "/embeddings/" in r.path]
    assert all(r.range.startswith("bytes=-") for r in emb), "only the embeddings' shard index, no chunk"


def test_concurrent_reads_of_the_same_chunks_are_fetched_once(sample_store, range_server):
    srv = range_server(sample_store.parent, latency=0.15)
    store = open_store(f"{srv.url}/{sample_store.name}")
    srv.reset()
    results, errors = [], []

    def read():
        try:
            results.append(store.zones["utm30"].read(2024, (300, 400), (200, 300)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    keys = [(r.path, r.range) for r in srv.requests()]
    assert len(keys) == len(set(keys)), "no range was requested twice"
    for other in results[1:]:
        np.testing.assert_array_equal(other.q, results[0].q)


def test_disk_cache_serves_a_seen_area_offline(sample_store, range_server, tmp_path):
    srv = range_server(sample_store.parent)
    url = f"{srv.url}/{sample_store.name}"
    opts = StoreOptions(cache_dir=str(tmp_path / "cache"), timeout=5)
    online = open_store(url, opts)
    seen = online.zones["utm30"].read(2025, (100, 180), (300, 360))
    px = online.pixel(-0.03, 52.2, 2024)
    srv.stop()  # the network is gone
    offline = open_store(url, opts)
    assert offline.offline and offline.years == [2024, 2025]
    again = offline.zones["utm30"].read(2025, (100, 180), (300, 360))
    np.testing.assert_array_equal(again.q, seen.q)
    np.testing.assert_array_equal(again.scales, seen.scales)
    assert offline.pixel(-0.03, 52.2, 2024) == px
    with pytest.raises(ReadError, match="cannot connect"):
        offline.zones["utm31"].read(2025, (100, 180), (300, 360))


def test_s3_reads_equal_local(sample_store, sample_s3):
    url, opts = sample_s3
    store = open_store(url, StoreOptions(key=opts["key"], secret=opts["secret"],
                                         endpoint_url=opts["client_kwargs"]["endpoint_url"]))
    local = open_store(sample_store)
    a = store.zones["utm31"].read(2025, (250, 330), (400, 512))
    b = local.zones["utm31"].read(2025, (250, 330), (400, 512))
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.scales, b.scales)
    assert store.stats()["requests"] > 0
    assert store.pixel(-0.03, 52.2, 2024) == local.pixel(-0.03, 52.2, 2024)


def test_corrupt_shard_index_is_reported_not_shown(sample_store, tmp_path, range_server):
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(sample_store, copy)
    shard = copy / "utm31" / "scales" / "c" / "0" / "1" / "0"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    store = open_store(copy)
    with pytest.raises(ReadError, match="checksum mismatch"):
        store.zones["utm31"].read(2024, (256, 300), (0, 40))
    # A corrupt chunk body: the codec fails and says so.
    shard = copy / "utm31" / "scales" / "c" / "0" / "0" / "0"
    idx = shard_index(shard)
    off, n = int(idx[3, 3, 0]), int(idx[3, 3, 1])
    data = bytearray(shard.read_bytes())
    data[off:off + n] = bytes(n)
    shard.write_bytes(bytes(data))
    with pytest.raises(ReadError, match="corrupt"):
        open_store(copy).zones["utm31"].read(2024, (96, 128), (96, 128))


def test_chunk_lru_stays_within_its_byte_budget():
    from tessera_qgis.core.arrays import ChunkLRU

    lru = ChunkLRU(max_bytes=3000)
    for i in range(10):
        lru.put(("a", (i,)), np.zeros(1000, np.uint8))
        assert lru.bytes <= 3000
    assert lru.get(("a", (9,))) is not None and lru.get(("a", (0,))) is None
    lru.get(("a", (7,)))  # recently used: survives the next insertions
    lru.put(("a", (10,)), np.zeros(1000, np.uint8))
    assert lru.get(("a", (7,))) is not None and lru.get(("a", (8,))) is None


def test_streamed_reads_do_not_fill_the_memory_cache(sample_store):
    store = open_store(sample_store)
    before = store.caches.chunks.bytes  # the small time coordinates read at opening
    store.zones["utm31"].read(2024, (0, 256), (0, 256), keep=False)
    assert store.caches.chunks.bytes == before
    store.zones["utm31"].read(2024, (0, 64), (0, 64))
    assert store.caches.chunks.bytes > 0


def test_disk_cache_stays_within_its_limit(sample_store, tmp_path):
    cache = tmp_path / "cache"
    store = open_store(sample_store, StoreOptions(cache_dir=str(cache), cache_limit_bytes=2_000_000))
    store.zones["utm30"].read(2024, (0, 512), (0, 512))
    size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    assert size <= 2_000_000 * 1.1
    assert list(cache.rglob("zarr.json")), "the store's metadata is kept"


def test_network_failures_have_a_kind(range_server, tmp_path):
    from tessera_qgis.core.connections import describe_failure

    with pytest.raises(ReadError) as err:
        open_store("http://127.0.0.1:9/x.zarr", StoreOptions(timeout=5, retries=0))  # the kind is the first try's
    assert describe_failure(err.value)[0] == "unreachable"
    slow = range_server(tmp_path, latency=2.0)
    (tmp_path / "s.zarr").mkdir()
    (tmp_path / "s.zarr" / "zarr.json").write_text("{}")
    with pytest.raises(ReadError) as err:
        open_store(f"{slow.url}/s.zarr", StoreOptions(timeout=1, retries=0))
    assert describe_failure(err.value)[0] == "timeout", err.value


def test_open_for_a_pixel_fetches_its_zone_years_with_the_root(sample_store, range_server):
    """open_store(pixel=...) asks for the zone's `time` together with zarr.json and reads the
    pixel while the other zone's years load: the same requests as open + pixel, none twice.
    (The time saved, a round trip, is measured by `make bench`.)"""
    srv = range_server(sample_store.parent, latency=0.05)
    url = f"{srv.url}/{sample_store.name}"
    plain = open_store(url).pixel(0.02, 52.2, 2024)
    plain_log = [r.path for r in srv.requests()]
    srv.reset()
    store = open_store(url, pixel=(0.02, 52.2, 2024))
    px = store.pixel(0.02, 52.2, 2024)
    log = srv.requests()
    assert px == plain and px["valid"]
    paths = [r.path for r in log]
    assert sorted(paths) == sorted(plain_log), "the same requests as without the hint"
    assert len(paths) == len(set((r.path, r.range) for r in log)), "nothing fetched twice"
    # zarr.json and utm31's time come in the first round (everything else needs zarr.json).
    first_two = {p.rsplit("/", 3)[-3:][-1] if "time" not in p else "time31" if "utm31" in p else "time30"
                 for p in paths[:2]}
    assert first_two == {"zarr.json", "time31"}, paths
    ref = zarr.open_group(str(sample_store), mode="r")["utm31"]
    assert px["scale"] == pytest.approx(float(ref["scales"][0, px["row"], px["col"]]))


@pytest.mark.parametrize("hint", [(10.0, 45.0, 2024), (0.02, 52.2, 1999), (float("nan"), 52.2, 2024)])
def test_a_pixel_hint_that_misses_changes_nothing(sample_store, sample_http, hint):
    store = open_store(sample_http.store_url, pixel=hint)
    assert store.years == [2024, 2025]
    assert store.pixel(0.02, 52.2, 2024) == open_store(sample_http.store_url).pixel(0.02, 52.2, 2024)


def test_a_pixel_hint_on_the_per_year_layout(per_year_store, range_server):
    srv = range_server(per_year_store)
    url = f"{srv.url}/2024.zarr"
    lon, lat = 0.0, 52.2
    assert open_store(url, pixel=(lon, lat, 2024)).pixel(lon, lat, 2024) == open_store(url).pixel(lon, lat, 2024)
