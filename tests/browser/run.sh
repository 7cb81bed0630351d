#!/usr/bin/env bash
# `make test-browser`: drives the web page in headless Chromium against real
# visits-api processes on a throwaway PostgreSQL cluster.
# Installs Chromium (Debian's) and the npm dependencies where it can; skips with
# a clear message only when no browser can be had. Screenshots and API logs go
# to artifacts/ (git-ignored).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export ARTIFACTS_DIR=${ARTIFACTS_DIR:-$root/artifacts}
mkdir -p "$ARTIFACTS_DIR"

# --- a browser and a way to drive it -------------------------------------
if ! "$root/tools/ensure-apt.sh" chromium:chromium node:nodejs npm:npm; then
  echo "SKIP test-browser: no Chromium/Node.js could be installed here (see the line above);" \
       "install the 'chromium' and 'nodejs' packages to run the browser tests." >&2
  exit 0
fi
export CHROMIUM=${CHROMIUM:-$(command -v chromium)}
# npm ci only when the lock file changed since the last install (it wipes node_modules).
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.package-lock.json.installed" 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$here/node_modules/.package-lock.json.installed"
fi

# --- the API binary ----------------------------------------------------------
(cd "$root" && cargo build --locked -p visits-api --bin visits-api)
export API_BIN=${CARGO_TARGET_DIR:-$root/target}/debug/visits-api

# --- a throwaway PostgreSQL cluster -----------------------------------------
pgbin=$("$root/tools/ensure-postgres.sh")
tmp=$(mktemp -d /tmp/visits-browser-XXXXXX)
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  # PostgreSQL refuses to run as root.
  chown postgres "$tmp"
  as_pg=(runuser -u postgres --)
fi
pg_ctl=("${as_pg[@]}" "$pgbin/pg_ctl" -D "$tmp/data")
cleanup() {
  "${pg_ctl[@]}" -m immediate stop >/dev/null 2>&1 || true
  cp "$tmp/pg.log" "$ARTIFACTS_DIR/browser-pg.log" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
"${as_pg[@]}" "$pgbin/initdb" -D "$tmp/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
# Durability is pointless for a throwaway cluster; speed on a loaded CI machine is not.
"${pg_ctl[@]}" -l "$tmp/pg.log" -w -t 120 \
  -o "-h 127.0.0.1 -p $port -k $tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
# The last test stops the database to check the page's "database unavailable" state.
export PG_STOP="${pg_ctl[*]} -m fast -w stop"

cd "$here"
timeout 900 node --test --test-reporter=spec --test-concurrency=1 page.test.mjs
echo "screenshots: $ARTIFACTS_DIR/web-page*.png"
