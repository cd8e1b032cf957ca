#!/usr/bin/env bash
# Creates (or refreshes) the project's Python virtualenv at
# ${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}/venv with tests/requirements.txt installed,
# and prints its path. Idempotent: does nothing when requirements are unchanged.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${FJORD_CACHE:-${HOME:-/root}/.cache/fjord}"
VENV="$CACHE/venv"
REQ="$REPO/tests/requirements.txt"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  "$REPO/tools/install-deps.sh" >&2
fi

stamp="$( (cat "$REQ"; python3 -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)"
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.stamp" ] && [ "$(cat "$VENV/.stamp")" = "$stamp" ]; then
  echo "$VENV"
  exit 0
fi

echo "venv: creating $VENV" >&2
rm -rf "$VENV"
mkdir -p "$CACHE"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >&2
echo "$stamp" >"$VENV/.stamp"
echo "$VENV"
