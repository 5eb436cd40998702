"""Errors the core raises. Each message is meant for a user: it says what went wrong and
what to do, and never contains a credential."""
from __future__ import annotations

from .urls import redact_url


class TesseraError(Exception):
    """Base of every error the core raises on purpose. Its text never holds a password: URLs
    in it are masked (``http://alice:***@host``), whoever builds the message."""

    def __init__(self, *args) -> None:
        super().__init__(*(redact_url(a) if isinstance(a, str) else a for a in args))


class StoreNotFound(TesseraError):
    """Nothing (or nothing Zarr) at the URL or path."""


class NotZarrV3(TesseraError):
    """A Zarr store, but not version 3."""


class NotTessera(TesseraError):
    """A Zarr v3 store that lacks the arrays or attributes of a TESSERA store."""


class YearNotFound(TesseraError):
    pass


class BandError(TesseraError):
    pass


class ExtentError(TesseraError):
    """An extent that cannot be read: empty, inverted, not finite, outside UTM, too large."""


class ReadError(TesseraError):
    """Data could not be fetched or decoded (network failure, corrupt chunk, bad checksum).

    `kind` says which: "unreachable", "timeout", "forbidden", "throttled", "reset", "short",
    "http" (with `status`), "corrupt", "certificate" (TLS certificate not trusted) or ""
    (anything else)."""

    def __init__(self, message: str, kind: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class Cancelled(TesseraError):
    """The caller asked to stop."""


class ExportError(TesseraError):
    pass
