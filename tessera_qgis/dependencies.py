"""What the plugin needs in QGIS's Python, checked before anything imports it.

A missing package must never give a traceback in a workshop: the plugin then loads as a
small stand-in that shows one dialog with the exact install command (and offers to run it).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys

# package -> (minimum version, pip requirement)
REQUIRED = {
    "zarr": ("3.0", "zarr>=3.0"),
    "numcodecs": ("0.13", "numcodecs>=0.13"),
    "fsspec": ("2024.1", "fsspec>=2024.1"),
    "s3fs": ("2024.1", "s3fs>=2024.1"),
    "aiohttp": ("3.9", "aiohttp>=3.9"),
}


# Optional: never needed to start; import name -> (pip requirement, what it adds)
OPTIONAL = {
    "sklearn": ("scikit-learn>=1.3", "random forests in Classify from labelled points"),
}


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def problems() -> list[str]:
    """Human-readable problems, empty when everything is importable and recent enough."""
    out = []
    for name, (minimum, _) in REQUIRED.items():
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(f"{name} is not installed")
            continue
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if _version_tuple(version) < _version_tuple(minimum):
            out.append(f"{name} {version} is too old (need {minimum} or newer)")
    return out


def optional_missing() -> list[tuple[str, str]]:
    """(pip requirement, what it adds) of each optional package that is not importable."""
    out = []
    for name, (req, purpose) in OPTIONAL.items():
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append((req, purpose))
    return out


def python_executable() -> str:
    """The Python that QGIS runs (on Windows and macOS sys.executable is QGIS itself)."""
    exe = sys.executable or ""
    if os.path.basename(exe).lower().startswith("python"):
        return exe
    for name in ("python3", "python3.exe", "python.exe", "python"):
        candidate = os.path.join(sys.exec_prefix, "bin" if os.name != "nt" else "", name)
        if os.path.exists(candidate):
            return candidate
    return "python3"


def install_command() -> list[str]:
    return [python_executable(), "-m", "pip", "install", "--user"] + [req for _, req in REQUIRED.values()]
