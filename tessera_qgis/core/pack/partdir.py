"""The `OUT.part` folder of an unfinished pack, and what lets it resume.

    OUT.part/_pack/manifest.json                 what is being packed (source, areas, years, depth)
    OUT.part/_pack/indexes/<shard key>.idx       shard indexes as fetched (.missing: no shard)
    OUT.part/_pack/pieces/<shard key>/<i>.<n>.<crc>   inner chunk i: n bytes with that crc32c
    OUT.part/_pack/whole/<key>.<n>.<crc>         unsharded objects (.absent: not in the source)

Every file is written to a temporary name and renamed, so a file that is there is whole;
its name says how long it is and what crc32c its bytes had when they arrived.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .layout import PackError

FORMAT = 1  # of the manifest


def manifest(root_sha: str, areas, years, depth, public_url: str) -> dict:
    return {"format": FORMAT, "root_sha256": root_sha, "areas": [list(a) for a in areas], "years": list(years),
            "depth": depth, "source": public_url}


def check_manifest(part: Path, want: dict) -> None:
    """Refuse an OUT.part that is not an unfinished pack of the same thing. The source is
    known by its root metadata's hash, so a pack started from one endpoint can be finished
    from another (the gateway, the bucket) holding the same store."""
    if not part.exists():
        return
    try:
        have = json.loads((part / "_pack" / "manifest.json").read_text())
    except (OSError, ValueError):
        raise PackError(f"{part} exists but is not an unfinished pack; remove it or choose another output") \
            from None
    keys = ("format", "root_sha256", "areas", "years", "depth")
    if {k: have.get(k) for k in keys} != {k: want[k] for k in keys}:
        raise PackError(f"{part} holds an unfinished pack of another store, area, year or depth "
                        f"({have.get('source')}, years {have.get('years')}); remove it to start again")


def write_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def index_path(part: Path, key: str, present: bool = True) -> Path:
    return part / "_pack" / "indexes" / f"{key}.{'idx' if present else 'missing'}"


def cached_index(part: Path, key: str) -> "bytes | None | bool":
    """A shard index kept by an earlier run (None: the shard is absent), or False."""
    if index_path(part, key, False).exists():
        return None
    try:
        return index_path(part, key).read_bytes()
    except OSError:
        return False


def piece_path(part: Path, key: str, local: int, nbytes: int, crc: int) -> Path:
    return part / "_pack" / "pieces" / key / f"{local}.{nbytes}.{crc:08x}"


def _parse(name: str) -> tuple[str, int, int] | None:
    head, _, rest = name.partition(".")
    nbytes, _, crc = rest.partition(".")
    try:
        return head, int(nbytes), int(crc, 16)
    except ValueError:
        return None


def pieces_in(part: Path, key: str) -> dict[int, tuple[int, int]]:
    """Pieces an earlier run stored for a shard: local index -> (nbytes, crc)."""
    folder = part / "_pack" / "pieces" / key
    out: dict[int, tuple[int, int]] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return out
    for name in names:
        parsed = _parse(name)
        if parsed is None or not parsed[0].isdigit():
            continue
        try:
            if (folder / name).stat().st_size == parsed[1]:
                out[int(parsed[0])] = parsed[1:]
        except OSError:
            continue
    return out


def whole_path(part: Path, key: str, nbytes: int | None = None, crc: int = 0) -> Path:
    folder = part / "_pack" / "whole" / os.path.dirname(key)
    stem = os.path.basename(key)
    return folder / (f"{stem}.absent" if nbytes is None else f"{stem}.{nbytes}.{crc:08x}")


def whole_in(part: Path, key: str) -> "tuple[int, int] | None | bool":
    """(nbytes, crc) of an unsharded object an earlier run stored, None if the source has
    none, or False."""
    folder = part / "_pack" / "whole" / os.path.dirname(key)
    stem = os.path.basename(key)
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    for name in names:
        if name == f"{stem}.absent":
            return None
        parsed = _parse(name)
        if parsed is not None and parsed[0] == stem and (folder / name).stat().st_size == parsed[1]:
            return parsed[1], parsed[2]
    return False
