#!/usr/bin/env bash
# The registry tests start a private PostgreSQL 15 cluster (initdb + pg_ctl in a temp folder).
# Make sure the server binaries are present; install Debian's package when they are not and we may.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${GATREC_TEST_POSTGRES_URL:-}" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "PostgreSQL server binaries missing: installing Debian's postgresql package" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "could not install PostgreSQL; the PostgreSQL tests will skip" >&2
else
  echo "PostgreSQL server binaries not found; the PostgreSQL tests will skip" >&2
fi
