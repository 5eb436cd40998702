"""A password typed into a store URL (``http://alice:hunter2@host/x.zarr``,
``s3://KEY:SECRET@bucket/x.zarr``) moved into QGIS's authentication database: saved
connections, layer URIs and projects then hold the store's URL without it and the id of a
QGIS authentication configuration (Basic: user name and password; for S3 the key and
secret), as for S3 keys chosen in the connection editor. Main thread only: QGIS may ask for
its master password."""
from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from qgis.core import QgsApplication, QgsAuthMethodConfig
from qgis.PyQt.QtCore import QCoreApplication

from .core.connections import Connection
from .core.urls import split_password


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraCredentials", text)


def has_password(url: str) -> bool:
    return split_password(url)[2] is not None


def store_password(url: str, authcfg: str | None = None) -> tuple[str, str | None]:
    """(the URL without its password, the authentication configuration that now holds it).
    A URL without a password comes back as it is, with `authcfg`. Raises ValueError (nothing
    saved) when the URL has a password and `authcfg` is given too, or when QGIS's
    authentication database cannot store it."""
    clean, user, password = split_password(url)
    if password is None:
        return url, authcfg
    if authcfg:
        raise ValueError(tr("The URL holds a password and a QGIS authentication configuration is chosen too: "
                            "remove the password from the URL."))
    manager = QgsApplication.authManager()
    cfg = QgsAuthMethodConfig("Basic")
    cfg.setName(f"TESSERA {user}@{urlsplit(clean).hostname or clean}")
    cfg.setUri(clean)
    cfg.setConfig("username", user or "")
    cfg.setConfig("password", password)
    if manager.isDisabled() or not manager.storeAuthenticationConfig(cfg)[0] or not cfg.id():
        raise ValueError(tr("The password in the URL was not saved: QGIS's authentication database is not "
                            "available (Settings > Options > Authentication)."))
    return clean, cfg.id()


def secure_connection(conn: Connection) -> Connection:
    """The connection with a password in its URL moved into a QGIS authentication
    configuration (the same connection when its URL holds none)."""
    url, authcfg = store_password(conn.url, conn.authcfg or None)
    if url == conn.url:
        return conn
    return dataclasses.replace(conn, url=url, authcfg=authcfg or "")
