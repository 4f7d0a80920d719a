#!/usr/bin/env bash
# The test suite in two lanes (see tests/conftest.py): the real-process tests ("slow") one
# at a time at normal priority, every other test beside them at a lower priority. The slow
# lane mostly waits on slots and processes, so the compute lane fits in its idle CPU. Then
# the "solo" tests (slot-bounded recovery measurements) run alone. Run serially, the suite
# takes about the lanes' sum. Extra arguments go to every pytest run.
set -u
cd "$(dirname "$0")/.."
PY=${TWINCHAIN_TEST_PYTHON:-.venv/bin/python}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/twinchain-lanes.XXXXXX")
nice -n 10 "$PY" -m pytest -q -m "not slow" -p no:cacheprovider --basetemp "$tmp/compute" "$@" \
    >"$tmp/compute.log" 2>&1 &
compute_pid=$!
"$PY" -m pytest -q -m "slow and not solo" -p no:cacheprovider --basetemp "$tmp/slow" "$@"
slow=$?
wait "$compute_pid"
compute=$?
echo "---- compute lane (tests not marked slow) ----"
cat "$tmp/compute.log"
echo "---- solo (slot-bounded real-process tests, alone) ----"
"$PY" -m pytest -q -m solo -p no:cacheprovider --basetemp "$tmp/solo" "$@"
solo=$?
echo "lanes: slow exit $slow, compute exit $compute, solo exit $solo"
if [ "$slow" = 0 ] && [ "$compute" = 0 ] && [ "$solo" = 0 ]; then
  rm -rf "$tmp"
else
  echo "kept for a post-mortem (run folders, logs): $tmp"
  exit 1
fi
