#!/usr/bin/env bash
# The soak (RELIABILITY.md): one evstreamd holding CONNS SSE streams while CHURN connect and
# CHURN disconnect every second and RATE events/s are posted over HTTP, for SOAK_SECONDS; RSS, open
# fds and pool queue depth sampled every 10 s; pass/fail criteria in bench/soak/soak.mjs.
#   bench/soak/run.sh             the CI size: 60 s (also run by make test as suite "soak")
#   FULL=1 bench/soak/run.sh      the full size: 30 minutes (make bench FULL=1 runs it)
# Any setting of soak.mjs may be given in the environment (CONNS, CHURN, RATE, CHANNELS, SOAK_SECONDS,
# WARMUP_S, RSS_GROWTH, RSS_SLACK_MB, FD_SLACK, QUEUE_MAX). Needs a built evstreamd in
# $EVSTREAM_BUILD (build/) and the private cluster (scripts/pg). Plots: bench/plot.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${EVSTREAM_BUILD:-build}"
export EVSTREAM_BUILD="$build"
[ -x "$build/daemon/evstreamd" ] || { echo "build evstreamd first (make test or cmake --build $build)"; exit 1; }
# 10 000 streams: the daemon and this client each hold one descriptor per stream.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "${FULL:-0}" = 1 ]; then
  export MODE=full SOAK_SECONDS="${SOAK_SECONDS:-1800}" WARMUP_S="${WARMUP_S:-120}"
else
  export MODE="${MODE:-ci}" SOAK_SECONDS="${SOAK_SECONDS:-60}" WARMUP_S="${WARMUP_S:-20}"
fi
need=$(( ${CONNS:-10000} + 4 * ${CHURN:-100} + 200 ))
if [ "$(ulimit -n)" -lt "$need" ]; then
  echo "soak: the open-files limit ($(ulimit -n)) is below $need: lower CONNS" >&2; exit 1
fi
scripts/pg start >/dev/null
eval "$(scripts/pg env)"
export PGDATABASE="${SOAK_DB:-evstream_soak}"
psql -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS $PGDATABASE WITH (FORCE)" -c "CREATE DATABASE $PGDATABASE"
psql -X -q -c "CREATE EXTENSION evstream"
node bench/soak/soak.mjs
