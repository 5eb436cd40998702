"""Handing freed heap memory back to the system, keeping the memory of read outputs, and
large arrays on memory of their own.

Chunks decoded in many threads leave glibc's per-thread arenas fragmented: memory Python has
freed stays in the process. `malloc_trim(0)` returns it (about 10 ms on a 1 GB heap). An export
calls it after each block (a 7 GB export peaked at 3.6 GB of RSS without it); the map layer
at most once a second after drawing (a long panning session held 1.33 GB instead of 0.95 GB).
Does nothing where glibc is not the allocator.

numpy (on Linux) advises the kernel to back every array of 4 MiB and more with huge pages.
In virtual machines that hand freed memory back to their host (these build machines), the
first touch of such a page costs the host a 2 MiB fault: 0.7-1.1 s per 100 MB here against
45 ms in 4 KiB pages, and memory handed back after a draw or an export block is fresh again.
`large_empty` puts the big arrays this package makes itself (a 128-band view's values, a
window of every band, an export block) on anonymous mappings without that advice; numpy's
own switch, process-wide in QGIS, is left alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import mmap
import threading
import time
import weakref

import numpy as np

_TRIM = None
_LAST = [0.0]
_LOCK = threading.Lock()


def release_memory(min_interval: float = 0.0) -> bool:
    """malloc_trim(0), unless it ran less than `min_interval` seconds ago; True if it ran."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if not _TRIM:
        return False
    with _LOCK:
        now = time.monotonic()
        if now - _LAST[0] < min_interval:
            return False
        _LAST[0] = now
    _TRIM(0)
    return True


class OutputPool:
    """Memory for the arrays a read hands out, used again once nothing refers to it.

    A window read's output is megabytes of fresh memory, and fresh memory costs a page fault
    per 4 KiB page at first touch: 1,700 for a 1000 x 1000 px window of 3 bands and its
    scales, about 6 ms on these machines, more than all the copying of a warm read. glibc
    hands such blocks back to the system when they are freed (and the map layer trims the
    heap after drawing), so every read paid it again. Arrays from this pool live on
    anonymous mappings the pool keeps: each array holds a lease on its mapping, every view
    of it holds the lease too (numpy's chain of bases), and when the last of them is gone
    the mapping goes back to the pool for the next read. At most `idle_bytes` of mappings
    wait unused; arrays under `min_bytes` are plain numpy arrays, those over `max_bytes`
    `large_empty`'s."""

    def __init__(self, idle_bytes: int = 48 << 20, min_bytes: int = 256 << 10, max_bytes: int = 16 << 20) -> None:
        self.idle_bytes, self.min_bytes, self.max_bytes = idle_bytes, min_bytes, max_bytes
        self._lock = threading.RLock()  # a lease may die (and call back) in a thread holding it
        self._idle: dict[int, list[mmap.mmap]] = {}  # size -> mappings nobody uses, the newest last
        self._order: list[mmap.mmap] = []  # every idle mapping, the oldest first
        self.idle = 0  # their bytes
        self._leased: dict[int, tuple[weakref.ref, mmap.mmap]] = {}  # id(ref) -> (ref, its mapping)

    @staticmethod
    def size_for(nbytes: int) -> int:
        """The mapping size for `nbytes`: steps of an eighth of a power of two (at most 12.5 %
        unused), whole pages."""
        step = max(1 << max(nbytes.bit_length() - 4, 0), mmap.PAGESIZE)
        return -(-nbytes // step) * step

    def empty(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array, as np.empty."""
        return self.blank(shape, dtype)[0]

    def zeros(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An array of zeros, as np.zeros: written only where the memory is used again (fresh
        memory is the kernel's zero pages, touched as it is written, in whichever thread)."""
        arr, fresh = self.blank(shape, dtype)
        if not fresh:
            arr.fill(0)
        return arr

    def full(self, shape: tuple[int, ...], value, dtype) -> np.ndarray:
        """An array of `value`, as np.full."""
        arr = self.blank(shape, dtype)[0]
        arr.fill(value)
        return arr

    def blank(self, shape: tuple[int, ...], dtype) -> tuple[np.ndarray, bool]:
        """(an uninitialised array, whether it is known to hold zeros: fresh memory)."""
        dtype = np.dtype(dtype)
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.zeros(shape, dtype), True
        if nbytes > self.max_bytes:
            return large_empty(shape, dtype), True
        size = self.size_for(nbytes)
        with self._lock:
            free = self._idle.get(size)
            if free:
                mm = free.pop()
                self._order.remove(mm)
                self.idle -= size
            else:
                mm = None
        fresh = mm is None
        if fresh:
            mm = _private_mapping(size)
        lease = (ctypes.c_char * size).from_buffer(mm)
        ref = weakref.ref(lease, self._returned)
        with self._lock:
            self._leased[id(ref)] = (ref, mm)
        return np.frombuffer(lease, dtype=dtype, count=count).reshape(shape), fresh

    def _returned(self, ref: weakref.ref) -> None:
        """A lease is gone: nothing refers to its mapping any more."""
        with self._lock:
            _, mm = self._leased.pop(id(ref))
            size = len(mm)
            self._idle.setdefault(size, []).append(mm)
            self._order.append(mm)
            self.idle += size
            while self.idle > self.idle_bytes:
                old = self._order.pop(0)
                self._idle[len(old)].remove(old)
                self.idle -= len(old)


HUGE_PAGE_ADVICE_BYTES = 4 << 20  # numpy madvises huge pages for arrays of this size and more


def large_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An array as np.empty, but from HUGE_PAGE_ADVICE_BYTES on on an anonymous mapping of
    its own (zeros, in pages of the system's default size), unmapped when the array and its
    views are gone."""
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes < HUGE_PAGE_ADVICE_BYTES:
        return np.empty(shape, dtype)
    mm = _private_mapping(-(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE)
    return np.frombuffer(mm, dtype=dtype, count=count).reshape(shape)


def _private_mapping(size: int) -> mmap.mmap:
    """Anonymous memory of this process alone (Python's default on POSIX is shared: a forked
    child writing into it would write into the parent's arrays)."""
    if hasattr(mmap, "MAP_PRIVATE") and hasattr(mmap, "MAP_ANONYMOUS"):
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return mmap.mmap(-1, size)  # Windows: a mapping backed by the paging file, not inherited


OUTPUTS = OutputPool()
