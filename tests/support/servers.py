"""Test servers on 127.0.0.1: a static HTTP server with Range support and a request log,
and an S3 API server (moto). Used by the pytest fixtures, the benchmarks and the demo.
"""
from __future__ import annotations

import asyncio
import base64
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


def loopback_url(port: int, scheme: str = "http") -> str:
    """The base URL of a test server: always 127.0.0.1."""
    return f"{scheme}://127.0.0.1:{port}"


@dataclass(frozen=True)
class LoopbackCA:
    """A certificate authority made at test time, and a server certificate it signed for
    127.0.0.1 (subjectAltName IP:127.0.0.1). PEM text throughout."""

    ca_pem: str
    cert_pem: str
    key_pem: str

    def server_context(self, folder: str | Path):
        """An ssl.SSLContext for a test server (the key is written to `folder`, 0600)."""
        import os
        import ssl

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        chain, key = folder / "server-chain.pem", folder / "server-key.pem"
        chain.write_text(self.cert_pem + self.ca_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        return ctx


def make_test_ca(name: str = "TESSERA test CA") -> LoopbackCA:
    """A fresh CA and a 127.0.0.1 server certificate (cryptography; valid for a day). The
    extensions are the ones Python's strict verification (VERIFY_X509_STRICT) asks for."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return LoopbackCA(ca.public_bytes(pem).decode(), cert.public_bytes(pem).decode(),
                  key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())


class _ThreadedServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a daemon thread: start, url, stop."""

    port = 0
    _server = None
    ssl_context = None  # set an ssl.SSLContext before start() to serve HTTPS

    @property
    def url(self) -> str:
        return loopback_url(self.port, "https" if self.ssl_context is not None else "http")

    def _serve(self, handler, name: str) -> None:
        import http.server

        self._server = http.server.ThreadingHTTPServer((HOST, 0), handler)
        if self.ssl_context is not None:  # the handshake runs in each request's own thread
            self._server.socket = self.ssl_context.wrap_socket(self._server.socket, server_side=True,
                                                               do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name=name, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    status: int
    bytes: int
    arrived: float = 0.0  # time.monotonic() when the request reached the server
    fault: str | None = None  # the fault injected into its answer, if any
    raw: str = ""  # the path exactly as the client sent it (percent-encoding kept)
    peer: int = 0  # the client's port: which connection the request came on

    @property
    def time(self) -> float:  # the arrival time, by its other name
        return self.arrived


class Link:
    """A modelled network link for RangeHTTPServer: `rtt` seconds before each response
    starts (a request's round trip), and `mbit` Mbit/s of bandwidth shared by all
    connections: response bodies go out in slices, each slice taking its bytes from one
    token bucket in turn (so concurrent responses share the link fairly).

    `in_memory`: bodies come from copies of the files kept in memory (see preload), not from
    the disk. Measured on these machines: a 64 KiB read of a file that was just read whole
    stalls for up to 1 s now and then (the page cache loses pages of it), and a stalled read
    in the server's event loop stalls every response on the link."""

    SLICE = 64 << 10

    def __init__(self, rtt: float = 0.06, mbit: float = 100.0, burst: int = 128 << 10,
                 in_memory: bool = False) -> None:
        self.rtt = rtt
        self.rate = mbit * 1e6 / 8  # bytes per second
        self.burst = burst
        self.in_memory = in_memory
        self._files: dict[Path, bytes] = {}
        self.sent = 0
        self._tokens = float(burst)
        self._stamp: float | None = None
        self._lock: asyncio.Lock | None = None

    async def take(self, nbytes: int) -> None:
        """Wait until the link can carry `nbytes` more (first come, first served)."""
        import time

        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            now = time.monotonic()
            if self._stamp is not None:
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < nbytes:
                await asyncio.sleep((nbytes - self._tokens) / self.rate)
                now = time.monotonic()  # a late wake-up is credited: the rate stays exact
                self._tokens = min(self.burst + nbytes, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
            self._tokens -= nbytes
            self.sent += nbytes

    def preload(self, *folders: Path) -> int:
        """Read every file under `folders` into memory (with in_memory); returns the bytes."""
        for folder in folders:
            for path in Path(folder).rglob("*"):
                if path.is_file():
                    self._file(path)
        return sum(len(b) for b in self._files.values())

    def _file(self, path: Path) -> bytes:
        key = path.resolve()
        data = self._files.get(key)
        if data is None:
            data = self._files[key] = path.read_bytes()
        return data

    def _slices(self, path: Path, start: int, end: int):
        """Bytes start..end of a file in slices of SLICE: from the copy in memory (in_memory)
        or read from the disk slice by slice."""
        if self.in_memory:
            body = memoryview(self._file(path))
            for at in range(start, end, self.SLICE):
                yield body[at:min(at + self.SLICE, end)]
            return
        with open(path, "rb") as f:
            f.seek(start)
            for at in range(start, end, self.SLICE):
                yield f.read(min(self.SLICE, end - at))

    async def respond(self, request, root: Path):
        """A GET or HEAD of a file under `root` (Range and suffix ranges honoured), its body
        paced by the link; None where the static handler should answer (no such file)."""
        from aiohttp import web

        path = root / request.path.lstrip("/")
        if not path.is_file() or ".." in request.path:
            return None
        size = path.stat().st_size
        rng = _parse_range(request.headers.get("Range"), size)
        start, end = rng if rng else (0, size)
        if start >= size or end <= start:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        headers = {"Accept-Ranges": "bytes"}
        if rng:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        resp = web.StreamResponse(status=206 if rng else 200, headers=headers)
        resp.content_length = end - start
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        for piece in self._slices(path, start, end):
            await self.take(len(piece))
            await resp.write(piece)
        await resp.write_eof()
        return resp


class Faults:
    """Faults a RangeHTTPServer injects: `kind` for the first `times` matching requests
    (None: every one), on paths containing `match`.

    Kinds: "503" and "429" (error statuses), "stall" (no answer for `stall` seconds, then the
    right one), "reset" (half the body, then the connection is reset: TCP RST), "truncate"
    (half the body, then an orderly close: a body shorter than its Content-Length), "corrupt"
    (bytes flipped in the body), "wrong-range"
    (the bytes and Content-Range of the next range over), "ignore-range" (200 and the whole
    file).
    """

    def __init__(self, kind: str, times: int | None = None, match: str = "", stall: float = 5.0,
                 rate: float = 1.0, seed: int = 0) -> None:
        import random

        self.kind, self.remaining, self.match, self.stall = kind, times, match, stall
        self.rate, self._random = rate, random.Random(seed)
        self.injected = 0
        self.taken: list[tuple[float, str, str | None, str]] = []  # (time.monotonic(), path, Range, kind)
        self._lock = threading.Lock()

    def take(self, path: str, has_range: bool = True, rng: str | None = None) -> str | None:
        with self._lock:
            if self.match not in path or self.remaining == 0:
                return None
            if self.kind in ("wrong-range", "ignore-range") and not has_range:
                return None
            if self.rate < 1.0 and self._random.random() >= self.rate:
                return None
            if self.remaining is not None:
                self.remaining -= 1
            self.injected += 1
            self.taken.append((time.monotonic(), path, rng, self.kind))
            return self.kind


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    if not header or not header.startswith("bytes="):
        return None
    first, _, last = header[6:].partition("-")
    if not first:
        return max(0, size - int(last)), size
    return int(first), (int(last) + 1 if last else size)


class RangeHTTPServer:
    """aiohttp's static file handler (which honours Range, suffix ranges included) in a
    thread, with a log of every request (method, path, Range, status, body bytes) and an
    optional latency added before each response. `arrivals()` lists when each request
    arrived (time.monotonic()), answered or not.
    """

    def __init__(self, root: str | Path, latency: float = 0.0, deny: tuple[str, ...] = (),
                 faults: "Faults | None" = None, ssl_context=None, link: Link | None = None) -> None:
        self.root = Path(root)
        self.link = link  # a modelled network (round trip and shared bandwidth) instead of `latency`
        self.ssl_context = ssl_context  # an ssl.SSLContext: serve HTTPS instead of HTTP
        self.latency = latency
        self.faults = faults
        self.deny = deny  # path prefixes answered with 403 Forbidden
        self.basic_auth: tuple[str, str] | None = None  # (user, password): 401 for requests without them
        self.log: list[Request] = []
        self.arrived: list[tuple[float, str]] = []  # (time.monotonic() on arrival, path)
        self.accepted: list[tuple[float, int]] = []  # (time.monotonic(), client port) of each connection
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._thread: threading.Thread | None = None
        self.port = 0  # set before start() to serve on a given port (a server started again)

    @property
    def url(self) -> str:
        return loopback_url(self.port, "https" if self.ssl_context is not None else "http")

    def start(self) -> "RangeHTTPServer":
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # report to the starting thread
                error.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="range-http", daemon=True)
        self._thread.start()
        ready.wait(30)
        if error:
            raise error[0]
        return self

    async def _start(self) -> None:
        from aiohttp import web

        @web.middleware
        async def delay(request, handler):
            request["arrived"] = time.monotonic()
            with self._lock:
                self.arrived.append((request["arrived"], request.path))
            if self.link is not None:
                await asyncio.sleep(self.link.rtt)
            elif self.latency:
                await asyncio.sleep(self.latency)
            if any(request.path.startswith(p) for p in self.deny):
                raise web.HTTPForbidden()
            if self.basic_auth is not None:
                want = "Basic " + base64.b64encode(":".join(self.basic_auth).encode()).decode()
                if request.headers.get("Authorization") != want:
                    raise web.HTTPUnauthorized()
            kind = self.faults.take(request.path, "Range" in request.headers, request.headers.get("Range")) \
                if self.faults is not None else None
            request["fault"] = kind
            if kind is not None:
                faulty = await self._fault(request, kind)
                if faulty is not None:
                    return faulty
            if self.link is not None and request.method in ("GET", "HEAD"):
                paced = await self.link.respond(request, self.root)
                if paced is not None:
                    return paced
            return await handler(request)

        async def record(request, response) -> None:
            size = 0 if request.method == "HEAD" else (response.content_length or 0)
            with self._lock:
                self.log.append(Request(request.method, request.path, request.headers.get("Range"),
                                        response.status, size, request.get("arrived", 0.0), request.get("fault"),
                                        request.raw_path, _peer_port(request.transport)))

        app = web.Application(middlewares=[delay])
        app.on_response_prepare.append(record)
        app.router.add_static("/", self.root, follow_symlinks=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        manager = self._runner.server  # told of every connection its handlers take on
        made = manager.connection_made

        def connection_made(handler, transport) -> None:
            with self._lock:
                self.accepted.append((time.monotonic(), _peer_port(transport)))
            made(handler, transport)

        manager.connection_made = connection_made
        # A backlog past aiohttp's 128: a cold view opens 100-150 connections at once, and a full
        # accept queue drops SYNs, which the client resends after a second (an object store's
        # front end does not do that to a burst of this size).
        site = web.TCPSite(self._runner, HOST, self.port, ssl_context=self.ssl_context,  # port 0: any free
                           backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _fault(self, request, kind: str):
        """A faulty answer, or None to answer normally (after a stall)."""
        from aiohttp import web

        if kind in ("503", "429"):
            return web.Response(status=int(kind), text="injected fault")
        if kind == "stall":
            await asyncio.sleep(self.faults.stall)
            return None
        path = self.root / request.path.lstrip("/")
        if not path.is_file():
            return None
        data = path.read_bytes()
        rng = _parse_range(request.headers.get("Range"), len(data))
        start, end = rng if rng else (0, len(data))
        status = 206 if rng else 200
        if kind == "wrong-range" and rng:  # the next range over (or the one before, at the end)
            shift = 16 if end + 16 <= len(data) else -min(16, start)
            start, end = start + shift, end + shift
        if kind == "ignore-range":
            start, end, status = 0, len(data), 200
        body = bytearray(data[start:end])
        headers = {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"} if status == 206 else {}
        if kind == "corrupt" and body:
            for i in range(0, len(body), max(1, len(body) // 8)):
                body[i] ^= 0x5A
        if kind in ("reset", "truncate"):
            resp = web.StreamResponse(status=status, headers=headers)
            resp.content_length = len(body)
            await resp.prepare(request)
            await resp.write(bytes(body[: len(body) // 2]))
            sock = request.transport.get_extra_info("socket")
            if kind == "reset" and sock is not None:  # an abrupt close: RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.close()  # the half body is flushed first
            return resp
        return web.Response(status=status, body=bytes(body), headers=headers)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop = None

    def reset(self) -> None:
        with self._lock:
            self.log.clear()
            self.arrived.clear()
            self.accepted.clear()

    def connections(self) -> list[tuple[float, int]]:
        """(time.monotonic() when accepted, client port) of every connection, in order."""
        with self._lock:
            return list(self.accepted)

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self.log)

    def arrivals(self) -> list[tuple[float, str]]:
        """(time.monotonic() when it arrived, path) of every request, in arrival order."""
        with self._lock:
            return list(self.arrived)

    def stats(self) -> dict:
        reqs = self.requests()
        return {"requests": len(reqs), "bytes": sum(r.bytes for r in reqs)}

    def __enter__(self) -> "RangeHTTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _peer_port(transport) -> int:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return int(peer[1]) if peer else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 API server on 127.0.0.1 with fake credentials; upload folders into it."""

    KEY = "tessera-test-key"
    SECRET = "tessera-test-secret"
    REGION = "us-east-1"

    def __init__(self) -> None:
        self.port = 0
        self._server = None

    @property
    def endpoint_url(self) -> str:
        return loopback_url(self.port)

    def start(self) -> "S3Server":
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.REGION,
                            aws_access_key_id=self.KEY, aws_secret_access_key=self.SECRET)

    def storage_options(self) -> dict:
        """fsspec/s3fs options for this server."""
        return {"key": self.KEY, "secret": self.SECRET,
                "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.REGION}}

    def upload_folder(self, folder: str | Path, bucket: str, prefix: str) -> str:
        """Upload every file under `folder` to s3://bucket/prefix/...; returns that URL."""
        folder = Path(folder)
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                client.upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{prefix}"

    def __enter__(self) -> "S3Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ForwardProxy(_ThreadedServer):
    """An HTTP forward proxy on 127.0.0.1 that logs what it forwards: plain HTTP requests (any
    method, end-to-end headers and body passed on, so S3's signed requests work) and CONNECT
    tunnels (HTTPS). With `auth=(user, password)` it answers 407 unless the request carries
    that Basic Proxy-Authorization. For checking that a client really uses a proxy."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.seen: list[str] = []  # absolute URLs forwarded, and "host:port" of tunnels
        self.tunnels: list[str] = []  # "host:port" of each CONNECT let through
        self.refused = 0  # requests answered 407
        self.auth = auth

    def start(self) -> "ForwardProxy":
        import base64
        import http.server
        import select
        import urllib.error
        import urllib.request

        proxy = self
        expected = None
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
        hop = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
               "transfer-encoding", "upgrade", "host", "content-length"}
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy itself

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _allowed(self) -> bool:
                if expected is None or self.headers.get("Proxy-Authorization") == expected:
                    return True
                proxy.refused += 1
                self.send_response(407)
                self.send_header("Proxy-Authenticate", 'Basic realm="tessera test proxy"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return False

            def _forward(self) -> None:
                if not self._allowed():
                    return
                proxy.seen.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                req = urllib.request.Request(self.path, data=body, headers=headers, method=self.command)
                try:
                    with opener.open(req, timeout=30) as r:
                        status, data, rh = r.status, r.read(), r.headers
                except urllib.error.HTTPError as err:
                    status, data, rh = err.code, err.read(), err.headers
                self.send_response(status)
                for k, v in rh.items():
                    if k.lower() not in hop and k.lower() not in ("server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_CONNECT(self) -> None:  # noqa: N802 (a tunnel for HTTPS)
                if not self._allowed():
                    return
                host, _, port = self.path.rpartition(":")
                proxy.seen.append(self.path)
                proxy.tunnels.append(self.path)
                upstream = socket.create_connection((host, int(port)), timeout=30)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                ends = [self.connection, upstream]
                try:
                    while True:
                        ready, _, _ = select.select(ends, [], [], 30)
                        if not ready:
                            break
                        for src in ready:
                            data = src.recv(65536)
                            if not data:
                                return
                            (upstream if src is self.connection else self.connection).sendall(data)
                except OSError:
                    pass
                finally:
                    upstream.close()
                    self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward  # noqa: N815

        self._serve(Handler, "proxy")
        return self


class ThrottlingS3Proxy(_ThreadedServer):
    """A reverse proxy in front of the S3 server that answers the first `times` requests with
    503 SlowDown, as S3 does when a client goes too fast (None: every request)."""

    BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")

    def __init__(self, target: str, times: int | None = 3) -> None:
        self.target = target.rstrip("/")
        self.remaining = times
        self.throttled = 0
        self.paths: list[str] = []  # request paths exactly as the client sent them
        self._lock = threading.Lock()

    def start(self) -> "ThrottlingS3Proxy":
        import http.server
        import urllib.error
        import urllib.request

        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.paths.append(self.path)
                    throttle = proxy.remaining is None or proxy.remaining > 0
                    if throttle:
                        proxy.throttled += 1
                        if proxy.remaining is not None:
                            proxy.remaining -= 1
                if throttle:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(proxy.BODY)))
                    self.end_headers()
                    self.wfile.write(proxy.BODY)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                req = urllib.request.Request(proxy.target + self.path, data=body, headers=headers,
                                             method=self.command)
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, data, rh = r.status, r.read(), r.headers
                except urllib.error.HTTPError as err:
                    status, data, rh = err.code, err.read(), err.headers
                self.send_response(status)
                for k, v in rh.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle  # noqa: N815

        self._serve(Handler, "s3-throttle")
        return self


def arrays_read(srv: "RangeHTTPServer", leave_out=()) -> set[str]:
    """The arrays whose chunks or shard indexes the server was asked for, but `leave_out`."""
    out = set()
    for r in srv.requests():
        parts = r.path.split("/")
        if "c" in parts:
            out.add(parts[parts.index("c") - 1])
    return out - set(leave_out)
