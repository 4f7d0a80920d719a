#!/usr/bin/env bash
# Checks the system build prerequisites before the virtualenv is made, and names the Debian
# package to install for each one that is missing (pip's own errors are much less clear).
set -u
# --chaos: only the optional prerequisites of `make chaos` (exit 1 if any is missing).
if [ "${1:-}" = "--chaos" ]; then
  missing=()
  command -v ip >/dev/null 2>&1 || missing+=("iproute2 (ip netns, tc: validators as separate hosts)")
  found=""
  for lib in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 \
             /usr/local/lib/faketime/libfaketime.so.1; do
    [ -f "$lib" ] && found=$lib
  done
  [ -n "$found" ] || missing+=("faketime (libfaketime: clock-skew faults)")
  command -v nft >/dev/null 2>&1 || missing+=("nftables (link loss where the kernel has no netem)")
  [ "$(id -u)" = 0 ] || echo "chaos: not root: no network namespaces or tmpfs mounts (fewer fault kinds)" >&2
  if [ ${#missing[@]} -gt 0 ]; then
    echo "chaos: optional prerequisites missing:" >&2
    for m in "${missing[@]}"; do echo "  - $m" >&2; done
    echo "On Debian/Ubuntu: apt-get install iproute2 faketime nftables" >&2
    exit 1
  fi
  exit 0
fi
# --browser: the dashboard's browser tests need Chromium and its WebDriver (exit 1 if missing).
if [ "${1:-}" = "--browser" ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
    || missing+=("chromium (the dashboard's browser tests)")
  command -v chromedriver >/dev/null 2>&1 || missing+=("chromium-driver (Selenium's WebDriver for it)")
  if [ ${#missing[@]} -gt 0 ]; then
    echo "browser tests: prerequisites missing:" >&2
    for m in "${missing[@]}"; do echo "  - $m" >&2; done
    echo "On Debian/Ubuntu: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
  exit 0
fi
PY=${1:-python3}
missing=()
command -v "$PY" >/dev/null 2>&1 || missing+=("python3 (Python 3.11 or newer)")
if command -v "$PY" >/dev/null 2>&1; then
  "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || missing+=("python3 >= 3.11 (found $("$PY" --version 2>&1))")
  "$PY" -c 'import venv, ensurepip' 2>/dev/null || missing+=("python3-venv")
  inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$inc/Python.h" ] || missing+=("python3-dev (Python.h, for the native extension)")
fi
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=("build-essential (a C compiler)")
# libp2p 0.8.1 builds fastecdsa from source, which links against GMP.
if command -v cc >/dev/null 2>&1; then
  echo '#include <gmp.h>' | cc -E - >/dev/null 2>&1 || missing+=("libgmp-dev (GMP headers, for fastecdsa)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "twinchain: missing system build prerequisites:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "On Debian/Ubuntu: apt-get install build-essential python3-dev python3-venv libgmp-dev" >&2
  exit 1
fi
