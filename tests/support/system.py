"""What a test may need of this machine. Mounting a tmpfs (a full disk, a read-only folder)
needs root: the default test environment runs as root in a private mount namespace, where
the tests mount and unmount freely; as a user (TESSERA_QGIS_ENV=host) they are skipped."""
from __future__ import annotations

import os


def why_no_mounts() -> str | None:
    """Why tmpfs tests cannot run here, or None when they can (then they must)."""
    if os.geteuid() != 0:
        return ("needs root to mount a tmpfs: runs in the default test environment (root, a private mount "
                "namespace), not as a user (TESSERA_QGIS_ENV=host)")
    return None
