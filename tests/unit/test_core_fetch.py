"""How the core fetches: request counts and bytes from the server's own log."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from support.servers import Link, RangeHTTPServer
from support.stores import pixel_where
from tessera_qgis.core.arrays import WARM_CONNECTIONS
from tessera_qgis.core.errors import ReadError
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store

INDEX_BYTES = 8 * 8 * 16 + 4  # 256 px shards of 32 px chunks: 64 entries + crc32c


def shard_index(path: Path) -> np.ndarray:
    raw = path.read_bytes()[-INDEX_BYTES:]
    return np.frombuffer(raw[:-4], dtype="<u8").reshape(8, 8, 2)


GAP = 16 << 10  # chunks of a shard this close are fetched in one request, with the bytes between


def minimum_bytes(store_dir: Path, zone: str, t: int, rows, cols) -> tuple[int, int]:
    """(compressed bytes of the intersecting inner chunks + shard indexes, index count)."""
    total, indexes = 0, 0
    for array in ("embeddings", "scales"):
        plan = planned_reads(store_dir, zone, array, t, rows, cols)
        total += sum(p["chunk_bytes"] for p in plan) + INDEX_BYTES * len(plan)
        indexes += len(plan)
    return total, indexes


def planned_reads(store_dir: Path, zone: str, array: str, t: int, rows, cols) -> list[dict]:
    """Per shard touched: the bytes of the intersecting inner chunks, and the requests and
    bytes it takes when chunks up to GAP bytes apart share a request (worked out from the
    shard index read here)."""
    shards: dict = {}
    for cr in range(rows[0] // 32, -(-rows[1] // 32)):
        for cc in range(cols[0] // 32, -(-cols[1] // 32)):
            shards.setdefault((cr // 8, cc // 8), []).append((cr % 8, cc % 8))
    out = []
    for (sr, sc), chunks in shards.items():
        key = [str(t), "0", str(sr), str(sc)] if array == "embeddings" else [str(t), str(sr), str(sc)]
        idx = shard_index(store_dir / zone / array / "c" / Path(*key))
        spans = sorted((int(idx[r, c, 0]), int(idx[r, c, 1])) for r, c in chunks if idx[r, c, 0] != 2**64 - 1)
        requests, fetched, end = 0, 0, None
        for offset, length in spans:
            if end is None or not 0 <= offset - end <= GAP:
                requests += 1
            else:
                fetched += offset - end
            fetched += length
            end = offset + length
        out.append({"chunk_bytes": sum(n for _, n in spans), "requests": requests, "fetched": fetched})
    return out


def test_window_fetches_exactly_the_intersecting_chunks(sample_store, sample_http):
    store = open_store(sample_http.store_url)
    sample_http.reset()
    rows, cols = (200, 330), (100, 300)  # crosses shard borders in both directions
    store.zones["utm31"].read(2024, rows, cols)
    log = sample_http.requests()
    want, n_index = minimum_bytes(sample_store, "utm31", 0, rows, cols)
    emb = planned_reads(sample_store, "utm31", "embeddings", 0, rows, cols)
    scl = planned_reads(sample_store, "utm31", "scales", 0, rows, cols)
    chunk_reads = [r for r in log if not r.range.startswith("bytes=-")]
    assert sum(r.bytes for r in chunk_reads if "/embeddings/" in r.path) == sum(p["chunk_bytes"] for p in emb), \
        "no embeddings byte more than the chunks the window needs"
    assert sum(r.bytes for r in chunk_reads if "/scales/" in r.path) == sum(p["fetched"] for p in scl), \
        "scales: the chunks, and only the small gaps between chunks close together"
    assert sum(r.bytes for r in log) <= want * 1.02
    assert len(chunk_reads) == sum(p["requests"] for p in emb + scl), "chunks close together share a request"
    assert sum(1 for r in log if r.range.startswith("bytes=-")) == n_index, "each shard index read once"
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


# Waves are told apart by a long round trip: requests of one wave go out together (well within
# WAVE_GAP of each other even on a busy machine), the next wave a round trip later.
WAVE_RTT, WAVE_GAP = 1.5, 1.0


def _waves(log, gap: float) -> list[list]:
    """Requests grouped by arrival: a new wave starts after `gap` seconds without a request."""
    waves: list[list] = []
    for r in sorted(log, key=lambda r: r.arrived):
        if waves and r.arrived - waves[-1][-1].arrived < gap:
            waves[-1].append(r)
        else:
            waves.append([r])
    return waves


def test_a_cold_window_is_two_waves_and_a_warm_one_none(sample_store, range_server):
    """Shard indexes of both arrays in one wave, then every chunk of both arrays in one wave:
    no embeddings request waits for scales data (a round trip of WAVE_RTT makes any waiting
    show as another wave)."""
    srv = range_server(sample_store.parent, latency=WAVE_RTT)
    store = open_store(f"{srv.url}/{sample_store.name}")
    zone = store.zones["utm31"]
    srv.reset()
    rows, cols = (200, 330), (100, 300)
    win = zone.read(2024, rows, cols, bands=[1, 2, 3])
    waves = _waves(srv.requests(), gap=WAVE_GAP)
    assert len(waves) == 2, [[(r.path.rsplit("/", 5)[-5:], r.range) for r in w] for w in waves]
    first, second = waves
    assert all(r.range.startswith("bytes=-") for r in first), "the first wave is shard indexes only"
    assert {("/embeddings/" in r.path) for r in first} == {True, False}, "both arrays' indexes at once"
    assert not any(r.range.startswith("bytes=-") for r in second)
    assert {("/embeddings/" in r.path) for r in second} == {True, False}, "both arrays' chunks at once"
    g = zarr.open_group(str(sample_store), mode="r")["utm31"]
    np.testing.assert_array_equal(win.scales, g["scales"][0, 200:330, 100:300])
    np.testing.assert_array_equal(win.q[:, win.valid], g["embeddings"][0, 0:3, 200:330, 100:300][:, win.valid])
    srv.reset()
    again = zone.read(2024, rows, cols, bands=[1, 2, 3])
    assert srv.requests() == [], "a warm re-read makes no request"
    np.testing.assert_array_equal(again.q, win.q)


def test_a_cold_windows_chunk_requests_find_their_connections_open(sample_store, range_server):
    """The connections a cold window's chunk requests go out on are opened while its shard
    indexes are on their way (a new connection's handshakes would otherwise come after that
    round trip), and no more of them than the wave can use. The server's own record of
    when it accepted each connection, and which connection each request came on."""
    rtt = 0.3
    srv = range_server(sample_store.parent, latency=rtt)
    zone = open_store(f"{srv.url}/{sample_store.name}").zones["utm31"]
    time.sleep(0.2)  # (the connections the open starts for the first read are up)
    opened_before = len(srv.connections())
    srv.reset()
    rows, cols = (0, 512), (0, 512)
    win = zone.read(2024, rows, cols, bands=[1, 2, 3])
    log = srv.requests()
    indexes = [r for r in log if r.range.startswith("bytes=-")]
    chunks = [r for r in log if not r.range.startswith("bytes=-")]
    assert len(indexes) == 8 and len(chunks) >= 8, (len(indexes), len(chunks))
    first_chunk = min(r.arrived for r in chunks)
    assert first_chunk - max(r.arrived for r in indexes) >= rtt * 0.9  # (two waves, a round trip apart)
    accepted = dict((port, t) for t, port in srv.connections())
    late = sorted(round(accepted[r.peer] - first_chunk, 3) for r in chunks if accepted.get(r.peer, 0) > first_chunk)
    assert not late, f"chunk requests on connections opened after the first chunk request: {late}"
    # the open's connections took the shard index requests; the chunk wave's were opened
    # beside them: in all, as many as the requests the read was expected to make (one per MB
    # of chunks as decoded: 256 of 128 KB and 256 of 4 KB; this synthetic store's chunks
    # compress far better than embeddings do, so it makes fewer)
    assert not any(r.peer in accepted for r in indexes)
    expected = 256 * 128 * 32 * 32 // (1 << 20) + 1
    assert opened_before + len(accepted) == expected, (opened_before, len(accepted), expected)
    assert len({r.peer for r in chunks}) == len(chunks), "every chunk request had a connection of its own"
    g = zarr.open_group(str(sample_store), mode="r")["utm31"]
    np.testing.assert_array_equal(win.scales, g["scales"][0, 0:512, 0:512])
    np.testing.assert_array_equal(win.q[:, win.valid], g["embeddings"][0, 0:3, 0:512, 0:512][:, win.valid])


def test_a_pixel_opens_few_connections(sample_store, range_server):
    """Opening a store and reading a pixel opens the few connections the open starts (for
    the first read's shard indexes) and no more: connections for a wave of chunk requests
    are opened only for waves expected to make many."""
    srv = range_server(sample_store.parent, latency=0.05)
    px = pixel_where(sample_store, 2024, lambda s: (s > 0) & (s < 1))
    store = open_store(f"{srv.url}/{sample_store.name}")
    got = store.pixel(px["lon"], px["lat"], 2024)
    assert (got["zone"], got["row"], got["col"]) == (px["zone"], px["row"], px["col"])
    assert got["valid"] and np.isclose(got["scale"], px["scale"])
    # (+ the one the root's request came on, + one for the zone's `time` if it goes out while
    # they are being opened)
    assert len(srv.connections()) <= WARM_CONNECTIONS + 2


def test_scales_for_the_map_load_both_arrays_indexes_in_one_wave(sample_store, range_server):
    """read_scales (the map layer's first step) fetches the embeddings' shard indexes with the
    scales' (they say which pixels have no embedding): one wave of indexes, one of chunks."""
    srv = range_server(sample_store.parent, latency=WAVE_RTT)
    zone = open_store(f"{srv.url}/{sample_store.name}").zones["utm31"]
    srv.reset()
    zone.read_scales(2024, (200, 330), (100, 300))
    waves = _waves(srv.requests(), gap=WAVE_GAP)
    assert len(waves) == 2
    assert {("/embeddings/" in r.path) for r in waves[0]} == {True, False}
    assert all("/scales/" in r.path for r in waves[1])


def test_scattered_pixels_are_two_waves(sample_store, range_server):
    """read_pixels (a map view's source pixels, here one in every 7 x 7 over the zone): the
    indexes of both arrays, then both arrays' chunks, each in one wave; no chunk without a
    pixel is fetched."""
    srv = range_server(sample_store.parent, latency=WAVE_RTT)
    zone = open_store(f"{srv.url}/{sample_store.name}").zones["utm31"]
    rr, cc = np.mgrid[3:zone.shape[0]:70, 5:zone.shape[1]:70]
    srv.reset()
    q, s = zone.read_pixels(2024, rr.ravel(), cc.ravel())
    waves = _waves(srv.requests(), gap=WAVE_GAP)
    assert len(waves) == 2
    assert all(r.range.startswith("bytes=-") for r in waves[0])
    assert {("/embeddings/" in r.path) for r in waves[1]} == {True, False}
    want = 0
    for cr, cc_ in {(r // 32, c // 32) for r, c in zip(rr.ravel(), cc.ravel())}:
        path = sample_store / "utm31" / "embeddings" / "c" / "0" / "0" / str(cr // 8) / str(cc_ // 8)
        offset, length = shard_index(path)[cr % 8, cc_ % 8]
        want += int(length) if offset != 2**64 - 1 else 0
    got = sum(r.bytes for r in waves[1] if "/embeddings/" in r.path)
    assert got == want, "exactly the embeddings chunks holding a pixel"
    g = zarr.open_group(str(sample_store), mode="r")["utm31"]
    np.testing.assert_array_equal(s, g["scales"][0][rr.ravel(), cc.ravel()])


def test_responses_arriving_in_small_pieces_are_cut_into_the_same_chunks(sample_store, ref, monkeypatch):
    """Bytes arrive in pieces of any size: a chunk inside one piece is handed on as a view of
    it, a chunk across several pieces joined, gaps between the chunks of one request skipped.
    Pieces of 700 bytes (a paced link sending small slices) against chunks of kilobytes and
    requests of many chunks (the scales' are merged across gaps): zarr-python's values."""
    monkeypatch.setattr(Link, "SLICE", 700)
    srv = RangeHTTPServer(sample_store.parent, link=Link(rtt=0.0, mbit=400, burst=700)).start()
    try:
        zone = open_store(f"{srv.url}/{sample_store.name}").zones["utm31"]
        rows, cols = (40, 140), (30, 120)
        win = zone.read(2024, rows, cols, bands=[1, 2, 3, 40, 128])
        g = ref["utm31"]
        want_s = g["scales"][0, rows[0]:rows[1], cols[0]:cols[1]]
        with np.errstate(invalid="ignore"):
            keep = (want_s > 0) & (want_s < 1) | ~np.isfinite(want_s)
        np.testing.assert_array_equal(win.scales, np.where(keep, want_s, np.nan))
        valid = np.isfinite(win.scales)
        assert valid.mean() > 0.5
        want_q = g["embeddings"][0][[0, 1, 2, 39, 127], rows[0]:rows[1], cols[0]:cols[1]]
        np.testing.assert_array_equal(win.q[:, valid], want_q[:, valid])
        assert sum(1 for r in srv.requests() if "/scales" in r.path and not r.range.startswith("bytes=-")) < \
            len(zone.scales.chunk_range(((0, 1), rows, cols))), "scales chunks share requests"
    finally:
        srv.stop()


def test_two_index_entries_pointing_at_the_same_bytes_are_fetched_once(tmp_path):
    """A shard whose index gives two chunks the same bytes (a writer that stores identical
    chunks once): both read as those bytes decode, as zarr-python reads them, and the bytes
    are asked for once."""
    from tessera_qgis.core.arrays import ArrayReader, ChunkLRU, StoreCaches, crc32c
    from tessera_qgis.core.sources import open_source

    path = tmp_path / "dup.zarr"
    a = zarr.create_array(str(path), shape=(64, 64), chunks=(16, 16), shards=(64, 64), dtype="int16",
                          fill_value=0, zarr_format=3)
    a[:] = np.arange(64 * 64, dtype="int16").reshape(64, 64)
    shard = path / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    nidx = 16 * 16 + 4
    index = np.frombuffer(bytes(raw[-nidx:-4]), "<u8").reshape(4, 4, 2).copy()
    index[2, 3] = index[0, 1]  # chunk (2, 3) now holds chunk (0, 1)'s bytes
    raw[-nidx:] = index.tobytes() + crc32c(index.tobytes()).to_bytes(4, "little")
    shard.write_bytes(bytes(raw))
    want = zarr.open_array(str(path), mode="r")[:]
    np.testing.assert_array_equal(want[32:48, 48:64], want[0:16, 16:32])  # zarr-python agrees

    srv = RangeHTTPServer(tmp_path).start()
    try:
        meta = json.loads((path / "zarr.json").read_text())
        source = open_source(f"{srv.url}/dup.zarr", StoreOptions())
        reader = ArrayReader(source, "", meta, StoreCaches(ChunkLRU(1 << 20)))
        srv.reset()
        got = reader.read(((0, 64), (0, 64)))
        np.testing.assert_array_equal(got, want)
        data = [r for r in srv.requests() if not r.range.startswith("bytes=-")]
        offset = int(index[0, 1, 0])
        spans = [tuple(int(v) for v in r.range[6:].split("-")) for r in data]
        assert sum(1 for lo, hi in spans if lo <= offset <= hi) == 1, spans
    finally:
        srv.stop()


@pytest.mark.parametrize("how", ["read", "map view"])
def test_the_shard_indexes_are_on_their_way_before_the_chunks_are_planned(sample_store, range_server, monkeypatch,
                                                                          how):
    """A cold read asks for its shard indexes first thing: by the time it works out which
    chunks to request, the index requests have reached the server (their round trip runs
    while it plans). Checked where the planning happens (ArrayReader.requests for a window,
    ArrayReader.chunk_range for a map view's reduced read): the server's log, polled."""
    import time

    from tessera_qgis.core import arrays

    srv = range_server(sample_store.parent, latency=1.0)
    zone = open_store(f"{srv.url}/{sample_store.name}").zones["utm31"]
    srv.reset()
    seen: list[int] = []
    name = "requests" if how == "read" else "chunk_range"
    original = getattr(arrays.ArrayReader, name)

    def planning(self, *args, **kwargs):
        if not seen and "/embeddings" in self.path:
            deadline = time.monotonic() + 5.0  # the index requests are sent at once, or never
            while time.monotonic() < deadline and \
                    sum(1 for _, path in srv.arrivals() if "/c/" in path) < 2:
                time.sleep(0.01)
            seen.append(sum(1 for _, path in srv.arrivals() if "/c/" in path))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(arrays.ArrayReader, name, planning)
    if how == "read":
        win = zone.read(2024, (40, 140), (30, 120), bands=[1, 2, 3])
        assert win.q.shape == (3, 100, 90)
    else:
        got = zone.read_reduced(2024, (40, 140), (30, 120), None, lambda q: q[:1].astype(np.float32), 1)
        assert got is not None
    assert seen and seen[0] >= 2, "the scales' and embeddings' shard indexes were asked for before the planning"
    indexes = [r for r in srv.requests() if r.range.startswith("bytes=-")]
    assert len(indexes) == len({r.path for r in indexes}), "each shard index fetched once"


PIECE = 64 << 10  # the ranges of the fetch tests below


def blob_requests(folder: Path, blob: bytes, per_request: int) -> list[list]:
    """`blob` written to folder/blob and cut into ranges of PIECE bytes, `per_request` ranges
    to a request (the groups fetch_many takes)."""
    from tessera_qgis.core.sources import Range

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "blob").write_bytes(blob)
    ranges = [Range("blob", a, a + PIECE) for a in range(0, len(blob), PIECE)]
    return [ranges[i:i + per_request] for i in range(0, len(ranges), per_request)]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_wave_takes_the_connections_opened_for_it_and_opens_none_of_its_own(tmp_path, loopback_ca, scheme):
    """get_suffixes(..., then=N) opens connections for the N requests to follow while the
    suffixes are on their way. A wave that sets out before they are all up (here the
    suffix comes back at once, and over https each connection's handshake takes a while)
    waits for them instead of opening as many again: the server sees N connections in all,
    each request comes on one of them, and every range arrives."""
    from tessera_qgis.core.sources import open_source

    blob = np.random.default_rng(2).integers(0, 256, 48 * PIECE, dtype=np.uint8).tobytes()
    groups = blob_requests(tmp_path / "www", blob, 1)  # 48 requests
    srv = RangeHTTPServer(tmp_path / "www")
    options = StoreOptions()
    if scheme == "https":
        srv.ssl_context = loopback_ca.server_context(tmp_path / "tls")
        options = StoreOptions(ca_pem=loopback_ca.ca_pem)
    srv.start()
    try:
        source = open_source(srv.url, options)
        assert source.get_suffixes({"blob": 16}, then=len(groups)) == {"blob": blob[-16:]}
        got: dict = {}
        source.fetch_many(groups, lambda r, data: got.__setitem__(r.start, bytes(data)))
        used = {r.peer for r in srv.requests()}
        accepted = [port for _, port in srv.connections()]
    finally:
        srv.stop()
    assert got == {r.start: blob[r.start:r.end] for g in groups for r in g}
    assert len(accepted) == len(groups), f"{len(accepted)} connections for a wave of {len(groups)} requests"
    assert used == set(accepted)


def test_connections_opened_ahead_stay_within_a_small_pool(tmp_path):
    """With fewer connections allowed than a wave's requests (a setting), opening them ahead
    takes only what is free: the shard indexes and the wave still go through (opening 8
    ahead of 8 index requests in a pool of 4 waited for itself for ever), and the server
    never sees more connections than allowed."""
    from tessera_qgis.core.sources import open_source

    def within(seconds: float, fn, *args, **kwargs):
        """fn's result, in a daemon thread: a read that hangs fails the test, not the run."""
        out: list = []
        t = threading.Thread(target=lambda: out.append(fn(*args, **kwargs)), daemon=True)
        t.start()
        t.join(seconds)
        assert out, f"{fn.__name__} did not return within {seconds} s"
        return out[0]

    blob = np.random.default_rng(3).integers(0, 256, 24 * PIECE, dtype=np.uint8).tobytes()
    groups = blob_requests(tmp_path, blob, 1)
    names = {f"part{i}": 16 for i in range(8)}
    for name in names:
        (tmp_path / name).write_bytes(blob[:1000])
    srv = RangeHTTPServer(tmp_path, latency=0.05).start()
    try:
        source = open_source(srv.url, StoreOptions(concurrency=4))
        got = within(30, source.get_suffixes, names, then=len(groups))
        assert got == {name: blob[1000 - 16:1000] for name in names}
        ranges: dict = {}
        within(30, source.fetch_many, groups, lambda r, data: ranges.__setitem__(r.start, bytes(data)))
        accepted = srv.connections()
    finally:
        srv.stop()
    assert ranges == {r.start: blob[r.start:r.end] for g in groups for r in g}
    assert len(accepted) <= 4


@pytest.mark.parametrize("limit", [1 << 20, 4 << 20])
def test_reading_waits_while_the_decoding_is_far_behind(tmp_path, monkeypatch, limit):
    """On a fast link the responses outrun the decoding. The reading pauses while more than
    BACKLOG_BYTES wait to be decoded (the rest wait in the sockets), so a cold read holds a
    bounded amount of memory, reused, instead of the whole window's bytes at once. Measured
    from outside the gate: the bytes the source has taken in (its stats) minus the bytes the
    callbacks have finished, sampled in every callback (each one slow). Each request's bytes
    taken in but not yet handed on (at most a range and a socket read) come on top."""
    import time

    from tessera_qgis.core import sources

    monkeypatch.setattr(sources, "BACKLOG_BYTES", limit)
    blob = np.random.default_rng(1).integers(0, 256, 16 << 20, dtype=np.uint8).tobytes()
    groups = blob_requests(tmp_path, blob, 32)  # 8 requests of 2 MB
    held: list[int] = []
    finished = [0]
    wrong: list = []
    lock = threading.Lock()
    srv = RangeHTTPServer(tmp_path).start()
    try:
        source = sources.open_source(srv.url, StoreOptions())

        def callback(r, data) -> None:
            with lock:
                held.append(source.stats.snapshot()["bytes"] - finished[0])
            if bytes(data) != blob[r.start:r.end]:
                wrong.append(r)
            time.sleep(0.004)
            with lock:
                finished[0] += len(data)

        source.fetch_many(groups, callback)
    finally:
        srv.stop()
    assert not wrong and len(held) == len(blob) // PIECE and finished[0] == len(blob)
    slack = len(groups) * (PIECE + (256 << 10))
    assert max(held) <= limit + slack, f"{max(held) / 2**20:.1f} MiB taken in and not decoded"


def test_a_failed_decode_ends_a_read_that_waits_for_the_decoding(tmp_path, monkeypatch):
    """A decoding error while the reading waits for the decoders to catch up: the read ends
    with that error (the waiting reads are woken), it does not hang."""
    from tessera_qgis.core import sources

    monkeypatch.setattr(sources, "BACKLOG_BYTES", 256 << 10)
    groups = blob_requests(tmp_path, bytes(8 << 20), 16)
    calls = [0]
    srv = RangeHTTPServer(tmp_path).start()
    try:
        source = sources.open_source(srv.url, StoreOptions())

        def callback(r, data) -> None:
            calls[0] += 1
            if r.start == 5 * PIECE:
                raise ReadError("blob: cannot decode chunk; the stored data is corrupt", "corrupt")

        with pytest.raises(ReadError, match="corrupt"):
            source.fetch_many(groups, callback)
    finally:
        srv.stop()
    assert calls[0] < (8 << 20) // PIECE, "the ranges after the error are not decoded"


def test_a_cancel_stops_a_wave_whose_requests_are_all_out(tmp_path):
    """A render overtaken by the next pan: its wave's requests all went out at once, and a
    cancel must still stop the downloads rather than wait for every response. Over a
    20 Mbit/s link, 8 requests of 2 MiB each, cancelled once the first range is in: the fetch
    ends with Cancelled and the link has carried a small part of the 16 MiB."""
    import time

    from tessera_qgis.core import sources
    from tessera_qgis.core.errors import Cancelled

    blob = bytes(range(256)) * (16 << 12)
    groups = blob_requests(tmp_path, blob, 32)
    link = Link(rtt=0.02, mbit=20)
    srv = RangeHTTPServer(tmp_path, link=link).start()
    try:
        source = sources.open_source(srv.url, StoreOptions())
        stop = threading.Event()
        with pytest.raises(Cancelled):
            source.fetch_many(groups, lambda r, data: stop.set(), cancel=stop.is_set)
        time.sleep(0.3)  # a response still being sent would show here
        sent = link.sent
        requests = srv.requests()
    finally:
        srv.stop()
    assert len(requests) == len(groups), "every request of the wave had gone out"
    assert sent < len(blob) / 4, f"{sent / 2**20:.1f} MiB of {len(blob) / 2**20:.0f} sent after the cancel"


def test_a_cancel_while_the_shard_indexes_are_on_their_way_returns_at_once(sample_store, range_server):
    """A read cancelled while its shard indexes are still on their way (a slow server: 1 s a
    request) stops waiting: it ends with Cancelled while the indexes have not arrived, asks
    for no chunk, and the indexes still land in the store's cache afterwards (for the next
    view)."""
    import time

    from tessera_qgis.core.errors import Cancelled

    srv = range_server(sample_store.parent)
    zone = open_store(f"{srv.url}/{sample_store.name}").zones["utm31"]
    srv.latency = 1.0
    srv.reset()
    asked = time.monotonic() + 0.2
    with pytest.raises(Cancelled):
        zone.read(2024, (40, 140), (30, 120), bands=[1, 2, 3], cancel=lambda: time.monotonic() > asked)
    caches = zone.embeddings.caches
    assert not caches.indexes, "the read ended before any shard index had arrived"
    assert not [r for r in srv.requests() if not r.range.startswith("bytes=-")], "no chunk asked for"
    deadline = time.monotonic() + 10
    while not caches.indexes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert caches.indexes, "the indexes arrived and were kept"
