#!/usr/bin/env bash
# `make demo` until the local stack lands: the visits API on a throwaway PostgreSQL.
# Ctrl-C stops the API and removes the database.
set -euo pipefail
cd "$(dirname "$0")/../.."
source api/scripts/throwaway-pg.sh

PORT=${PORT:-8080}
cargo build -q -p visits-api
pg_up
API_PID=
cleanup() {
  [[ -n $API_PID ]] && kill -TERM "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null
  pg_down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export DATABASE_URL=$PG_URL BIND_ADDR=${BIND_ADDR:-127.0.0.1} PORT
export ADMIN_TOKEN=${ADMIN_TOKEN:-demo-admin} STRESS_TOKEN=${STRESS_TOKEN:-demo-stress}
"${CARGO_TARGET_DIR:-target}/debug/visits-api" &
API_PID=$!
for _ in $(seq 1 300); do
  curl -fs "http://$BIND_ADDR:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$API_PID" 2>/dev/null || { echo "visits-api exited; see its output above" >&2; exit 1; }
  sleep 0.1
done
cat >&2 <<MSG

  visits API ready at http://$BIND_ADDR:$PORT   (PostgreSQL at $PG_URL)
    curl -X POST http://$BIND_ADDR:$PORT/api/visit -H 'Content-Type: application/json' -d '{"page":"/pricing"}'
    curl http://$BIND_ADDR:$PORT/api/visits
    ADMIN_TOKEN=$ADMIN_TOKEN  STRESS_TOKEN=$STRESS_TOKEN
  Ctrl-C stops it and removes the database.

MSG
wait "$API_PID"
