#!/usr/bin/env bash
# `make locust-api`: the original design's locust load test (api/bench/locustfile.py: 3 visits
# : 1 stress : 2 metrics) for LOCUST_TIME (default 60s) with LOCUST_USERS users (default 20).
# With HOST set (e.g. the URL that `make demo KEEP=1` prints) it runs against that stack, with
# STRESS_TOKEN (the local stack's is local-stack-stress-token); without, against a visits API of
# its own on a throwaway PostgreSQL. Only loopback hosts are accepted. Exits non-zero when any
# request failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
source api/scripts/throwaway-pg.sh

VENV=.venv-locust
tools/setup-venv.sh "$VENV" tools/requirements-locust.txt
USERS=${LOCUST_USERS:-20}
TIME=${LOCUST_TIME:-60s}

API_PID=
cleanup() {
  [[ -n $API_PID ]] && kill -TERM "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null || true
  pg_down
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z ${HOST:-} ]]; then
  cargo build -q -p visits-api
  pg_up
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  HOST="http://127.0.0.1:$PORT"
  export STRESS_TOKEN=${STRESS_TOKEN:-locust-stress-token}
  DATABASE_URL=$PG_URL BIND_ADDR=127.0.0.1 PORT=$PORT STRESS_TOKEN=$STRESS_TOKEN \
    "${CARGO_TARGET_DIR:-target}/debug/visits-api" >/dev/null &
  API_PID=$!
  for _ in $(seq 1 300); do
    curl -fs "$HOST/health" >/dev/null 2>&1 && break
    kill -0 "$API_PID" 2>/dev/null || { echo "visits-api exited" >&2; exit 1; }
    sleep 0.1
  done
fi
case $HOST in
  http://127.*|http://localhost*|http://\[::1\]*) ;;
  *) echo "HOST must be a loopback URL, got $HOST" >&2; exit 2 ;;
esac
[[ -n ${STRESS_TOKEN:-} ]] || { echo "set STRESS_TOKEN (the stack's /api/stress token)" >&2; exit 2; }
export STRESS_TOKEN
echo "locust: $USERS users for $TIME against $HOST" >&2
"$VENV/bin/locust" -f api/bench/locustfile.py --headless --only-summary \
  --host "$HOST" -u "$USERS" -r "$USERS" -t "$TIME" --stop-timeout 40
