#!/usr/bin/env bash
# Installs Debian packages that the local stack, benchmarks or browser tests use
# (haproxy, wrk, chromium...) when their command is missing.
# Usage: tools/ensure-apt.sh COMMAND:PACKAGE [COMMAND:PACKAGE...]
# Exits non-zero with one line per missing command when it cannot install them.
set -uo pipefail
missing=()
for pair in "$@"; do
  cmd="${pair%%:*}"; pkg="${pair#*:}"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  stamp=/tmp/.visits-apt-updated
  [[ -f $stamp ]] || { apt-get update -qq >&2 && touch "$stamp"; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 && exit 0
fi
echo "error: missing packages: ${missing[*]}; install them with your package manager and retry" >&2
exit 1
