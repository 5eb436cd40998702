"""Credentials out of text meant for people: messages, log lines, exceptions, metadata.

A store URL may carry a password (``http://alice:hunter2@host/x.zarr``, ``s3://KEY:SECRET@bucket``,
a proxy ``http://user:pass@proxy:3128``) or a signed query (``?X-Amz-Signature=...``). Every
place that shows a URL, or a text that may contain one, passes it through `redact_url`.
"""
from __future__ import annotations

import re

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


__all__ = ["redact_url", "MASK"]
