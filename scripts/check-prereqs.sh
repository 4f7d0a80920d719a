#!/usr/bin/env bash
# Checks the system build prerequisites before the virtualenv is made, and names the Debian
# package to install for each one that is missing (pip's own errors are much less clear).
set -u
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
