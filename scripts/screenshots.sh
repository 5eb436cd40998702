#!/usr/bin/env bash
# `make screenshots`: real QGIS desktop under Xvfb, driven by scripts/qgis_screenshot_startup.py.
# Runs inside the test environment (which has the QGIS desktop).
set -euo pipefail
cd "$(dirname "$0")/.."
export TESSERA_SHOTS=${TESSERA_SHOTS:-docs/images}
mkdir -p "$TESSERA_SHOTS"
rm -f "$TESSERA_SHOTS/screenshot.log"
profiles=$(mktemp -d)  # a fresh profile: the dialog builds the sample on first use, as for a new user
TESSERA_SRC=$PWD TESSERA_SHOTS=$PWD/$TESSERA_SHOTS timeout 300 xvfb-run -a -s "-screen 0 1400x880x24" \
  qgis --nologo --noversioncheck --profiles-path "$profiles" \
  --code scripts/qgis_screenshot_startup.py >/dev/null 2>&1 || true
rm -rf "$profiles"
cat "$TESSERA_SHOTS/screenshot.log" 2>/dev/null || true
ls -la "$TESSERA_SHOTS"/*.png
