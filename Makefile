# tessera-qgis. Every target that needs Python runs inside the project's test environment
# (a Debian root with QGIS 3.44 LTR, made once and cached outside the checkout, see README).
# `make -s run CMD='...'` and `make -s cli ARGS='...'` print nothing of their own.

ENV     := bash scripts/env.sh
PYTEST  := python -m pytest
DEMO_DIR ?= build/demo
PROFILE ?= default
QGIS_PLUGINS ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/$(PROFILE)/python/plugins

.PHONY: help setup lint test test-oldest unit-test qgis-test demo bench screenshots i18n run cli package install clean clean-env

help:
	@echo "make demo | test | setup | run CMD='...' | cli ARGS='...' | i18n | package | install | clean | clean-env"

setup:
	@$(ENV) setup

# Lint (flake8-qgis: Qt6/QGIS 4 readiness), unit tests without QGIS loaded (the core is
# Qt-free), then QGIS tests under pytest-qgis.
test: setup lint
	$(ENV) run $(PYTEST) -p no:pytest_qgis -W ignore::pytest.PytestConfigWarning tests/unit $(PYTEST_ARGS)
	$(ENV) run $(PYTEST) tests/qgis $(PYTEST_ARGS)
	$(ENV) oldest $(PYTEST) -p no:cacheprovider -m "not gdal and not sklearn" -W ignore::DeprecationWarning -W ignore::pytest.PytestConfigWarning tests/unit $(PYTEST_ARGS)

# The core's unit tests with the oldest dependency set (numpy 1.26, zarr 3.0.10, Python 3.11).
test-oldest:
	$(ENV) oldest $(PYTEST) -p no:cacheprovider -m "not gdal and not sklearn" -W ignore::DeprecationWarning -W ignore::pytest.PytestConfigWarning tests/unit $(PYTEST_ARGS)

lint: setup
	$(ENV) run flake8 tessera_qgis tests scripts

unit-test: setup
	$(ENV) run $(PYTEST) -p no:pytest_qgis -W ignore::pytest.PytestConfigWarning tests/unit $(PYTEST_ARGS)

qgis-test: setup
	$(ENV) run $(PYTEST) tests/qgis $(PYTEST_ARGS)

demo: setup
	@$(ENV) run python scripts/demo.py --out $(DEMO_DIR)

# The anchor kit (../shared/anchor, read-only) is copied into build/anchor, where the
# environment sees it: `make bench` runs its clients side by side with ours.
ANCHOR_KIT ?= ../shared/anchor
bench: setup
	@if [ -d "$(ANCHOR_KIT)" ] && [ ! -f build/anchor/run_side.py ]; then \
	  mkdir -p build && cp -r "$(ANCHOR_KIT)" build/anchor && chmod -R u+w build/anchor; fi
	$(ENV) run python scripts/bench.py $(BENCH_ARGS)

# Real QGIS desktop under Xvfb (installed into the environment on first use): docs/images/*.png
screenshots: setup
	$(ENV) run bash scripts/screenshots.sh

# Translations: the strings of tessera_qgis/*.py into tessera_qgis/i18n/tessera_qgis_en.ts (the
# template; other locales' .ts files keep their translations), then lrelease to .qm.
i18n: setup
	$(ENV) run python scripts/i18n.py all

run:
	@$(ENV) run sh -c "$$CMD"

cli:
	@$(ENV) run sh -c "python -m tessera_qgis $$ARGS"

package:
	@python3 scripts/package.py

# Link the plugin folder into a local QGIS profile (desktop use; QGIS must be closed or
# the plugin reloaded). The plugin needs zarr, numcodecs, fsspec, s3fs in QGIS's Python.
install:
	@mkdir -p "$(QGIS_PLUGINS)"
	@ln -sfn "$(CURDIR)/tessera_qgis" "$(QGIS_PLUGINS)/tessera_qgis"
	@echo "linked $(QGIS_PLUGINS)/tessera_qgis -> $(CURDIR)/tessera_qgis"
	@echo "enable 'TESSERA Embeddings' in Plugins > Manage and Install Plugins"

clean:
	rm -rf build dist .pytest_cache .qgis-settings tests/.qgis-settings
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Removes the cached test environment (rebuilt by the next `make setup`).
clean-env:
	@root=$$($(ENV) root); \
	if grep -q " $$root" /proc/mounts; then echo "$$root is in use"; exit 1; fi; \
	rm -rf "$$root"
