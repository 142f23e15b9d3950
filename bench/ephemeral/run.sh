#!/usr/bin/env bash
# Ephemeral events benchmark: POST /api/publish token streams (1 stream, 1 stream with 16
# requests in flight, 100 concurrent streams) against evstream.publish straight from SQL.
# Needs a built daemon ($EVSTREAM_BUILD, default build/) and the private cluster (scripts/pg)
# with the extension in $PGDATABASE (default evstream_bench).
set -euo pipefail
cd "$(dirname "$0")/../.."
export EVSTREAM_BUILD="${EVSTREAM_BUILD:-build}"
eval "$(scripts/pg env)"
export PGDATABASE="${PGDATABASE:-evstream_bench}"
psql -X -q -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = '$PGDATABASE'" | grep -q 1 ||
  { psql -X -q -d postgres -c "CREATE DATABASE $PGDATABASE" && psql -X -q -c "CREATE EXTENSION evstream"; }
node bench/ephemeral/bench.mjs "${1:-5}" | tee -a bench/ephemeral/results.jsonl
