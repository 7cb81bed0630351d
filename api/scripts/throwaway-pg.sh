# Sourced by the demo and bench scripts: a private PostgreSQL cluster in a temp dir on a free
# loopback port, run as the `postgres` OS user when we are root (initdb refuses root).
# pg_up [EXTRA postgres -c settings...] sets PG_DIR, PG_PORT, PG_URL; pg_down removes it all.

pg_bin_dir() {
  local d
  d=$("$(dirname "${BASH_SOURCE[0]}")/../../tools/ensure-postgres.sh") || return 1
  echo "$d"
}

pg_as_user() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_up() {
  local bin; bin=$(pg_bin_dir) || exit 1
  PG_BIN=$bin
  PG_DIR=$(mktemp -d /tmp/visits-pg.XXXXXX)
  [[ $(id -u) -eq 0 ]] && chown postgres: "$PG_DIR"
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  pg_as_user "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  local settings=(-c "max_connections=200")
  local s; for s in "$@"; do settings+=(-c "$s"); done
  pg_as_user "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR ${settings[*]}" start >/dev/null \
    || { cat "$PG_DIR/postgres.log" >&2; exit 1; }
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

pg_down() {
  [[ -n ${PG_DIR:-} && -d $PG_DIR ]] || return 0
  pg_as_user "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=
}
