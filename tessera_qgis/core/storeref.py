"""How to reach a store: one frozen value for connections, layer specs, the store cache and
the command line.

A `StoreRef` is a normalised URL plus the connection's options (S3 endpoint and region,
anonymous access, a QGIS authentication configuration id, a disk-cache folder). Secrets (S3
keys, a password in the URL) may ride along for the process that opens the store, but are
hidden from repr() and never written into a layer URI, a project or a message.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from .sources import StoreOptions
from .urls import redact_url

# The query keys a layer URI uses for these fields (kept as saved in existing projects).
URI_KEYS = {"s3_endpoint": "s3_endpoint", "s3_region": "s3_region", "authcfg": "authcfg", "cache": "cache",
            "anon": "anon"}


def normalise_url(url: str) -> str:
    """One spelling per store: whitespace and trailing slashes dropped, `file://` URLs and
    local paths made absolute (`~` expanded); remote URLs otherwise kept exactly as given (a
    `~` in a dataset name stays literal)."""
    text = str(url).strip()
    if not text:
        return text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        text = parts.path
        scheme = ""
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return os.path.abspath(os.path.expanduser(text))
    path = parts.path.rstrip("/") if len(parts.path) > 1 else parts.path
    return urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


def public_url(url: str) -> str:
    """The URL with any password masked (``http://alice:***@host/...``), for metadata and
    messages."""
    return redact_url(url)


@dataclass(frozen=True)
class StoreRef:
    url: str
    s3_endpoint: str | None = None
    s3_region: str | None = None
    anon: bool = False
    authcfg: str | None = None  # a QGIS authentication configuration holding S3 keys
    profile: str | None = None  # an AWS profile (command line)
    cache: str | None = None  # disk-cache folder for this store (overrides the default)
    key: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalise_url(self.url))
        for name in ("s3_endpoint", "s3_region", "authcfg", "profile", "cache", "key", "secret"):
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)
        if not self.url:
            raise ValueError("no store URL given")

    def __repr__(self) -> str:  # the URL's password masked; keys and secrets left out
        shown = [f"url={self.public_url!r}"]
        shown += [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr and f.name != "url"]
        return f"StoreRef({', '.join(shown)})"

    @property
    def public_url(self) -> str:
        return public_url(self.url)

    @property
    def is_local(self) -> bool:
        return "://" not in self.url

    def without_secrets(self) -> "StoreRef":
        return dataclasses.replace(self, key=None, secret=None)

    def with_(self, **changes) -> "StoreRef":
        return dataclasses.replace(self, **changes)

    def options(self, base: StoreOptions | None = None) -> StoreOptions:
        """Fetch options for this store: `base` (settings: timeouts, proxy, caches) with this
        reference's endpoint, region, credentials and cache folder."""
        base = base or StoreOptions()
        changes: dict = {"endpoint_url": self.s3_endpoint or base.endpoint_url,
                         "region": self.s3_region or base.region, "profile": self.profile or base.profile}
        if self.anon:
            changes["anon"] = True
        if self.key or self.secret:
            changes.update(key=self.key, secret=self.secret)
        if self.cache:
            changes["cache_dir"] = self.cache
        return dataclasses.replace(base, **changes)

    # -- layer URIs (never with secrets) --------------------------------------------------------
    def query_items(self) -> list[tuple[str, str]]:
        items = [("url", self.url)]
        for name in ("cache", "authcfg", "s3_endpoint", "s3_region"):
            value = getattr(self, name)
            if value:
                items.append((URI_KEYS[name], str(value)))
        if self.anon:
            items.append(("anon", "1"))
        return items

    @classmethod
    def from_query(cls, params: dict) -> "StoreRef":
        return cls(url=params.get("url", ""), s3_endpoint=params.get("s3_endpoint") or None,
                   s3_region=params.get("s3_region") or None, authcfg=params.get("authcfg") or None,
                   cache=params.get("cache") or None, anon=params.get("anon", "") in ("1", "true", "yes"))
