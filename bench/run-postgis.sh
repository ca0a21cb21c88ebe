#!/usr/bin/env bash
# Starts a throw-away PostgreSQL 15 + PostGIS 3 server (temp dir, loopback
# only, trust auth, run as the `postgres` system user because PostgreSQL
# refuses to run as root), runs bench/exposure against it with the given
# arguments, then stops the server and deletes its files.
#
#   bench/run-postgis.sh BUILD_DIR/bench/exposure --registrants 1000000
#
# Needs the Debian packages postgresql-15 and postgresql-15-postgis-3
# (deploy/install-deps installs them).
set -euo pipefail
"$(cd "$(dirname "$0")/.." && pwd)/deploy/install-deps" --bench

exposure=${1:?usage: run-postgis.sh PATH/TO/exposure [exposure args...]}
shift
pg_bin=/usr/lib/postgresql/15/bin
port=${PGBENCH_PORT:-54329}
if [[ ! -x $pg_bin/initdb ]]; then
  echo "run-postgis.sh: $pg_bin/initdb not found (apt-get install postgresql-15 postgresql-15-postgis-3)" >&2
  exit 1
fi
if [[ ! -f /usr/share/postgresql/15/extension/postgis.control ]]; then
  echo "run-postgis.sh: PostGIS is not installed (apt-get install postgresql-15-postgis-3)" >&2
  exit 1
fi

dir=$(mktemp -d /tmp/amparo-postgis.XXXXXX)
chown postgres: "$dir"
as_postgres() {
  if [[ $(id -un) == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}
cleanup() {
  as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

as_postgres "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log"
# Tuned for a benchmark on a shared box: data fits in memory, no fsync
# (the table is UNLOGGED anyway), loopback TCP only.
as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off \
      -c full_page_writes=off -c shared_buffers=2GB -c work_mem=256MB -c max_parallel_workers_per_gather=0 \
      -c jit=off" start >/dev/null

"$exposure" --postgis "host=127.0.0.1 port=$port user=postgres dbname=postgres" "$@"
