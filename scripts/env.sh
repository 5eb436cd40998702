#!/usr/bin/env bash
# The project's test environment: a Debian root with a current QGIS and a venv, kept in a
# cache folder outside the checkout and reused across runs.
#
#   scripts/env.sh setup          build the environment once (idempotent)
#   scripts/env.sh run CMD...     run CMD inside it, in the checkout, with 127.0.0.1 reachable
#
# Environment variables:
#   TESSERA_QGIS_CACHE   cache folder (default: $XDG_CACHE_HOME/tessera-qgis or ~/.cache/tessera-qgis)
#   TESSERA_QGIS_SUITE   forky (QGIS 3.44 LTR, default) or trixie (QGIS 3.40)
#   TESSERA_QGIS_ENV     auto (default), chroot, or host: "host" uses a QGIS >= 3.40 that is
#                        already importable by this machine's python3 (a desktop install)
#   DEBIAN_MIRROR        mirror for debootstrap (default: the one this machine's apt uses)
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
SUITE=${TESSERA_QGIS_SUITE:-forky}
CACHE=${TESSERA_QGIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-qgis}
ROOT=$CACHE/root-$SUITE
VENV=/opt/tessera-venv           # path inside the root
HOST_VENV=$CACHE/host-venv
MIN_QGIS=34000                   # 3.40
MAX_QGIS=49999                   # 4.x
STAMP_VERSION=3                  # bump when the recipe changes, to rebuild caches

log() { printf '[tessera-env] %s\n' "$*" >&2; }
die() { printf '[tessera-env] error: %s\n' "$*" >&2; exit 1; }

req_hash() { cat "$HERE/requirements.txt" "$HERE/requirements-test.txt" | sha256sum | cut -c1-16; }

host_qgis_ok() {
  python3 - <<'PY' 2>/dev/null
import sys
from qgis.core import Qgis
sys.exit(0 if 34000 <= Qgis.QGIS_VERSION_INT <= 49999 else 1)
PY
}

mode() {
  case ${TESSERA_QGIS_ENV:-auto} in
    host) echo host ;;
    chroot) echo chroot ;;
    auto) if host_qgis_ok; then echo host; else echo chroot; fi ;;
    *) die "TESSERA_QGIS_ENV must be auto, chroot or host" ;;
  esac
}

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
      | grep -oE 'https?://[^ ]+' | grep -v security | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

# Run a command inside the root in a private mount namespace: mounts vanish with the process.
in_root() {
  local root=$1; shift
  unshare --mount --propagation private --fork sh -c '
    root=$1; src=$2; shift 2
    mount -t proc proc "$root/proc" &&
    mount --rbind /dev "$root/dev" &&
    mount -t tmpfs tmpfs "$root/tmp" &&
    mkdir -p "$root/src" && mount --bind "$src" "$root/src" &&
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
      PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"' sh "$root" "$HERE" "$@"
}

qgis_version_check() {  # $1 = python to run (a path inside whatever runs it)
  cat <<PY
import sys
from qgis.core import Qgis
v = Qgis.QGIS_VERSION_INT
print(f"QGIS {Qgis.QGIS_VERSION} ({v})")
if not ($MIN_QGIS <= v <= $MAX_QGIS):
    sys.exit(f"QGIS {Qgis.QGIS_VERSION} is outside the supported range 3.40 to 4.x")
from osgeo import gdal
import numpy, zarr
print("GDAL", gdal.__version__, "numpy", numpy.__version__, "zarr", zarr.__version__)
if tuple(int(p) for p in gdal.__version__.split(".")[:2]) < (3, 10):
    sys.exit("GDAL " + gdal.__version__ + " is too old (need 3.10 or newer)")
PY
}

build_root() {
  [ "$(id -u)" = 0 ] || die "building the test root needs root (debootstrap, chroot). Run as root, or install QGIS >= 3.40 and set TESSERA_QGIS_ENV=host."
  command -v unshare >/dev/null || die "unshare (util-linux) is missing"
  local part=$ROOT.partial m
  m=$(mirror)
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  # A partial root from an interrupted run: nothing is mounted into it (mounts are private
  # to the namespaces that made them), so it is safe to delete.
  if [ -d "$part" ]; then
    grep -q " $part" /proc/mounts && die "$part still has mounts; not deleting it"
    rm -rf "$part"
  fi
  mkdir -p "$CACHE"
  local script=/usr/share/debootstrap/scripts/sid
  [ -f "/usr/share/debootstrap/scripts/$SUITE" ] && script=/usr/share/debootstrap/scripts/$SUITE
  log "debootstrap $SUITE from $m into $part (about 1 min)"
  debootstrap --variant=minbase "$SUITE" "$part" "$m" "$script" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (full log: $CACHE/debootstrap.log)"; }
  cp /etc/resolv.conf "$part/etc/resolv.conf" 2>/dev/null || true
  mkdir -p "$part/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$part/usr/local/share/ca-certificates/" 2>/dev/null || true
  log "installing QGIS, GDAL and Python into the root (about 3 min)"
  apt_install "$part"
  mkdir -p "$part/src"
  mv "$part" "$ROOT"
}

# Debian packages of the root. Changing this list installs the difference into an existing
# root (no rebuild). libopenblas: Debian's numpy otherwise runs on the reference BLAS,
# which makes a PCA fit ten times slower. qgis: the desktop and qgis_process (tests run the
# algorithms through qgis_process; `make screenshots` drives the desktop). qttools5-dev-tools:
# lrelease, which compiles translations for `make i18n`.
APT_PACKAGES="ca-certificates python3-qgis qgis-providers python3-gdal gdal-bin python3-venv python3-pip"
APT_PACKAGES="$APT_PACKAGES python3-pyproj libopenblas0-pthread xvfb xauth zip qgis fonts-open-sans"
APT_PACKAGES="$APT_PACKAGES qttools5-dev-tools"

apt_install() {
  local root=$1
  in_root "$root" sh -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o Acquire::Check-Valid-Until=false update -qq
    apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
    update-ca-certificates >/dev/null 2>&1 || true
    apt-get clean
  " >"$CACHE/apt.log" 2>&1 || { tail -n 30 "$CACHE/apt.log" >&2; die "installing packages in the root failed (log: $CACHE/apt.log)"; }
  echo "$APT_PACKAGES" | sha256sum | cut -c1-16 >"$root/.tessera-apt"
}

ensure_apt() {
  local h; h=$(echo "$APT_PACKAGES" | sha256sum | cut -c1-16)
  if [ "$(cat "$ROOT/.tessera-apt" 2>/dev/null)" != "$h" ]; then
    log "updating the root's Debian packages"
    apt_install "$ROOT"
  fi
}

setup_venv_root() {
  local h; h=$(req_hash)
  if [ "$(cat "$ROOT$VENV/.req" 2>/dev/null)" = "$h" ]; then return; fi
  log "creating the venv in the root ($VENV) and installing Python packages"
  in_root "$ROOT" sh -c "
    set -e
    [ -x $VENV/bin/python ] || python3 -m venv --system-site-packages $VENV
    $VENV/bin/pip install -q --disable-pip-version-check -r /src/requirements-test.txt
  " || die "pip install in the root failed"
  echo "$h" >"$ROOT$VENV/.req"
}

setup_host() {
  local h; h=$(req_hash)
  if [ "$(cat "$HOST_VENV/.req" 2>/dev/null)" = "$h" ]; then return; fi
  log "using this machine's QGIS; creating $HOST_VENV"
  python3 -m venv --system-site-packages "$HOST_VENV"
  "$HOST_VENV/bin/pip" install -q -r "$HERE/requirements-test.txt"
  "$HOST_VENV/bin/python" -c "$(qgis_version_check)" >&2 || die "QGIS version check failed"
  echo "$h" >"$HOST_VENV/.req"
}

setup() {
  if [ "$(mode)" = host ]; then setup_host; return; fi
  case $SUITE in forky|trixie) ;; *) die "TESSERA_QGIS_SUITE must be forky or trixie";; esac
  if [ "$(cat "$ROOT/.tessera-stamp" 2>/dev/null)" != "$STAMP_VERSION" ]; then
    if [ -d "$ROOT" ]; then
      grep -q " $ROOT" /proc/mounts && die "$ROOT has mounts; end what uses it first"
      log "the cached root was made by an older recipe; rebuilding"
      rm -rf "$ROOT"
    fi
    local t0=$SECONDS
    build_root
    log "root built in $((SECONDS - t0)) s"
  fi
  ensure_apt
  setup_venv_root
  if [ ! -f "$ROOT/.tessera-stamp" ]; then
    in_root "$ROOT" $VENV/bin/python -c "$(qgis_version_check)" >&2 \
      || die "the QGIS in $ROOT is outside the supported range; set TESSERA_QGIS_SUITE=trixie or forky"
    echo "$STAMP_VERSION" >"$ROOT/.tessera-stamp"
  fi
}

run() {
  [ $# -gt 0 ] || die "run needs a command"
  setup
  if [ "$(mode)" = host ]; then
    cd "$HERE" && PATH="$HOST_VENV/bin:$PATH" PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" exec "$@"
  fi
  # Pass through a few variables that tests and users set.
  local envs=(QT_QPA_PLATFORM=offscreen PROJ_DATA=/usr/share/proj PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/src
              PATH=$VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin VIRTUAL_ENV=$VENV)
  local v
  for v in CI TESSERA_BENCH_FULL PYTEST_ADDOPTS TESSERA_QGIS_DEBUG; do
    [ -n "${!v:-}" ] && envs+=("$v=${!v}")
  done
  # The environment's QGIS profile has the checkout's plugin installed and enabled, so
  # `make run CMD='qgis_process run tessera:export ...'` finds its algorithms.
  in_root "$ROOT" sh -c '
    p=/root/.local/share/QGIS/QGIS3/profiles/default
    mkdir -p "$p/python/plugins" "$p/QGIS"
    ln -sfn /src/tessera_qgis "$p/python/plugins/tessera_qgis"
    grep -q "^tessera_qgis=true" "$p/QGIS/QGIS3.ini" 2>/dev/null ||
      printf "[PythonPlugins]\ntessera_qgis=true\n" >>"$p/QGIS/QGIS3.ini"
    cd /src && exec env "$@"' sh "${envs[@]}" "$@"
}

# The oldest dependency set users have (numpy 1.26, zarr 3.0): a venv of Debian 12's own
# Python 3.11 on this machine, for the Qt-free core's tests (no QGIS, no GDAL).
OLDEST_VENV=$CACHE/oldest-venv
oldest() {
  local h; h=$(sha256sum "$HERE/requirements-oldest.txt" | cut -c1-16)
  if [ "$(cat "$OLDEST_VENV/.req" 2>/dev/null)" != "$h" ]; then
    local py=/usr/bin/python3
    [ -x "$py" ] || py=$(command -v python3)
    log "creating $OLDEST_VENV (numpy 1.26, zarr 3.0) with $($py --version 2>&1)"
    rm -rf "$OLDEST_VENV"
    "$py" -m venv "$OLDEST_VENV" || die "cannot create a venv with $py (install python3-venv)"
    "$OLDEST_VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements-oldest.txt" \
      || die "pip install of the oldest dependency set failed"
    echo "$h" >"$OLDEST_VENV/.req"
  fi
  cd "$HERE" && PATH="$OLDEST_VENV/bin:$PATH" PYTHONPATH="$HERE" TESSERA_OLDEST=1 exec "$@"
}

cmd=${1:-}; shift || true
case $cmd in
  setup) setup ;;
  run) run "$@" ;;
  root) echo "$ROOT" ;;
  oldest) oldest "$@" ;;
  *) die "usage: $0 setup | run CMD... | oldest CMD... | root" ;;
esac
