#!/usr/bin/env bash
# `make bench-api`: the visits API (release-api build) against pgbench on one throwaway,
# durable PostgreSQL (fsync and synchronous_commit on, as on RDS), on this machine. Prints
# measured vs target. Not a test: figures depend on the machine and on what else runs on it.
# pgbench runs the API's single-row INSERT on the same table (counter trigger included): the
# target's baseline. It also runs on a copy without the trigger, a stricter figure to report.
set -euo pipefail
cd "$(dirname "$0")/../.."
source api/scripts/throwaway-pg.sh

CONNS=${BENCH_CONNS:-32}
SECS=${BENCH_SECS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
PRELOAD=${BENCH_PRELOAD_ROWS:-2000000}
HOST=127.0.0.1

tools/ensure-apt.sh wrk:wrk curl:curl
command -v pgbench >/dev/null || tools/ensure-apt.sh pgbench:postgresql-contrib
PGBENCH=$(command -v pgbench)
echo "building visits-api (profile release-api)..." >&2
cargo build -q --profile release-api -p visits-api
BIN=${CARGO_TARGET_DIR:-target}/release-api/visits-api

OUT=$(mktemp -d /tmp/visits-bench.XXXXXX)
API_PID=
cleanup() {
  [[ -n $API_PID ]] && kill -TERM "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null || true
  pg_down
  rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_up "shared_buffers=256MB"
createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres visits
DB_URL="postgres://postgres@127.0.0.1:$PG_PORT/visits"
psql_c() { psql -q -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -d visits -v ON_ERROR_STOP=1 -At -c "$1"; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://$HOST:$PORT"

# Starts the API; sets API_PID and READY_MS (exec to the first 200 from /health).
start_api() {
  local t0 t1
  t0=$(date +%s%N)
  DATABASE_URL=$DB_URL BIND_ADDR=$HOST PORT=$PORT DB_POOL_MAX=${BENCH_POOL:-16} "$BIN" >"$OUT/api.log" 2>&1 &
  API_PID=$!
  until curl -fs -o /dev/null "$URL/health"; do
    kill -0 "$API_PID" 2>/dev/null || { cat "$OUT/api.log" >&2; exit 1; }
    sleep 0.002
  done
  t1=$(date +%s%N)
  READY_MS=$(( (t1 - t0) / 1000000 ))
}

stop_api() { kill -TERM "$API_PID"; wait "$API_PID" 2>/dev/null || true; API_PID=; }

# wrk summary -> "rps p99_ms non2xx"
run_wrk() {
  local log=$OUT/wrk.log
  wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$@" >"$log" 2>&1
  awk '
    /Requests\/sec:/ { rps = $2 }
    /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v = v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v = v * 1000 }; p99 = v }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.2f %d\n", rps, p99, bad + 0 }' "$log"
}

run_pgbench() {
  "$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -c "$CONNS" -j 2 -T "$SECS" -f "$1" visits 2>/dev/null \
    | awk '/^tps = / { printf "%.0f\n", $3 }'
}

rss_peak_mb() { awk '/VmHWM/ { printf "%.1f\n", $2 / 1024 }' "/proc/$API_PID/status"; }

median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# Runs "$@" (which prints "rps p99 bad") ROUNDS times; prints the round with the median rps.
median_of() {
  local r out=()
  for ((r = 0; r < ROUNDS; r++)); do out+=("$("$@")"); done
  printf '%s\n' "${out[@]}" | sort -n -k1,1 | sed -n "$(( (ROUNDS + 1) / 2 ))p"
}

echo "starting (first start runs the migrations)..." >&2
start_api; READY_FIRST=$READY_MS; stop_api
start_api; READY=$READY_MS
psql_c "CREATE TABLE visits_plain (LIKE visits INCLUDING ALL)"

# The machine is shared (other builds come and go, and disk flushes vary), so the API and
# pgbench take turns, ROUNDS times each, and each side's median round counts.
echo "POST /api/visit vs pgbench, $CONNS connections, ${SECS}s runs, $ROUNDS rounds each, taking turns..." >&2
POSTS=() PGS=() PLAINS=()
for ((r = 0; r < ROUNDS; r++)); do
  POSTS+=("$(run_wrk -s api/bench/post.lua "$URL/api/visit")")
  PGS+=("$(run_pgbench api/bench/insert.sql)")
  PLAINS+=("$(run_pgbench api/bench/insert-plain.sql)")
done
read -r POST_RPS POST_P99 POST_BAD < <(printf '%s\n' "${POSTS[@]}" | sort -n -k1,1 | sed -n "$(( (ROUNDS + 1) / 2 ))p")
PG_TPS=$(printf '%s ' "${PGS[@]}" | median)
PG_PLAIN_TPS=$(printf '%s ' "${PLAINS[@]}" | median)
ROWS=$(psql_c "SELECT total FROM visit_totals")
echo "GET /api/visits at $ROWS rows, $ROUNDS rounds..." >&2
read -r GET_RPS GET_P99 GET_BAD < <(median_of run_wrk "$URL/api/visits")
RSS=$(rss_peak_mb)
stop_api

echo "preloading $PRELOAD rows with generate_series..." >&2
psql_c "INSERT INTO visits (task_id, client_ip, user_agent, page) SELECT 'preload', '10.0.0.1', 'bench', '/p' || g FROM generate_series(1, $PRELOAD) g"
psql_c "VACUUM ANALYZE visits"
# Write the preload out now: a checkpoint flushing it would otherwise land in the next figures.
psql_c "CHECKPOINT"
BIG_ROWS=$(psql_c "SELECT total FROM visit_totals")
# The recent-10 part of the summary must stay an index scan (no sort of 2M rows).
PLAN=$(psql_c "EXPLAIN (COSTS OFF) SELECT * FROM visits ORDER BY id DESC LIMIT 10" | grep -o 'Index Scan Backward using [a-z_]*' || echo "NOT an index scan")
EXACT=$(psql_c "SELECT CASE WHEN (SELECT total FROM visit_totals) = (SELECT count(*) FROM visits) THEN 'yes' ELSE 'NO' END")
start_api; READY_BIG=$READY_MS
echo "GET /api/visits at $BIG_ROWS rows, $ROUNDS rounds..." >&2
read -r BIG_RPS BIG_P99 BIG_BAD < <(median_of run_wrk "$URL/api/visits")
RSS_BIG=$(rss_peak_mb)
stop_api

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }
verdict() { awk -v ok="$1" 'BEGIN { print (ok ? "ok" : "MISSED") }'; }

cat <<TABLE

Server loop: own hyper HTTP/1.1 loop with keep-alive, header read timeout $((${HEADER_READ_TIMEOUT_MS:-10000} / 1000)) s, body read
timeout $((${BODY_READ_TIMEOUT_MS:-10000} / 1000)) s, idle timeout ${IDLE_TIMEOUT_S:-75} s (the defaults); wrk keeps its connections alive.
Before those bounds (axum::serve, no timers), idle machine: POST 1.92x pgbench, GET p99 3.3 ms at 450k rows.

visits API benchmark ($(nproc) cores, load average now $(cut -d' ' -f1-3 /proc/loadavg), $CONNS connections, median of $ROUNDS ${SECS}s runs, durable PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}'))
| measure                                   | measured            | target              |      |
|-------------------------------------------|---------------------|---------------------|------|
| POST /api/visit (201/s)                   | $(printf '%-19s' "$POST_RPS rps")| >= pgbench          |      |
| pgbench INSERT, same table + counter      | $(printf '%-19s' "$PG_TPS tps")|                     |      |
| pgbench INSERT, plain table (no counter)  | $(printf '%-19s' "$PG_PLAIN_TPS tps")|                     |      |
| POST / pgbench, same INSERT (counted)    | $(printf '%-19s' "$(ratio "$POST_RPS" "$PG_TPS")")| >= 1.0x (aim 2x)    | $(verdict "$(awk -v a="$POST_RPS" -v b="$PG_TPS" 'BEGIN{print (a>=b)}')") |
| POST / pgbench, plain table (stricter)    | $(printf '%-19s' "$(ratio "$POST_RPS" "$PG_PLAIN_TPS")")| (report)            |      |
| POST p99 / non-2xx                        | $(printf '%-19s' "${POST_P99} ms / $POST_BAD")|                     |      |
| GET /api/visits at $(printf '%-8s' "$ROWS") rows      | $(printf '%-19s' "$GET_RPS rps")| >= 15000 rps        | $(verdict "$(( GET_RPS >= 15000 ))") |
| GET p99 at $(printf '%-8s' "$ROWS") rows              | $(printf '%-19s' "$GET_P99 ms")| <= 5 ms             | $(verdict "$(awk -v p="$GET_P99" 'BEGIN{print (p<=5)}')") |
| GET /api/visits at $(printf '%-8s' "$BIG_ROWS") rows      | $(printf '%-19s' "$BIG_RPS rps")| >= 15000 rps        | $(verdict "$(( BIG_RPS >= 15000 ))") |
| GET p99 at $(printf '%-8s' "$BIG_ROWS") rows              | $(printf '%-19s' "$BIG_P99 ms")| <= 5 ms             | $(verdict "$(awk -v p="$BIG_P99" 'BEGIN{print (p<=5)}')") |
| total exact at $(printf '%-8s' "$BIG_ROWS") rows          | $(printf '%-19s' "$EXACT")| yes                 | $(verdict "$([[ $EXACT == yes ]] && echo 1 || echo 0)") |
| 10 newest at 2M rows: plan                | $PLAN |
| peak RSS under load (VmHWM)               | $(printf '%-19s' "$RSS / $RSS_BIG MB")| <= 30 MB            | $(verdict "$(awk -v a="$RSS" -v b="$RSS_BIG" 'BEGIN{print (a<=30 && b<=30)}')") |
| start to ready (migrated DB)              | $(printf '%-19s' "$READY ms")| <= 200 ms           | $(verdict "$(( READY <= 200 ))") |
| start to ready (first start, migrating)   | $(printf '%-19s' "$READY_FIRST ms")|                     |      |
| start to ready (2M rows)                  | $(printf '%-19s' "$READY_BIG ms")| <= 200 ms           | $(verdict "$(( READY_BIG <= 200 ))") |
TABLE
