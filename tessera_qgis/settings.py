"""One typed settings object over QgsSettings (prefix `tessera/`), and the saved connections.

Nothing secret is stored here: S3 keys live in QGIS authentication configurations.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable

from qgis.core import Qgis, QgsApplication, QgsAuthCertUtils, QgsNetworkAccessManager, QgsSettings
from qgis.PyQt.QtNetwork import QSslSocket

from .core.connections import SAMPLE_URL, Connection, presets
from .core.sample import SampleSpec, generate
from .core.sources import StoreOptions, host_port
from .core.storeref import StoreRef
from .core.utm import zone_of_lon
from .credentials import secure_connection
from .log import log

PREFIX = "tessera/"


def default_cache_dir() -> str:
    return str(Path(QgsApplication.qgisSettingsDirPath()) / "tessera" / "cache")


@dataclass
class Settings:
    cache_dir: str = ""  # empty: no disk cache (the in-memory cache only)
    cache_limit_mb: int = 2048
    memory_mb: int = 512
    concurrency: int = 64
    timeout_s: int = 0  # 0: QGIS's own network timeout (Settings > Options > Network)
    default_year: int = 2024
    dask_scheduler: str = ""  # empty: exports run on this machine; "tcp://host:8786": on that cluster
    budget_mpx: int = 17  # millions of 10 m pixels a map view may read (about 4096 x 4096)
    previews: str = "auto"  # over the budget: "auto" (the store's preview, else coarse), "coarse", "none"

    @classmethod
    def load(cls) -> "Settings":
        s = QgsSettings()
        out = cls()
        for f in fields(cls):
            default = getattr(out, f.name)
            value = s.value(PREFIX + f.name, default)
            try:
                setattr(out, f.name, type(default)(value))
            except (TypeError, ValueError):
                setattr(out, f.name, default)
        return out

    def save(self) -> None:
        s = QgsSettings()
        for f in fields(self):
            s.setValue(PREFIX + f.name, getattr(self, f.name))

    def store_options(self, url: str | None = None, **overrides) -> StoreOptions:
        """StoreOptions from the settings and QGIS's network settings (proxy, timeout) and SSL
        settings (the certificate authorities the user added, SSL server exceptions). With the
        store's `url`, a warning is logged when its server's certificate will not be checked."""
        ca_pem, insecure = qgis_ssl_settings()
        opts = dict(cache_dir=self.cache_dir or None, cache_limit_bytes=self.cache_limit_mb << 20,
                    memory_cache_bytes=self.memory_mb << 20, concurrency=self.concurrency,
                    timeout=float(self.timeout_s) if self.timeout_s > 0 else qgis_timeout_s(),
                    proxy=qgis_proxy_url(), ca_pem=ca_pem, insecure_hosts=insecure)
        opts.update(overrides)
        options = StoreOptions(**opts)
        if url:
            _warn_if_unverified(options, options.endpoint_url if str(url).startswith("s3:") else url)
        return options


def qgis_timeout_s() -> float:
    """QGIS's network timeout in seconds (60 if it is not set)."""
    ms = QgsNetworkAccessManager.timeout()
    return ms / 1000.0 if ms and ms > 0 else 60.0


def qgis_proxy_url() -> str | None:
    """QGIS's HTTP proxy (Settings > Options > Network) as a URL for aiohttp and s3fs."""
    s = QgsSettings()
    enabled = str(s.value("proxy/proxyEnabled", "false")).lower() in ("true", "1")
    if not enabled:
        return None
    kind = str(s.value("proxy/proxyType", "HttpProxy"))
    if kind not in ("HttpProxy", "HttpCachingProxy", "DefaultProxy"):
        return None  # Socks5 is not supported by aiohttp without extras
    host = str(s.value("proxy/proxyHost", "")).strip()
    port = str(s.value("proxy/proxyPort", "")).strip()
    if not host:
        return None
    user = str(s.value("proxy/proxyUser", "")).strip()
    password = str(s.value("proxy/proxyPassword", "")).strip()
    auth = f"{user}:{password}@" if user else ""
    return f"http://{auth}{host}{':' + port if port else ''}"


def qgis_ssl_settings() -> tuple[str | None, tuple[str, ...]]:
    """What the user set in QGIS's authentication manager for SSL: the trusted certificate
    authorities they added (the database's and the extra CA file's; not the system's, which
    the HTTP clients trust anyway) as PEM text, and the "host:port" of every SSL server
    exception that ignores errors or turns peer verification off."""

    am = QgsApplication.authManager()
    if am is None or am.isDisabled():
        return None, ()
    try:
        trusted = {QgsAuthCertUtils.shaHexForCert(c) for c in am.trustedCaCertsCache()}
        pems, seen = [], set()
        for cert in list(am.databaseCAs()) + list(am.extraFileCAs()):
            sha = QgsAuthCertUtils.shaHexForCert(cert)
            # certTrustPolicy() reads the stored policy itself: in 3.44 the trust cache behind
            # trustedCaCertsCache() can miss a policy set to Untrusted.
            if sha in trusted and sha not in seen and not cert.isNull() \
                    and am.certTrustPolicy(cert) != QgsAuthCertUtils.CertTrustPolicy.Untrusted:
                seen.add(sha)
                pems.append(bytes(cert.toPem()).decode("ascii").strip())
        insecure = []
        for cfg in am.sslCertCustomConfigs():
            hostport = (cfg.sslHostPort() or "").strip().lower()
            if hostport and (cfg.sslIgnoredErrorEnums()
                             or cfg.sslPeerVerifyMode() == QSslSocket.PeerVerifyMode.VerifyNone):
                insecure.append(hostport if ":" in hostport else f"{hostport}:443")
    except Exception as exc:  # an auth database that cannot be read must not stop a connect
        log(f"QGIS's SSL settings could not be read: {exc}", Qgis.MessageLevel.Warning)
        return None, ()
    return ("\n".join(pems) + "\n" if pems else None), tuple(sorted(set(insecure)))


_WARNED_HOSTS: set[str] = set()


def _warn_if_unverified(options: StoreOptions, url: str | None) -> None:
    """Once per server and session: say that its certificate is not checked, and why."""
    if not url or not str(url).lower().startswith("https:") or options.verifies(url):
        return
    host = host_port(url)
    if host in _WARNED_HOSTS:
        return
    _WARNED_HOSTS.add(host)
    log(f"The certificate of {host} is not checked: an SSL server exception in QGIS's authentication "
        "manager ignores its errors (Settings > Options > Authentication > SSL Servers)",
        Qgis.MessageLevel.Warning)


# -- connections ---------------------------------------------------------------------------
def custom_connections() -> list[Connection]:
    raw = QgsSettings().value(PREFIX + "connections", "[]")
    try:
        return [Connection.from_dict(d) for d in json.loads(raw or "[]")]
    except (ValueError, TypeError):
        return []


def save_custom_connections(conns: list[Connection]) -> None:
    """Saved in QgsSettings (plain text): a password in a URL is moved into QGIS's
    authentication database first (ValueError, and nothing saved, where it cannot be)."""
    safe = [secure_connection(c) for c in conns if c.editable]
    QgsSettings().setValue(PREFIX + "connections", json.dumps([c.to_dict() for c in safe]))


def all_connections() -> list[Connection]:
    return presets() + custom_connections()


def upsert_connection(conn: Connection, old_name: str | None = None) -> None:
    conns = [c for c in custom_connections() if c.name not in (conn.name, old_name)]
    conns.append(conn)
    save_custom_connections(sorted(conns, key=lambda c: c.name.lower()))


def remove_connection(name: str) -> None:
    save_custom_connections([c for c in custom_connections() if c.name != name])


def sample_store_path() -> Path:
    return Path(QgsApplication.qgisSettingsDirPath()) / "tessera" / "sample.zarr"


SampleStep = Callable[[int, int, str], None]  # (step, of steps, what is being written)
_SAMPLE_LOCK = threading.Lock()  # one build at a time (a cancelled connect's build runs on)


# The offline sample follows the newest published layout (v2: depths, a global preview, a
# "bands" stretch), so a workshop shows depth-4 views and the preview when zoomed out.
SAMPLE_SPEC = SampleSpec(layout="v2")


def sample_steps(spec: SampleSpec = SAMPLE_SPEC) -> int:
    """How many steps building the sample reports: one per UTM zone it covers, and one for
    the global preview where the layout has one."""
    w, _, e, _ = spec.bbox
    preview = 1 if spec.layout in ("v2", "v1") else 0
    return zone_of_lon(math.nextafter(e, -math.inf)) - zone_of_lon(w) + 1 + preview


def resolve_url(conn: Connection, progress: SampleStep | None = None) -> str:
    """The store URL of a connection; the sample connection's store is built on first use
    (about 15 s, offline; `progress(step, steps, message)` as each zone is written) — call
    from a task."""
    if conn.url != SAMPLE_URL:
        return conn.url
    path = sample_store_path()
    with _SAMPLE_LOCK:
        if not (path / "zarr.json").exists():
            _build_sample(path, progress)
    return str(path)


def _build_sample(path: Path, progress: SampleStep | None) -> None:
    steps, seen = sample_steps(), []

    def say(message: str) -> None:
        seen.append(message)
        if progress is not None:
            progress(min(len(seen), steps), steps, message)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".sample-", dir=path.parent))
    try:
        generate(tmp / "store", SAMPLE_SPEC, progress=say)
        shutil.rmtree(path, ignore_errors=True)
        (tmp / "store").replace(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def connection_name(ref: StoreRef) -> str | None:
    """The name of the saved connection that reaches this store with the same options (the
    sample's by its built folder, without building it), or None. Processing's STORE
    parameter accepts the name, and it says more than a URL or an internal path."""
    for conn in all_connections():
        url = str(sample_store_path()) if conn.url == SAMPLE_URL else conn.url
        try:
            if conn.ref(url) == ref.without_secrets().with_(cache=None):
                return conn.name
        except ValueError:
            continue
    return None
