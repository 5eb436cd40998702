"""``python -m tessera_qgis``: the command line (no Qt, no QGIS)."""
import sys

from .cli import main

sys.exit(main())
