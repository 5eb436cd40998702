"""Credentials out of text meant for people: messages, log lines, exceptions, metadata.

A store URL may carry a password (``http://alice:hunter2@host/x.zarr``, ``s3://KEY:SECRET@bucket``,
a proxy ``http://user:pass@proxy:3128``) or a signed query (``?X-Amz-Signature=...``). Every
place that shows a URL, or a text that may contain one, passes it through `redact_url`.
"""
from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@ (the '@' also percent-encoded, as in a layer URI's url= value). The
# user info runs to the last '@' before the host, so a password holding an '@' or a '/' (S3
# secrets often do) is masked whole; a path with an '@' after host:port is masked too (safe side).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s:/?#@]*):(?P<password>[^\s?#]*?)"
                       r"(?P<at>@|%40)(?=[^\s@]*(?:[\s/?#]|$))", re.IGNORECASE)
# query parameters that hold secrets (signed URLs, tokens)
_SECRET_PARAMS = ("password", "passwd", "pwd", "secret", "token", "access_token", "sig", "signature",
                  "x-amz-signature", "x-amz-security-token", "x-amz-credential", "api_key", "apikey")
_QUERY = re.compile(r"(?P<name>(?<![\w\-])(?:" + "|".join(re.escape(p) for p in _SECRET_PARAMS) + r")=)"
                    r"(?P<value>[^&\s#'\"]+)", re.IGNORECASE)


def redact_url(text) -> str:
    """`text` (a URL, or any text holding URLs) with every password and secret query value
    replaced by ``***``: ``http://alice:***@host/x.zarr``. User names and hosts stay, so the
    text still says which account and server it is about."""
    text = text if isinstance(text, str) else str(text)
    if "@" in text or "%40" in text:
        text = _USERINFO.sub(lambda m: f"{m['head']}{m['user']}:{MASK}{m['at']}" if m["password"] else m[0], text)
    if "=" in text:
        text = _QUERY.sub(lambda m: m["name"] + MASK, text)
    return text


def split_password(url: str) -> tuple[str, str | None, str | None]:
    """(the URL without its user info, user, password) for a URL that carries a password
    (``http://alice:hunter2@host/x.zarr`` gives ``("http://host/x.zarr", "alice", "hunter2")``);
    (url, None, None) for any other. Such a password belongs in a QGIS authentication
    configuration, not in a saved connection or a layer URI."""
    text = str(url)
    if "://" not in text or "@" not in text:
        return text, None, None
    parts = urlsplit(text)
    userinfo, _, host = parts.netloc.rpartition("@")
    if ":" not in userinfo:
        return text, None, None
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), unquote(user), unquote(password)


def with_credentials(url: str, user: str | None, password: str | None) -> str:
    """An http(s) URL with `user` and `password` as its user info, for the HTTP client (Basic
    authentication) when they come from elsewhere (a QGIS authentication configuration); any
    other URL, or one that has user info already, unchanged. Never for text meant for people."""
    text = str(url)
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc or not (user or password):
        return text
    userinfo = quote(user or "", safe="") + ":" + quote(password or "", safe="")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


__all__ = ["redact_url", "split_password", "with_credentials", "MASK"]
