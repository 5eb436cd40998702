"""An export run in this process: each output written block by block, then renamed into
place when all are complete; a cancel or an error removes every temporary file and leaves
an existing output as it was."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .geotiff import class_style, remove, write
from .request import CLASS_KINDS, Prepared, Progress


def run_local(prep: Prepared, progress: Callable[[float], None] | None = None,
              cancel: Callable[[], bool] | None = None) -> list[Path]:
    req = prep.req
    written: list[tuple[Path, Path]] = []
    temps: list[Path] = []
    try:
        prog = Progress(prep.block_count() * (2 if req.cog else 1), progress, cancel)
        for target, grid in prep.plans:
            written.extend(write(prep.store, req, grid, prep.bands, prep.pca, target, prog, temps))
        # All complete: move into place (an existing output is replaced only now).
        final = []
        for tmp, target in written:
            os.replace(tmp, target)
            aux = tmp.with_name(tmp.name + ".aux.xml")  # category names, statistics (GDAL PAM)
            if aux.exists():
                os.replace(aux, target.with_name(target.name + ".aux.xml"))
            final.append(target)
        if req.kind in CLASS_KINDS:  # class names and colours as the default QGIS style
            final[0].with_suffix(".qml").write_text(class_style(req.classifier.names), encoding="utf-8")
        return final
    except BaseException:
        for tmp in temps:
            remove(tmp)
        raise
    finally:
        for tmp in temps:
            if tmp.exists() and tmp.suffix == ".part":
                remove(tmp)
