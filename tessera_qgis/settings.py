"""One typed settings object over QgsSettings (prefix `tessera/`), and the saved connections.

Nothing secret is stored here: S3 keys live in QGIS authentication configurations.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

from .core.connections import SAMPLE_URL, Connection, presets
from .core.sources import StoreOptions

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

    def store_options(self, **overrides) -> StoreOptions:
        """StoreOptions from the settings and QGIS's network settings (proxy, timeout)."""
        opts = dict(cache_dir=self.cache_dir or None, cache_limit_bytes=self.cache_limit_mb << 20,
                    memory_cache_bytes=self.memory_mb << 20, concurrency=self.concurrency,
                    timeout=float(self.timeout_s) if self.timeout_s > 0 else qgis_timeout_s(),
                    proxy=qgis_proxy_url())
        opts.update(overrides)
        return StoreOptions(**opts)


def qgis_timeout_s() -> float:
    """QGIS's network timeout in seconds (60 if it is not set)."""
    from qgis.core import QgsNetworkAccessManager

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


# -- connections ---------------------------------------------------------------------------
def custom_connections() -> list[Connection]:
    raw = QgsSettings().value(PREFIX + "connections", "[]")
    try:
        return [Connection.from_dict(d) for d in json.loads(raw or "[]")]
    except (ValueError, TypeError):
        return []


def save_custom_connections(conns: list[Connection]) -> None:
    QgsSettings().setValue(PREFIX + "connections", json.dumps([c.to_dict() for c in conns if c.editable]))


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


def resolve_url(conn: Connection) -> str:
    """The store URL of a connection; the sample connection's store is built on first use
    (about 15 s, offline) — call from a task."""
    if conn.url != SAMPLE_URL:
        return conn.url
    path = sample_store_path()
    if not (path / "zarr.json").exists():
        import shutil
        import tempfile

        from .core.sample import generate

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".sample-", dir=path.parent))
        try:
            generate(tmp / "store")
            shutil.rmtree(path, ignore_errors=True)
            (tmp / "store").replace(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(path)
