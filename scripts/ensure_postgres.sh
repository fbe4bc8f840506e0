#!/usr/bin/env bash
# Make sure the test PostgreSQL answers; start the local cluster when it does not.
# Without KPI_REQUIRE_POSTGRES=1 an unreachable server only skips the PostgreSQL tests
# (loudly); .ci/run sets it, so in CI an unreachable server is a failure.
set -u
url="${1:-postgresql://postgres@127.0.0.1:5432/test}"

ready() { pg_isready -d "$url" -q 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "ensure_postgres: pg_isready not found (install postgresql-client)." >&2
  [ "${KPI_REQUIRE_POSTGRES:-0}" = "1" ] && exit 1 || exit 0
fi
ready && exit 0

if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  echo "ensure_postgres: PostgreSQL is down; starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi

echo "ensure_postgres: cannot reach PostgreSQL at $url" >&2
if [ "${KPI_REQUIRE_POSTGRES:-0}" = "1" ]; then
  echo "ensure_postgres: KPI_REQUIRE_POSTGRES=1, so this is a failure." >&2
  exit 1
fi
echo "ensure_postgres: the PostgreSQL tests will be SKIPPED (see the warning at the end)." >&2
exit 0
