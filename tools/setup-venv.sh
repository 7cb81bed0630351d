#!/usr/bin/env bash
# Creates (or refreshes) a project-local venv from a pinned requirements file.
# Usage: tools/setup-venv.sh VENV_DIR REQUIREMENTS_FILE
# Re-runs pip only when the requirements file changed, so `make` stays fast.
set -euo pipefail
venv="$1"; req="$2"
stamp="$venv/.installed-$(basename "$req")"
if [[ -f "$stamp" ]] && cmp -s "$req" "$stamp"; then exit 0; fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
