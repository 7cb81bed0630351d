#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, postgres, pg_ctl) exist.
# Prints the directory that holds them on stdout, installing Debian's packages
# when they are missing and we may; otherwise stops with one line that says what
# to install.
set -euo pipefail
find_bin() {
  if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" && -x "$d/postgres" ]] && { echo "$d"; return 0; }
  done
  return 1
}
if find_bin; then exit 0; fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing PostgreSQL server binaries from the system packages..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client) >&2 \
    || { echo "error: could not install PostgreSQL; install the 'postgresql' package (initdb, postgres) and retry" >&2; exit 1; }
  find_bin && exit 0
fi
echo "error: PostgreSQL server binaries not found; install the 'postgresql' package (initdb, postgres) and retry" >&2
exit 1
