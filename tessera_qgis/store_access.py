"""Opening stores from QGIS: fetch options from the plugin settings and QGIS's network
settings, S3 keys from a QGIS authentication configuration, and one opened store per
StoreRef for the whole QGIS session (every layer, clone, dialog, Browser item, algorithm)."""
from __future__ import annotations

from qgis.core import QgsApplication, QgsAuthMethodConfig

from .core.errors import TesseraError
from .core.pool import StorePool
from .core.sources import StoreOptions
from .core.store import TesseraStore
from .core.storeref import StoreRef
from .settings import Settings

POOL = StorePool()


def auth_credentials(authcfg: str) -> tuple[str | None, str | None]:
    """(key, secret) of a QGIS authentication configuration (Basic: username/password)."""
    cfg = QgsAuthMethodConfig()
    if not QgsApplication.authManager().loadAuthenticationConfig(authcfg, cfg, True):
        raise TesseraError(f"QGIS authentication configuration {authcfg!r} cannot be loaded")
    return cfg.config("username") or None, cfg.config("password") or None


def store_options(ref: StoreRef) -> StoreOptions:
    """Fetch options for a store: the plugin settings and QGIS's proxy, timeout and SSL
    settings, the reference's S3 settings, and S3 keys from its auth configuration."""
    base = Settings.load().store_options(url=ref.url, endpoint_url=ref.s3_endpoint, region=ref.s3_region)
    if ref.authcfg and not (ref.key or ref.secret):
        key, secret = auth_credentials(ref.authcfg)
        ref = ref.with_(key=key, secret=secret)
    return ref.options(base)


def shared_store(ref: StoreRef, cancel=None) -> TesseraStore:
    """The opened store for a reference (network on first use: call from a task, whose
    `cancel` check stops the opening)."""
    return POOL.get(ref, store_options, cancel)


def opened_store(ref: StoreRef) -> TesseraStore | None:
    """The store if it is open already (never touches the network: safe on the UI thread)."""
    return POOL.opened(ref)


def forget_stores() -> None:
    POOL.clear()
