#!/usr/bin/env python3
"""Build the installable plugin zip: dist/tessera_qgis-VERSION.zip.

Layout the QGIS plugin manager expects ("Install from ZIP"): one top folder named like the
package, holding metadata.txt, __init__.py with classFactory, the icon and a licence.
Symlinks in the checkout (metadata.txt, resources/) are stored as real files; caches,
tests and build outputs are left out.
"""
from __future__ import annotations

import argparse
import configparser
import os
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "tessera_qgis"
SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache", ".qgis-settings"}
# .ts: translation sources; the plugin loads their compiled .qm files (`make i18n`).
SKIP_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp", ".ts", ".part"}


def version() -> str:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(REPO / "metadata.txt", encoding="utf-8")
    return cp["general"]["version"]


def files() -> list[tuple[Path, str]]:
    out = []
    top = REPO / PACKAGE
    for folder, dirs, names in os.walk(top, followlinks=True):  # resources/ is a symlink
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(names):
            path = Path(folder) / name
            if path.suffix not in SKIP_SUFFIXES:
                out.append((path, f"{PACKAGE}/{path.relative_to(top).as_posix()}"))
    out.append((REPO / "LICENSE", f"{PACKAGE}/LICENSE"))
    return out


def uncompiled_translations() -> list[Path]:
    """Translated locales (i18n/tessera_qgis_<locale>.ts, not the English template) whose .qm
    is missing: the zip would ship without them."""
    return [ts for ts in sorted((REPO / PACKAGE / "i18n").glob(f"{PACKAGE}_*.ts"))
            if ts.stem != f"{PACKAGE}_en" and not ts.with_suffix(".qm").is_file()]


def build(dest: Path) -> Path:
    missing = uncompiled_translations()
    if missing:
        raise SystemExit(f"not compiled: {', '.join(p.name for p in missing)}; run `make i18n` first")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{PACKAGE}-{version()}.zip"
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for src, arc in files():
            zf.write(src, arc)
    tmp.replace(target)
    return target


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dest", type=Path, default=REPO / "dist")
    args = ap.parse_args()
    print(build(args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
