"""``python -m tessera_qgis``: the command line (no Qt, no QGIS)."""
import sys
import warnings

# Library warnings are not for the user's terminal; shown only with --debug. Some are raised
# while the libraries are imported, past any filter (numcodecs 0.16 puts its own 'once' filter
# in front of ours before warning that the crc32c package is deprecated), so the imports run
# with warnings recorded, not printed.
if "--debug" in sys.argv:
    from .cli import main
else:
    warnings.simplefilter("ignore")
    with warnings.catch_warnings(record=True):
        from .cli import main

sys.exit(main())
