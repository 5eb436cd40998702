"""Projects that travel: the `tessera` provider's metadata turns a folder store's path into
one relative to the project file when QGIS saves relative paths, and back when it loads, as
QGIS does for its own file-based layers (QgsProviderMetadata.absoluteToRelativeUri and
relativeToAbsoluteUri, called through QgsRasterLayer.encodedSource / decodedSource since
QGIS 3.30). A project and its pack copied together to another computer then open with every
layer valid. Remote stores (http, s3) are left as they are.

decodeUri / encodeUri give QGIS the store's folder as `path`, so QGIS's own tools that
repair or repoint file paths (*Handle Unavailable Layers*) work on TESSERA layers too.
"""
from __future__ import annotations

import os
from typing import Callable
from urllib.parse import parse_qsl, urlencode

from qgis.core import QgsProviderMetadata, QgsReadWriteContext

SAFE = ",:/~"  # as LayerSpec.to_uri writes a layer URI


def is_local(url: str) -> bool:
    return bool(url) and "://" not in url


def _relative(path: str) -> bool:
    return path.startswith(("./", "../", ".\\", "..\\")) or path in (".", "..")


def with_url(uri: str, change: Callable[[str], str]) -> str:
    """The layer URI with its `url=` changed (every other item kept, in order)."""
    items = parse_qsl(uri, keep_blank_values=True)
    if not any(k == "url" for k, _ in items):
        return uri
    return urlencode([(k, change(v) if k == "url" else v) for k, v in items], safe=SAFE)


class TesseraProviderMetadata(QgsProviderMetadata):
    """QgsProviderMetadata of the `tessera` provider, with path handling for folder stores."""

    def decodeUri(self, uri: str) -> dict:  # noqa: N802
        parts = dict(parse_qsl(uri, keep_blank_values=True))
        if is_local(parts.get("url", "")):
            parts["path"] = parts["url"]
        return parts

    def encodeUri(self, parts: dict) -> str:  # noqa: N802
        parts = dict(parts)
        path = parts.pop("path", None)
        if path:
            parts["url"] = str(path)
        items = [("url", str(parts.pop("url")))] if "url" in parts else []
        items += [(k, str(v)) for k, v in parts.items()]
        return urlencode(items, safe=SAFE)

    def absoluteToRelativeUri(self, uri: str, context: QgsReadWriteContext) -> str:  # noqa: N802
        def relative(url: str) -> str:
            if not is_local(url):
                return url
            return context.pathResolver().writePath(url.replace(os.sep, "/"))

        try:
            return with_url(uri, relative)
        except Exception:  # a project must save even if a path cannot be made relative
            return uri

    def relativeToAbsoluteUri(self, uri: str, context: QgsReadWriteContext) -> str:  # noqa: N802
        def absolute(url: str) -> str:
            if not is_local(url) or not _relative(url):
                return url
            return os.path.normpath(context.pathResolver().readPath(url))

        try:
            return with_url(uri, absolute)
        except Exception:  # an unreadable path leaves the layer invalid with a message, not a crash
            return uri
