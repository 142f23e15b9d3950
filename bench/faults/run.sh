#!/usr/bin/env bash
# Fault injection under load (RELIABILITY.md): subscribers receiving events from concurrent SQL
# writers while the daemon's connections are terminated, PostgreSQL is restarted (fast, then
# immediate), evstreamd is SIGKILLed and restarted, the feed's backend is SIGSTOPped, and a second
# daemon comes and goes. Checks every delivery and every write against the log (bench/faults/faults.mjs).
#   bench/faults/run.sh          the CI size: 200 subscribers, 100 events/s from 4 writers, 5 s stall
#   FULL=1 bench/faults/run.sh   the issue's size: 1 000 subscribers, 200 events/s, 10 s stall
# Settings of faults.mjs may be given in the environment (SUBS, RATE, WRITERS, CHANNELS, STALL_S,
# STEADY_S, FAULTS="a b1 b2 c d e"). It restarts the private cluster (scripts/pg) it runs on.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${EVSTREAM_BUILD:-build}"
export EVSTREAM_BUILD="$build"
[ -x "$build/daemon/evstreamd" ] || { echo "build evstreamd first (make test or cmake --build $build)"; exit 1; }
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "${FULL:-0}" = 1 ]; then
  export MODE=full SUBS="${SUBS:-1000}" RATE="${RATE:-200}" STALL_S="${STALL_S:-10}"
else
  export MODE="${MODE:-ci}" SUBS="${SUBS:-200}" RATE="${RATE:-100}" STALL_S="${STALL_S:-5}"
fi
scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE="${FAULTS_DB:-evstream_faults}"
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS $PGDATABASE WITH (FORCE)" -c "CREATE DATABASE $PGDATABASE"
psql -X -q -c "CREATE EXTENSION evstream"
node bench/faults/faults.mjs
