#!/usr/bin/env bash
# checkov (Terraform policy checks for infra/) in its own virtual environment, .venv-tools/checkov:
# its dependencies clash with the project's pins, so it never goes into .venv. Idempotent; prints the
# checkov executable's path. Exit 1 when it cannot be installed (the infra test then skips, saying why).
set -euo pipefail
VERSION="${CHECKOV_VERSION:-3.3.30}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv-tools/checkov"
BIN="$VENV/bin/checkov"
if [ -x "$BIN" ] && [ "$(cat "$VENV/.version" 2>/dev/null)" = "$VERSION" ]; then
  echo "$BIN"; exit 0
fi
PY="$(command -v python3.11 || command -v python3)"
rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$VERSION" >&2
echo "$VERSION" > "$VENV/.version"
echo "$BIN"
