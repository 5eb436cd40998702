"""The pool of output memory (core.memory.OutputPool): a read's output memory is used again
once nothing refers to it, never while anything does, and what waits unused is bounded."""
from __future__ import annotations

import gc
import mmap
import os
import resource
import threading
import warnings
import weakref

import numpy as np
import pytest

from tessera_qgis.core.memory import OUTPUTS, OutputPool, large_empty, release_memory
from tessera_qgis.core.quant import dequantise
from tessera_qgis.core.store import open_store


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def _span(arr: np.ndarray) -> tuple[int, int]:
    """The bytes an array's elements lie in (start, stop)."""
    lo, hi = np.lib.array_utils.byte_bounds(arr) if hasattr(np.lib, "array_utils") else np.byte_bounds(arr)
    return lo, hi


def test_memory_freed_is_used_again_for_the_next_array_of_its_size():
    pool = OutputPool()
    a = pool.empty((3, 500, 700), np.int8)
    assert a.shape == (3, 500, 700) and a.dtype == np.int8 and a.flags.writeable and a.flags.c_contiguous
    where = _address(a)
    del a
    b = pool.empty((3, 500, 700), np.int8)
    assert _address(b) == where
    del b
    c = pool.empty((350, 750), np.float32)  # another shape and type of the same size
    assert _address(c) == where
    c[...] = 1.5
    assert float(c.sum()) == 1.5 * 350 * 750


def _keep(holder: str, a: np.ndarray):
    if holder == "view":
        return a[1:, 10:20, ::3]
    if holder == "transposed view":
        return a.T
    if holder == "memoryview":
        return memoryview(a)
    if holder == "frombuffer":
        return np.frombuffer(memoryview(a.reshape(-1)), dtype=np.int8)
    if holder == "flat":
        return a.reshape(-1)
    return [a[2]]  # a slice in a list


def test_zeros_and_full_hold_their_values_in_memory_used_again():
    """zeros() writes only memory used again (fresh memory is zeros already); both it and
    full() give their values whatever the memory held before."""
    pool = OutputPool()
    for _ in range(2):  # fresh memory, then the same memory again
        a = pool.zeros((600, 700), np.float32)
        assert not a.any()
        a[...] = 5
        where = _address(a)
        del a
        b = pool.full((600, 700), np.inf, np.float32)
        assert _address(b) == where and np.isposinf(b).all()
        del b


@pytest.mark.parametrize("holder", ["view", "transposed view", "memoryview", "frombuffer", "flat",
                                    "a slice in a list"])
def test_memory_anything_still_refers_to_is_never_handed_out(holder):
    """Whatever is left of an array (a view of a part of it, a buffer export, an array made
    from that export) keeps its memory: the next array is elsewhere, and writing it changes
    nothing of what is kept; once that is dropped too, the memory is used again."""
    pool = OutputPool()
    a = pool.empty((3, 400, 600), np.int8)
    a[...] = 7
    where = _address(a)
    kept = _keep(holder, a)
    del a
    b = pool.empty((3, 400, 600), np.int8)
    assert _address(b) != where
    b[...] = -1
    seen = np.asarray(kept[0] if isinstance(kept, list) else kept)
    assert seen.size and (seen == 7).all()
    lo, hi = _span(seen)
    blo, bhi = _span(b)
    assert hi <= blo or bhi <= lo  # no byte in common
    del b, seen, kept
    again = [pool.empty((3, 400, 600), np.int8) for _ in range(2)]
    assert where in {_address(x) for x in again}


def test_memory_waiting_unused_is_bounded():
    """With room for two idle mappings of 1 MiB, five arrays let go of leave the last two."""
    pool = OutputPool(idle_bytes=2 << 20, min_bytes=1 << 10)
    held = [pool.empty((1 << 20,), np.uint8) for _ in range(5)]
    for i, a in enumerate(held):
        a[...] = i + 1
    del a
    while held:  # let go of them in order: the last two let go are the ones kept
        del held[0]
    again = [pool.empty((1 << 20,), np.uint8) for _ in range(5)]
    # memory used again still holds what was written in it; fresh memory is zeros
    assert sorted(int(a[0]) for a in again) == [0, 0, 0, 4, 5]


def test_small_and_large_arrays_are_plain_numpy_arrays():
    pool = OutputPool(min_bytes=1 << 10, max_bytes=1 << 20)
    for shape in ((10,), (2 << 20,)):
        a = pool.empty(shape, np.uint8)
        assert a.flags.owndata and a.shape == shape
    assert not pool.empty((4096,), np.uint8).flags.owndata


def test_threads_taking_and_dropping_arrays_never_share_one():
    """Eight threads take arrays, fill each with their own number, hold some a while, and
    check nobody wrote into theirs."""
    pool = OutputPool(idle_bytes=4 << 20, min_bytes=1 << 10)
    errors: list[str] = []

    def work(n: int) -> None:
        rng = np.random.default_rng(n)
        held = []
        for i in range(150):
            a = pool.empty((int(rng.integers(64, 96)) << 10,), np.uint8)
            a[...] = n
            held.append(a)
            if len(held) > 3 or rng.random() < 0.5:
                old = held.pop(int(rng.integers(len(held))))
                if not (old == n).all():
                    errors.append(f"thread {n}: its array was written by another")
        for a in held:
            if not (a == n).all():
                errors.append(f"thread {n}: its array was written by another")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_forked_child_writing_a_pooled_array_does_not_change_the_parents():
    pool = OutputPool()
    a = pool.empty((1 << 20,), np.uint8)
    a[...] = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a process with threads
        pid = os.fork()
    if pid == 0:
        try:
            a[...] = 9
            b = pool.empty((1 << 20,), np.uint8)
            b[...] = 9
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert (a == 3).all()


def test_a_window_read_again_uses_the_memory_of_the_one_let_go_and_not_of_one_kept(sample_http, ref):
    """Reads hand out pooled memory: a window read again after the previous one was dropped
    lands in the same memory, already in place (no page faults for it, even after the heap
    was trimmed as the map layer does after drawing); read while the previous one is kept,
    elsewhere, and the kept one still holds zarr-python's values."""
    zone = open_store(sample_http.store_url).zones["utm31"]
    rows, cols, bands = (10, 330), (20, 420), [3, 1, 60]
    g = ref["utm31"]
    want_q = g["embeddings"][0][[b - 1 for b in bands], rows[0]:rows[1], cols[0]:cols[1]]
    want_s = g["scales"][0, rows[0]:rows[1], cols[0]:cols[1]]
    pages = (3 + 4) * 320 * 400 // mmap.PAGESIZE  # of the output: q int8 and scales float32

    def check(win) -> None:
        valid = np.isfinite(win.scales)
        assert valid.mean() > 0.5
        np.testing.assert_array_equal(win.scales[valid], want_s[valid])
        np.testing.assert_array_equal(win.q[:, valid], want_q[:, valid])

    first = zone.read(2024, rows, cols, bands=bands)
    where = (_address(first.q), _address(first.scales))
    check(first)
    second = zone.read(2024, rows, cols, bands=bands)  # the first one kept
    assert {_address(second.q), _address(second.scales)}.isdisjoint(where)
    check(first)
    check(second)
    del first
    release_memory()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    third = zone.read(2024, rows, cols, bands=bands)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    assert (_address(third.q), _address(third.scales)) == where
    assert faults < pages // 4, (faults, pages)
    check(third)
    check(second)


def _poison(shapes: list[tuple[tuple[int, ...], type]]) -> None:
    """Leave pooled memory of these shapes holding a plausible pattern for the next reads:
    bytes 0x3f, an int8 of 63 and a float32 of 0.747 (a valid scale)."""
    arrays = [OUTPUTS.empty(shape, dtype) for shape, dtype in shapes]
    for a in arrays:
        a.view(np.uint8)[...] = 0x3F
    del arrays


@pytest.mark.parametrize("zone,rows,cols", [
    ("utm31", (0, 768), (0, 512)),      # the whole array: water, the unembedded strip, shards
    ("utm30", (250, 570), (250, 580)),  # across shard corners
    ("utm31", (600, 900), (380, 700)),  # beyond the array's bottom-right edge
    ("utm30", (-40, 300), (-25, 310)),  # before its top-left
])
def test_reads_into_memory_used_again_write_every_pixel(sample_store, ref, zone, rows, cols):
    """Pooled memory holds the last read's values: a read must write every pixel of its
    output, cold (fill values first), warm (every chunk in memory: no fill inside the array,
    the pastes cover it) and half warm, inside and outside the array, in memory that held a
    valid-looking pattern just before."""
    g = ref[zone]
    h, w = g.attrs["spatial:shape"]
    r0, r1, c0, c1 = max(rows[0], 0), min(rows[1], h), max(cols[0], 0), min(cols[1], w)
    sub = (slice(r0 - rows[0], r1 - rows[0]), slice(c0 - cols[0], c1 - cols[0]))
    bands = [2, 90, 5]
    want_s = g["scales"][0, r0:r1, c0:c1]
    want_q = g["embeddings"][0][[b - 1 for b in bands], r0:r1, c0:c1]
    shape = (rows[1] - rows[0], cols[1] - cols[0])
    z = open_store(sample_store).zones[zone]
    first = (rows, (cols[0], (cols[0] + cols[1]) // 2))  # the left half first: then half warm
    for read_rows, read_cols in [first, (rows, cols), (rows, cols)]:
        size = (read_rows[1] - read_rows[0], read_cols[1] - read_cols[0])
        _poison([((3,) + size, np.int8), (size, np.float32)])
        win = z.read(2024, read_rows, read_cols, bands=bands)
        if (read_rows, read_cols) != (rows, cols):
            continue
        assert win.q.shape == (3,) + shape
        assert not win.q.flags.owndata  # pooled memory: the case this test is about
        np.testing.assert_array_equal(win.scales[sub], want_s)
        valid = np.isfinite(want_s)
        got_q = win.q[(slice(None),) + sub]
        np.testing.assert_array_equal(got_q[:, valid], want_q[:, valid])
        assert ((got_q == want_q) | (got_q == 0)).all()  # nodata pixels: as stored, or 0
        outside = np.ones(shape, bool)
        outside[sub] = False
        assert np.isposinf(win.scales[outside]).all() and (win.q[:, outside] == 0).all()


@pytest.mark.parametrize("pooled", [True, False])
def test_values_dequantised_into_memory_used_again_are_each_int8_times_its_scale(pooled):
    """dequantise(pooled=True) (a window's dequantised()) writes its output and the scales it
    multiplies by into pooled memory, an export's plain numpy memory: every value must be the
    int8 times its pixel's scale, NaN wherever the scale is not valid, in memory that held
    valid-looking values just before. Expected: the exact product in
    float64 rounded once to float32 (what float32 arithmetic gives: an int8 times a float32
    is exact in float64), validity from Python's own floats."""
    rng = np.random.default_rng(7)
    shape = (300, 400)
    q = rng.integers(-128, 128, (3,) + shape, dtype=np.int8)
    s = rng.uniform(0, 1, shape).astype(np.float32)
    odd = [np.inf, np.nan, 0.0, -0.0, 1.0, 2.0, -0.5, 3e38, -np.inf, 1e-45]
    spots = rng.choice(s.size, 2000, replace=False)
    s.flat[spots] = np.resize(np.array(odd, dtype=np.float32), spots.size)
    valid = np.array([0.0 < float(x) < 1.0 for x in s.flat]).reshape(shape)
    with np.errstate(invalid="ignore", over="ignore"):  # (only the invalid scales' products)
        want = (q.astype(np.float64) * s.astype(np.float64)).astype(np.float32)
    for _ in range(3):
        _poison([((3,) + shape, np.float32), (shape, np.float32)])
        out = dequantise(q, s, pooled=pooled)
        assert out.flags.owndata is not pooled  # pooled memory: a view of the pool's mapping
        assert out.dtype == np.float32 and out.shape == q.shape
        np.testing.assert_array_equal(out[:, valid], want[:, valid])
        assert np.isnan(out[:, ~valid]).all()
        del out


def _mapping(addr: int) -> tuple[tuple[int, int], list[str]] | None:
    """The mapping of this process holding `addr`: ((start, end), its VmFlags), from smaps."""
    with open("/proc/self/smaps") as f:
        span = None
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                span = (lo, hi) if lo <= addr < hi else None
            elif span and line.startswith("VmFlags:"):
                return span, line.split()[1:]
    return None


def _mapping_object(arr: np.ndarray):
    """The mmap object an array's memory belongs to (through numpy's bases and memoryviews)."""
    base = arr
    while not isinstance(base, mmap.mmap):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    return base


def test_large_arrays_are_on_memory_of_their_own_without_huge_page_advice():
    """numpy advises huge pages for its arrays of 4 MiB and more ("hg" in the mapping's
    VmFlags); on these machines their first touch is 15-25x slower than 4 KiB pages. The large
    arrays this package makes (large_empty, the output pool's arrays over its
    size, an export's dequantised block) are on mappings of their own without the advice:
    zeros or the fill, writable, and unmapped when the array and its views are gone."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _set_madvise_hugepage

    was = _set_madvise_hugepage(True)
    try:
        shape = (3, 1000, 1000)  # 12 MB of float32
        control = np.ones(shape, np.float32)
        # (numpy advises from the array's first page boundary on: look inside)
        assert "hg" in _mapping(_address(control) + control.nbytes // 2)[1], \
            "numpy's own arrays carry the advice (the check works)"
        q = np.ones(shape, np.int8)
        s = np.full(shape[1:], 0.5, np.float32)
        over = OutputPool(max_bytes=1 << 20)
        made = {"large_empty": large_empty(shape, np.float32), "pool full, over its size": over.full(shape, 7, np.float32),
                "pool, over its size": over.zeros(shape, np.float32), "dequantise": dequantise(q, s)}
        want = {"large_empty": 0, "pool full, over its size": 7, "pool, over its size": 0, "dequantise": 0.5}
        maps = {}
        for name, arr in made.items():
            span, flags = _mapping(_address(arr) + arr.nbytes // 2)
            assert "hg" not in flags and span[0] <= _address(arr), name
            assert arr.flags.writeable and (arr == want[name]).all(), name
            maps[name] = weakref.ref(_mapping_object(arr))
        view = made["pool full, over its size"][1]
        view[2, 3] = 9
        made.clear()
        arr = None
        gc.collect()
        assert maps["pool full, over its size"]() is not None and view[2, 3] == 9, "a view keeps its mapping"
        assert not [name for name, ref in maps.items() if name != "pool full, over its size" and ref() is not None]
        del view
        gc.collect()
        assert maps["pool full, over its size"]() is None, "unmapped with its last view"
        assert large_empty((100,), np.float32).flags.owndata, "small arrays stay numpy's"
    finally:
        _set_madvise_hugepage(was)
