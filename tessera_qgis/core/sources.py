"""Byte sources: where a store's objects come from (local disk, HTTP(S), S3).

Every source answers the same three questions, by key relative to the store root: the whole
object, its last N bytes (a suffix range, for shard indexes) and many byte ranges at once.
`fetch_many` takes groups of adjacent ranges, fetches each group with one request, all
groups concurrently (a bounded pool), and hands each range of a group to a callback as soon
as its bytes are in (over HTTP while the rest of the response is still arriving), so
decoding overlaps the downloads that are still running.
"""
from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import functools
import hashlib
import os
import queue
import random
import ssl
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple
from urllib.parse import unquote, urlparse

import aiohttp
import fsspec.asyn
import yarl
from fsspec.implementations.http import HTTPFileSystem

from .errors import Cancelled, ReadError, StoreNotFound

# Thread pools. Tasks in TASK_POOL may wait for the others; work in DECODERS and
# LOCAL_IO_POOL never waits for any pool, so no arrangement of callers can deadlock them.
TASK_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="tessera-task")
LOCAL_IO_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tessera-file")


BACKLOG_BYTES = 8 << 20  # the reading waits while more than this waits to be decoded: see Batch
INLINE_GROUPS = 4  # fetches of at most this many requests decode on the I/O thread itself
# A wave of chunk requests waits at most this long for the connections opened for it while
# its shard indexes were on their way (see FsspecSource._warm_up): they are then mostly up.
WARM_WAIT_S = 2.0


class Batch:
    """Callbacks handed to the decode threads by one fetch: cheap to add (a window is
    thousands of chunks: no future, no event-loop wake-up per chunk), waited for together;
    after the first error the rest are skipped and wait() raises it.

    It also counts the bytes handed on and not decoded yet (the backlog): a reader on an
    event loop waits in room() while there are more than `limit`, and goes on once the
    decoders are down to half of it (the bytes meanwhile wait in the sockets). On a fast
    link the responses outrun the decoding: without a limit a cold 1000 x 1000 px window's
    100 MB were all held at once, every page of them fresh memory (28,000 page faults at
    ~3.6 us each on these machines), where a bounded backlog reuses the same memory."""

    def __init__(self, limit: int = 0, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._lock = threading.Lock()
        self._pending = 0
        self._done = threading.Event()
        self._done.set()
        self.error: BaseException | None = None
        self.limit = limit
        self.backlog = 0
        self._loop = loop
        self._room: asyncio.Future | None = None  # set when the backlog is down to limit / 2

    def add(self, fn: Callable, *args, nbytes: int = 0) -> None:
        with self._lock:
            self._pending += 1
            self.backlog += nbytes
            self._done.clear()
        DECODERS.put(self, fn, args, nbytes)

    def _finish(self, error: BaseException | None, nbytes: int = 0) -> None:
        room = None
        with self._lock:
            if error is not None and self.error is None:
                self.error = error
            self._pending -= 1
            self.backlog -= nbytes
            if self._room is not None and (self.backlog <= self.limit // 2 or self.error is not None):
                room, self._room = self._room, None
            if self._pending == 0:
                self._done.set()
        if room is not None:
            self._loop.call_soon_threadsafe(_resolve, room)

    def full(self) -> bool:
        return bool(self.limit) and self.backlog > self.limit and self.error is None

    async def room(self) -> None:
        """Wait (on the loop given) until the backlog is at most `limit` (no limit: 0)."""
        while self.limit:
            with self._lock:
                if self.backlog <= self.limit or self.error is not None:
                    return
                if self._room is None:
                    self._room = self._loop.create_future()
                room = self._room
            await asyncio.shield(room)

    def wait(self) -> None:
        self._done.wait()
        if self.error is not None:
            raise self.error

    def wait_quietly(self) -> None:
        """Wait, without raising (the caller is raising already)."""
        self._done.wait()


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class _Decoders:
    """A few daemon threads running Batch work (decoding chunks as their bytes arrive)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def put(self, batch: Batch, fn: Callable, args: tuple, nbytes: int = 0) -> None:
        if not self._started:
            self._start()
        self._queue.put((batch, fn, args, nbytes))

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            for i in range(self.threads):
                threading.Thread(target=self._run, name=f"tessera-decode-{i}", daemon=True).start()
            self._started = True

    def _run(self) -> None:
        while True:
            batch, fn, args, nbytes = self._queue.get()
            error = None
            if batch.error is None:
                try:
                    fn(*args)
                except BaseException as exc:  # handed to the waiting caller
                    error = exc
            # The bytes go back to the allocator before the backlog says they did; and
            # nothing of this work stays referenced while the thread waits for the next:
            # `fn` holds the read's output arrays (they would live on until the next read).
            del fn, args
            batch._finish(error, nbytes)
            del batch, error


DECODERS = _Decoders(max(2, min(8, os.cpu_count() or 2)))


WHOLE = -1  # Range.start and .end of a request for a whole object (arrays without shards)


class Range(NamedTuple):  # a tuple: thousands are made, hashed and compared per window
    key: str
    start: int  # WHOLE: the whole object; a missing one is handed on as None, not an error
    end: int  # exclusive

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class Stats:
    """Requests and bytes a source has made; tests and benchmarks read these."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, nbytes: int, requests: int = 1) -> None:
        with self.lock:
            self.requests += requests
            self.bytes += nbytes

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "bytes": self.bytes, "retries": self.retries}


@dataclass(frozen=True)
class StoreOptions:
    """How to reach a store. Secrets are never part of repr() or error messages."""

    anon: bool | None = None  # S3: None = anonymous unless key/secret/profile given
    key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    profile: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    concurrency: int = 256  # parallel range requests per fetch (a window's chunks go out in one wave)
    timeout: float = 60.0
    cache_dir: str | None = None
    cache_limit_bytes: int = 2 << 30  # the disk cache prunes its oldest files beyond this
    memory_cache_bytes: int = 512 << 20  # decoded chunks kept in memory (LRU)
    proxy: str | None = field(default=None, repr=False)  # http://[user:pass@]host:port
    verify_ssl: bool = True
    retries: int = 4  # transient failures retried with exponential backoff and jitter
    # Extra trusted certificate authorities (PEM text), on top of the system's; and servers
    # ("host:port") whose certificate is not checked at all (a user's explicit exception).
    ca_pem: str | None = field(default=None, repr=False)
    insecure_hosts: tuple[str, ...] = ()

    def verifies(self, url: str) -> bool:
        """Whether TLS certificates are checked for a URL (https://, or an S3 endpoint)."""
        return self.verify_ssl and host_port(url) not in self.insecure_hosts


def host_port(url: str) -> str:
    """"host:port" of a URL, with the scheme's default port (443 for https)."""
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    host = (parsed.hostname or "").lower()
    if port is None:
        port = 80 if parsed.scheme.lower() == "http" else 443
    return f"{host}:{port}"


_SSL_LOCK = threading.Lock()
_CA_BUNDLES: dict[str, str] = {}  # sha256 of the extra CAs -> private bundle file (botocore)


@functools.lru_cache(maxsize=8)
def ssl_context(ca_pem: str | None = None) -> ssl.SSLContext:
    """The system's default TLS context, trusting `ca_pem` (PEM text) in addition."""
    ctx = ssl.create_default_context()
    if ca_pem:
        try:
            ctx.load_verify_locations(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise ReadError(f"the extra certificate authorities could not be loaded: {exc}", "certificate") \
                from None
    return ctx


def ca_bundle_file(ca_pem: str) -> str:
    """A CA bundle file for botocore (which takes a path, and then trusts only that file):
    the default bundle botocore uses plus `ca_pem`. Written once per set of CAs to a private
    (0600) temporary file that lives as long as the process."""
    digest = hashlib.sha256(ca_pem.encode()).hexdigest()
    with _SSL_LOCK:
        path = _CA_BUNDLES.get(digest)
        if path and os.path.exists(path):
            return path
        try:
            from botocore.httpsession import where  # botocore comes with s3fs, imported for S3 only

            system = Path(where()).read_text(encoding="utf-8", errors="replace")
        except Exception:  # no botocore bundle: the extra CAs alone
            system = ""
        fd, path = tempfile.mkstemp(prefix="tessera-ca-", suffix=".pem")  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(system.rstrip("\n") + "\n" + ca_pem.strip() + "\n")
        if not _CA_BUNDLES:
            atexit.register(_remove_bundles)
        _CA_BUNDLES[digest] = path
        return path


def _remove_bundles() -> None:
    for path in _CA_BUNDLES.values():
        try:
            os.unlink(path)
        except OSError:
            pass


Callback = Callable[[Range, bytes], None]
CancelCheck = Callable[[], bool]


class Source:
    url: str

    def __init__(self) -> None:
        self.stats = Stats()

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def speculate(self, keys: list[str]) -> None:
        """Start fetching objects that will probably be asked for soon (remote sources only)."""

    def forget_speculation(self) -> None:
        """Drop what speculate() fetched and nobody asked for."""

    def warm(self, requests: int) -> None:
        """About this many requests will soon go out at once: a remote source may open
        connections for them now (in the background)."""

    def get_suffix(self, key: str, nbytes: int) -> bytes:
        raise NotImplementedError

    def fetch_many(self, groups: list[list[Range]], callback: Callback, cancel: CancelCheck | None = None) -> None:
        """Fetch groups of ranges, each group one request (its ranges in order, of one
        object; or a single WHOLE range), all groups concurrently, in the order given as far as
        the pool allows. `callback(range, bytes)` gets each range (None for a missing whole
        object) as soon as it is in; it runs in a worker thread and may run concurrently."""
        raise NotImplementedError

    def get_suffixes(self, sizes: dict[str, int], then: int = 0) -> dict[str, bytes | None]:
        """The last `sizes[key]` bytes of several objects at once (None where an object is missing).
        `then`: about how many requests will follow together once these are in (a wave's
        chunks after its shard indexes); a source may get ready for them meanwhile."""
        out: dict[str, bytes | None] = {}
        for key, nbytes in sizes.items():
            try:
                out[key] = self.get_suffix(key, nbytes)
            except FileNotFoundError:
                out[key] = None
        return out

    def exists(self, key: str) -> bool:
        try:
            self.get(key)
            return True
        except FileNotFoundError:
            return False

    def list_dir(self, key: str) -> list[str] | None:
        """Child names of a folder, or None where the source cannot list (plain HTTP)."""
        return None


class LocalSource(Source):
    def __init__(self, root: Path, concurrency: int = 8) -> None:
        super().__init__()
        self.root = root
        self.url = str(root)
        self.concurrency = concurrency

    def _path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> bytes:
        data = self._path(key).read_bytes()
        self.stats.add(len(data))
        return data

    def get_suffix(self, key: str, nbytes: int) -> bytes:
        with open(self._path(key), "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - nbytes))
            data = f.read()
        self.stats.add(len(data))
        return data

    def _read_range(self, r: Range) -> bytes | None:
        if r.start == WHOLE:
            try:
                return self.get(r.key)
            except FileNotFoundError:
                return None
        fd = os.open(self._path(r.key), os.O_RDONLY)
        try:
            data = os.pread(fd, r.size, r.start)
        finally:
            os.close(fd)
        if len(data) != r.size:
            raise ReadError(f"{r.key}: expected {r.size} bytes at offset {r.start}, got {len(data)} "
                            "(truncated file?)")
        self.stats.add(len(data))
        return data

    def fetch_many(self, groups, callback, cancel=None) -> None:
        def one(group: list[Range]) -> None:
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            first = group[0]
            if first.start == WHOLE:
                callback(first, self._read_range(first))
                return
            data = self._read_range(Range(first.key, first.start, group[-1].end))
            view = memoryview(data)
            for r in group:
                callback(r, view[r.start - first.start: r.end - first.start])

        if len(groups) == 1:
            one(groups[0])
            return
        for fut in [LOCAL_IO_POOL.submit(one, g) for g in groups]:
            fut.result()

    def list_dir(self, key: str) -> list[str] | None:
        p = self._path(key)
        return sorted(c.name for c in p.iterdir()) if p.is_dir() else []


class FsspecSource(Source):
    """HTTP(S) and S3 through fsspec's async filesystems, driven on fsspec's I/O loop."""

    def __init__(self, fs, root: str, url: str, concurrency: int, can_list: bool, retries: int = 4,
                 backoff: float = 0.2, backoff_max: float = 5.0) -> None:
        super().__init__()
        self.fs = fs
        self.http = type(fs).__name__ == "HTTPFileSystem"
        self.retries, self.backoff, self.backoff_max = retries, backoff, backoff_max
        self.root = root.rstrip("/")
        self.url = url
        self.concurrency = max(1, concurrency)
        self.can_list = can_list
        self._speculative: dict[str, object] = {}  # key -> concurrent Future of its bytes
        self._warming: asyncio.Future | None = None  # connections being opened (on the I/O loop)
        # connections held by this source's requests and by _open_connections (on the I/O loop):
        # opening connections ahead never waits for the pool's limit (it would wait on itself)
        self._held = 0

    def speculate(self, keys: list[str]) -> None:
        """Start fetching objects that will probably be asked for soon (one round trip saved
        when they are); get() takes them. A guess that misses costs one small request."""
        for key in keys:
            if key not in self._speculative:
                self._speculative[key] = asyncio.run_coroutine_threadsafe(self._cat(key, None, None), self.fs.loop)

    def forget_speculation(self) -> None:
        for fut in self._speculative.values():
            fut.cancel()
        self._speculative.clear()

    def _full(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _sync(self, coro_fn, *args):
        return fsspec.asyn.sync(self.fs.loop, coro_fn, *args)

    def get(self, key: str) -> bytes:
        fut = self._speculative.pop(key, None)
        if fut is not None:
            try:
                return fut.result()
            except FileNotFoundError:
                raise
            except Exception:  # a failed guess is asked again, with the usual retries and messages
                pass
        return self._sync(self._cat, key, None, None)

    def get_suffix(self, key: str, nbytes: int) -> bytes:
        return self._sync(self._cat, key, -nbytes, None)

    async def _cat(self, key: str, start: int | None, end: int | None) -> bytes:
        """One request, retried on transient failures (see _retried)."""
        return await self._retried(lambda: self._cat_once(key, start, end))

    async def _retried(self, once):
        """await once(), again on transient failures (5xx, 429, resets, timeouts, short or
        wrong bodies) with bounded exponential backoff and jitter; then a clear ReadError."""
        attempt = 0
        while True:
            try:
                return await once()
            except ReadError as exc:
                if not _transient(exc) or attempt >= self.retries:
                    if attempt:
                        raise ReadError(f"{exc} (after {attempt + 1} attempts)", exc.kind) from None
                    raise
                delay = min(self.backoff_max, self.backoff * (2 ** attempt)) * random.uniform(0.5, 1.0)
                attempt += 1
                with self.stats.lock:
                    self.stats.retries += 1
                await asyncio.sleep(delay)

    async def _cat_once(self, key: str, start: int | None, end: int | None) -> bytes:
        try:
            if self.http:
                data = await self._http_get(key, start, end)
            else:
                data = await self.fs._cat_file(self._full(key), start=start, end=end)
        except (FileNotFoundError, ReadError):
            self.stats.add(0)
            raise
        except Exception as exc:  # aiohttp/botocore errors, OSErrors, timeouts
            raise _network_error(key, exc) from None
        self.stats.add(len(data))
        if start is not None and start >= 0 and end is not None and len(data) != end - start:
            raise ReadError(f"{key}: asked for bytes {start}-{end - 1} and got {len(data)} bytes; "
                            "the server does not honour Range requests properly", "short")
        if start is not None and start < 0 and len(data) != -start:
            raise ReadError(f"{key}: asked for the last {-start} bytes and got {len(data)}", "short")
        return data

    async def _http_get(self, key: str, start: int | None, end: int | None) -> bytes:
        """A GET that checks what came back: 206 and the asked-for Content-Range for a range
        (a server that ignores Range, or answers another range, is caught here)."""
        session = await self.fs.set_session()
        headers = {}
        if start is not None:
            headers["Range"] = f"bytes={start}" if start < 0 else f"bytes={start}-{end - 1}"
        with self._holding(1):
            return await self._http_get_on(session, key, headers, start)

    async def _http_get_on(self, session, key: str, headers: dict, start: int | None) -> bytes:
        async with session.get(self.fs.encode_url(self._full(key)), headers=headers, **self.fs.kwargs) as r:
            if r.status == 404:
                raise FileNotFoundError(key)
            if r.status >= 400:
                raise _network_error(key, _Status(r.status))
            data = await r.read()
            if start is None:
                return data
            if r.status != 206:
                raise ReadError(f"{key}: the server ignored the Range request (HTTP {r.status}); "
                                "it cannot serve Zarr shards", "short")
            got = r.headers.get("Content-Range", "")
            first = got[6:].split("-")[0] if got.startswith("bytes ") else ""
            total = got.rsplit("/", 1)[-1]
            want = start if start >= 0 else (int(total) + start if total.isdigit() else None)
            if not first.isdigit() or (want is not None and int(first) != want):
                raise ReadError(f"{key}: asked for bytes from {want} and the server sent {got or 'no range'}",
                                "short")
            return data

    def fetch_many(self, groups, callback, cancel=None) -> None:
        groups = [g for g in groups if not self._from_speculation(g, callback)]
        if not groups:
            return
        batch = Batch(BACKLOG_BYTES, self.fs.loop)
        try:
            self._sync(self._fetch_many, groups, callback, cancel, batch)
        finally:
            batch.wait()  # every range handed on has been decoded (or the first error is raised)

    async def _fetch_many(self, groups, callback, cancel, batch: Batch) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        if len(groups) > INLINE_GROUPS:
            await self._warmed(cancel)

        inline = len(groups) <= INLINE_GROUPS

        def deliver(r: Range, data) -> None:  # decode in a decode thread while reading goes on
            if inline:  # a pixel's few chunks: no hand-over between threads (each can cost ms)
                callback(r, data)
            else:
                batch.add(callback, r, data, nbytes=len(data) if data is not None else 0)

        async def one(group: list[Range]) -> None:
            async with sem:
                if cancel is not None and cancel():
                    raise Cancelled("cancelled")
                if batch.error is not None:
                    raise batch.error
                first = group[0]
                if first.start == WHOLE:
                    deliver(first, await self._whole(first.key))
                elif self.http:
                    await self._stream(group, deliver, None if inline else batch, cancel)
                else:
                    data = await self._cat(first.key, first.start, group[-1].end)
                    view = memoryview(data)
                    for r in group:
                        deliver(r, view[r.start - first.start: r.end - first.start])

        tasks = [asyncio.ensure_future(one(g)) for g in groups]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _stream(self, group: list[Range], deliver, gate: Batch | None = None,
                      cancel: CancelCheck | None = None) -> None:
        """One request for a group of adjacent ranges, each range handed on as soon as its
        bytes are in. Transient failures are retried (like _cat) for the ranges not yet in.
        `cancel` is asked as each piece of the response arrives: a cancelled wave stops
        downloading at once, whether or not all its requests have gone out."""
        todo = list(group)  # _stream_once takes out each range handed on: a retry asks for the rest
        await self._retried(lambda: self._stream_once(todo, deliver, gate, cancel))

    async def _stream_once(self, todo: list[Range], deliver, gate: Batch | None = None,
                           cancel: CancelCheck | None = None) -> None:
        with self._holding(1):
            await self._stream_on(todo, deliver, gate, cancel)

    async def _stream_on(self, todo: list[Range], deliver, gate: Batch | None,
                           cancel: CancelCheck | None) -> None:
        key, start, end = todo[0].key, todo[0].start, todo[-1].end
        self.stats.add(0)
        try:
            session = await self.fs.set_session()
            headers = {"Range": f"bytes={start}-{end - 1}"}
            async with session.get(self.fs.encode_url(self._full(key)), headers=headers, **self.fs.kwargs) as r:
                if r.status == 404:
                    raise FileNotFoundError(key)
                if r.status >= 400:
                    raise _network_error(key, _Status(r.status))
                if r.status != 206:
                    raise ReadError(f"{key}: the server ignored the Range request (HTTP {r.status}); "
                                    "it cannot serve Zarr shards", "short")
                got = r.headers.get("Content-Range", "")
                first = got[6:].split("-")[0] if got.startswith("bytes ") else ""
                if not first.isdigit() or int(first) != start:
                    raise ReadError(f"{key}: asked for bytes from {start} and the server sent {got or 'no range'}",
                                    "short")
                # Each range is handed on as soon as its last byte is in: a view of the
                # piece that holds it (no copy), or the bytes of the pieces it spans joined.
                # Copies made here hold the GIL, which the decode threads need too.
                pieces: list[memoryview] = []  # arrived, not handed on; pieces[0] starts at pos
                pos, have = start, 0
                while todo:
                    if gate is not None and gate.full():  # the decoding is far behind:
                        await gate.room()  # the bytes wait in the socket meanwhile
                    if cancel is not None and cancel():
                        raise Cancelled("cancelled")
                    chunk = await r.content.readany()
                    if not chunk:
                        raise ReadError(f"{key}: the response ended {end - pos - have} bytes early "
                                        f"(bytes {start}-{end - 1})", "short")
                    pieces.append(memoryview(chunk))
                    have += len(chunk)
                    self.stats.add(len(chunk), requests=0)
                    while todo and todo[0].end <= pos + have:
                        piece = todo.pop(0)
                        a, b = piece.start - pos, piece.end - pos  # in the bytes not handed on
                        head = pieces[0]
                        if b <= len(head):
                            deliver(piece, head[a:b])
                        else:
                            parts, at = [], 0
                            for p in pieces:
                                if at >= b:
                                    break
                                if at + len(p) > a:
                                    parts.append(p[max(a - at, 0):b - at])
                                at += len(p)
                            deliver(piece, parts[0] if len(parts) == 1 else b"".join(parts))
                        while pieces and len(pieces[0]) <= b:  # drop what is handed on
                            b -= len(pieces[0])
                            pos += len(pieces[0])
                            have -= len(pieces.pop(0))
                        if b:
                            pieces[0] = pieces[0][b:]
                            pos += b
                            have -= b
        except (FileNotFoundError, ReadError, Cancelled):
            raise
        except Exception as exc:  # aiohttp errors, OSErrors, timeouts
            raise _network_error(key, exc) from None

    def _from_speculation(self, group: list[Range], callback) -> bool:
        """Hand on a whole object that speculate() has already brought (right here: no trip
        through the I/O thread); False where there is none."""
        r = group[0]
        fut = self._speculative.get(r.key) if r.start == WHOLE else None
        if fut is None or not fut.done() or (fut.exception() is not None
                                             and not isinstance(fut.exception(), FileNotFoundError)):
            return False
        self._speculative.pop(r.key, None)
        callback(r, None if fut.exception() is not None else fut.result())
        return True

    async def _whole(self, key: str) -> bytes | None:
        """A whole object (None if missing), taken from speculate() where it was guessed."""
        fut = self._speculative.pop(key, None)
        if fut is not None:
            try:
                return await asyncio.wrap_future(fut)
            except FileNotFoundError:
                return None
            except Exception:  # a failed guess is asked again, with the usual retries and messages
                pass
        try:
            return await self._cat(key, None, None)
        except FileNotFoundError:
            return None

    def get_suffixes(self, sizes: dict[str, int], then: int = 0) -> dict[str, bytes | None]:
        if len(sizes) <= 1 and then <= len(sizes):
            return super().get_suffixes(sizes)
        return self._sync(self._get_suffixes, sizes, then)

    async def _get_suffixes(self, sizes: dict[str, int], then: int = 0) -> dict[str, bytes | None]:
        sem = asyncio.Semaphore(self.concurrency)

        async def one(key: str, nbytes: int) -> bytes | None:
            async with sem:
                try:
                    return await self._cat(key, -nbytes, None)
                except FileNotFoundError:
                    return None

        warm = self.http and then > len(sizes)
        if warm:  # these requests' connections first: the server then sees them before the rest
            await self._open_connections(len(sizes))
        tasks = [asyncio.ensure_future(one(k, n)) for k, n in sizes.items()]
        if warm:
            await asyncio.sleep(0)  # (the requests take their connections from the pool)
            self._warm_up(then - len(sizes))
        return dict(zip(sizes, await asyncio.gather(*tasks)))

    def warm(self, requests: int) -> None:
        if self.http:
            self.fs.loop.call_soon_threadsafe(self._warm_up, requests)

    def _warm_up(self, extra: int) -> None:
        """Open `extra` more connections to the server in the background (on the I/O loop),
        for a wave of requests that follows a round trip now on its way: each of its
        requests would otherwise wait for a new connection's handshakes (TCP, and TLS for
        https: two round trips on a real network) after that round trip. Connections idle
        in the pool count towards them. Best effort: any failure only leaves the wave to
        open its own connections, as it would without this."""
        if self.http:  # after one under way, if any: its connections then count
            self._warming = asyncio.ensure_future(self._open_after(self._warming, extra))

    async def _open_after(self, before: asyncio.Future | None, n: int) -> None:
        if before is not None and not before.done():
            await asyncio.wait([before])
        await self._open_connections(n)

    @contextlib.contextmanager
    def _holding(self, n: int):
        """Count `n` connections as held by this source while the block runs (I/O loop only)."""
        self._held += n
        try:
            yield
        finally:
            self._held -= n

    async def _open_connections(self, n: int) -> None:
        n = min(n, self.concurrency - self._held)
        if n <= 0:
            return
        with self._holding(n):
            await self._connect(n)

    async def _connect(self, n: int) -> None:
        try:
            session = await self.fs.set_session()
            if session.trust_env or self.fs.kwargs.get("proxy"):  # a proxy's connections: left to aiohttp
                return
            # aiohttp's own step of a request that gets its connection (the pool's, else a
            # new one), without the request; released at once, the connection stays open.
            req = aiohttp.ClientRequest("GET", yarl.URL(self.fs.encode_url(self.root)),
                                        loop=asyncio.get_running_loop(), ssl=self.fs.kwargs.get("ssl", True))

            async def one():
                return await session.connector.connect(req, [], session.timeout)

            # all of them held until every one is there (the pool's idle ones count once)
            got = await asyncio.gather(*[one() for _ in range(n)], return_exceptions=True)
            for conn in got:
                if not isinstance(conn, BaseException):
                    conn.release()
        except Exception:  # noqa: BLE001 (an aiohttp without these internals, a closed session)
            pass

    async def _warmed(self, cancel: CancelCheck | None) -> None:
        """Wait (a while at most) for the connections _warm_up is opening: a wave that set
        out meanwhile would open as many again."""
        waited = 0.0
        while self._warming is not None and not self._warming.done() and waited < WARM_WAIT_S:
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            await asyncio.wait([self._warming], timeout=0.05)
            waited += 0.05

    def list_dir(self, key: str) -> list[str] | None:
        if not self.can_list:
            return None
        try:
            entries = self.fs.ls(self._full(key), detail=False)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)


class _Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _transient(exc: ReadError) -> bool:
    """Worth another try: server errors, throttling, resets, timeouts, short bodies."""
    if exc.kind in ("timeout", "unreachable", "short", "reset", "throttled"):
        return True
    return exc.kind == "http" and exc.status >= 500


def _network_error(key: str, exc: BaseException) -> ReadError:
    """A ReadError with a kind a user (and the dialog, and the retry loop) can act on."""
    status = getattr(exc, "status", None) or getattr(exc, "code", None)
    name = type(exc).__name__
    text = str(exc)
    busy = getattr(exc, "errno", None) == errno.EBUSY  # how s3fs reports SlowDown and 503s
    if status == 429 or busy or "SlowDown" in text or "Throttl" in text \
            or "reduce your request rate" in text.lower() or "Service Unavailable" in text:
        err = ReadError(f"the server asks to slow down (throttled) reading {key}", "throttled")
    elif status == 407:
        err = ReadError(f"the proxy refused the user name or password (HTTP 407) reading {key}: check the proxy "
                        "settings (in QGIS: Settings > Options > Network)", "http", 407)
    elif status == 401:
        err = ReadError(f"access denied (HTTP 401: the server wants a user name and password, or refused "
                        f"those given) reading {key}: check the credentials", "forbidden", 401)
    elif status == 403 or isinstance(exc, PermissionError) or "AccessDenied" in text:
        err = ReadError(f"access denied (HTTP 403) reading {key}: check the URL and credentials", "forbidden",
                        403 if status == 403 else 0)
    elif isinstance(status, int) and status >= 400:
        err = ReadError(f"HTTP {status} reading {key}", "http", status)
    elif _certificate_problem(exc):
        err = ReadError(f"the server's certificate is not trusted ({_certificate_reason(exc)}) reading {key}: "
                        "add the certificate authority that signed it to the trusted ones", "certificate")
    elif isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or "Timeout" in name:
        err = ReadError(f"timed out reading {key} (the server did not answer in time)", "timeout")
    elif "Connect" in name or isinstance(exc, ConnectionRefusedError) or "Cannot connect" in text:
        err = ReadError(f"cannot connect to the server for {key}: {exc}", "unreachable")
    elif "Payload" in name or "Disconnected" in name or isinstance(exc, ConnectionError) \
            or "reset" in text.lower() or "closed" in text.lower():
        err = ReadError(f"the connection broke while reading {key}: {text or name}", "reset")
    else:
        err = ReadError(f"network error reading {key}: {text or name}", "")
    return err


def _causes(exc: BaseException):
    seen = 0
    while exc is not None and seen < 8:
        yield exc
        exc = getattr(exc, "certificate_error", None) or exc.__cause__ or exc.__context__
        seen += 1


def _certificate_problem(exc: BaseException) -> bool:
    for e in _causes(exc):
        if isinstance(e, ssl.SSLCertVerificationError) or "Certificate" in type(e).__name__ \
                or "CERTIFICATE_VERIFY_FAILED" in str(e):
            return True
    return False


def _certificate_reason(exc: BaseException) -> str:
    """OpenSSL's reason ("self-signed certificate in certificate chain", "Hostname mismatch...")."""
    for e in _causes(exc):
        reason = getattr(e, "verify_message", None)
        if reason:
            return str(reason)
    text = str(exc)
    marker = "certificate verify failed:"
    if marker in text:
        return text.split(marker, 1)[1].split("(_ssl")[0].strip(" ')]\"") or "verification failed"
    return "verification failed"


def open_source(url: str, options: StoreOptions) -> Source:
    """A Source for a local path, file://, http(s):// or s3:// URL."""
    text = str(url).strip()
    if not text:
        raise StoreNotFound("no store URL given")
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        path = Path(parsed.path if scheme == "file" else text).expanduser()
        if not path.exists():
            raise StoreNotFound(f"no such folder: {path}")
        if not path.is_dir():
            raise StoreNotFound(f"{path} is a file; a Zarr store is a folder")
        return LocalSource(path.resolve(), concurrency=min(options.concurrency, 8))
    if scheme in ("http", "https"):
        if not parsed.netloc:
            raise StoreNotFound(f"malformed URL (no host): {text}")
        # aiohttp ignores proxy environment variables unless told to trust them; the QGIS
        # side passes QGIS's own proxy explicitly instead.
        kwargs: dict = {}
        if options.proxy:
            kwargs["proxy"] = options.proxy
        if not options.verifies(text):
            kwargs["ssl"] = False
        elif options.ca_pem:
            kwargs["ssl"] = ssl_context(options.ca_pem)
        fs = HTTPFileSystem(asynchronous=False, skip_instance_cache=True,
                            client_kwargs={"timeout": aiohttp.ClientTimeout(total=options.timeout,
                                                                            sock_connect=min(options.timeout, 30)),
                                           "trust_env": options.proxy is None and _env_matters()},
                            get_client=functools.partial(_http_client, max(1, options.concurrency)),
                            **kwargs)
        return FsspecSource(fs, text, text, options.concurrency, can_list=False, retries=options.retries)
    if scheme == "s3":
        if not parsed.netloc:
            raise StoreNotFound(f"malformed S3 URL (no bucket): {text}")
        import s3fs  # s3:// only: s3fs and botocore take a second to import, not worth it otherwise

        kw: dict = {"skip_instance_cache": True}
        # s3://KEY:SECRET@bucket/...: the URL's own keys (never part of the bucket name, which
        # would put the secret into botocore's error messages)
        userinfo, _, bucket = parsed.netloc.rpartition("@")
        key, secret = options.key, options.secret
        if userinfo and not (key or secret):
            user, _, password = userinfo.partition(":")
            key, secret = unquote(user) or None, unquote(password) or None
        if key or secret:
            kw.update(key=key, secret=secret)
        elif options.profile:
            kw["profile"] = options.profile
        else:
            kw["anon"] = True if options.anon is None else options.anon
        client = {}
        if options.endpoint_url:
            client["endpoint_url"] = options.endpoint_url
        if options.region:
            client["region_name"] = options.region
        endpoint = options.endpoint_url or "https://s3.amazonaws.com"
        if not options.verifies(endpoint):
            client["verify"] = False
        elif options.ca_pem and endpoint.lower().startswith("https:"):
            client["verify"] = ca_bundle_file(options.ca_pem)
        if client:
            kw["client_kwargs"] = client
        # One retry policy (ours, in FsspecSource): s3fs and botocore would otherwise each
        # retry too, and a throttled or dead endpoint would take minutes to report.
        kw["config_kwargs"] = {"connect_timeout": options.timeout, "read_timeout": options.timeout,
                               "max_pool_connections": max(10, options.concurrency),
                               "retries": {"max_attempts": 1, "mode": "standard"}}
        if options.proxy:
            kw["config_kwargs"]["proxies"] = {"http": options.proxy, "https": options.proxy}
        fs = s3fs.S3FileSystem(**kw)
        fs.retries = 1  # s3fs's own retry loop: once, ours does the rest
        root = f"{bucket}{parsed.path}".rstrip("/")
        return FsspecSource(fs, root, text, options.concurrency, can_list=True, retries=options.retries)
    raise StoreNotFound(f"unsupported URL scheme {scheme!r} in {text}: use a folder, file://, "
                        "http(s):// or s3://")


def _env_matters() -> bool:
    """Whether aiohttp should read proxy settings (and .netrc) from the environment: only
    where there are any (it would look them up again for every request)."""
    names = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc")
    if any(os.environ.get(n) or os.environ.get(n.upper()) for n in names):
        return True
    return (Path.home() / ".netrc").exists()


async def _http_client(connections: int, **kwargs):
    """aiohttp's session with as many connections as requests may be in flight (its default
    of 100 would hold back the end of a wave)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0), **kwargs)


def coalesce(ranges: Iterable[Range], max_gap: int = 0, max_size: int = 16 << 20) -> list[list[Range]]:
    """Group byte ranges of the same object into runs that one request can fetch.

    Ranges merge when the gap between them is at most `max_gap` bytes and the merged
    request stays under `max_size`. Inner chunks sit in Morton order inside a shard, so
    ranges are merged by offset, not by grid adjacency.
    """
    by_key: dict[str, list[Range]] = {}
    for r in ranges:
        by_key.setdefault(r.key, []).append(r)
    groups: list[list[Range]] = []
    for key in sorted(by_key):
        run: list[Range] = []
        for r in sorted(by_key[key], key=lambda r: r.start):
            if run and r.start - run[-1].end <= max_gap and r.end - run[0].start <= max_size \
                    and r.start >= run[-1].end:
                run.append(r)
            else:
                if run:
                    groups.append(run)
                run = [r]
        if run:
            groups.append(run)
    return groups
