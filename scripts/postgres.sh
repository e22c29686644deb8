#!/usr/bin/env bash
# Start a PostgreSQL server on 127.0.0.1:5432 for the collector's tests, with a database and
# a role of their own, and print its URL on stdout. Installs Debian's `postgresql` package
# first if it is missing (needs root, as in CI). Idempotent: a running server is reused.
set -euo pipefail
log() { echo "postgres.sh: $*" >&2; }

if [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  if [ "$(id -u)" != 0 ]; then log "not installed, and not root to install it"; exit 1; fi
  log "installing Debian's postgresql package"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$version  *main "; then
  pg_createcluster "$version" main >&2
fi
pg_ctlcluster "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 120); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.25
done
pg_isready -q -h 127.0.0.1 -p 5432 || { log "the server did not become ready"; exit 1; }
as_postgres() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(as_postgres -c "select 1 from pg_roles where rolname = 'cli_telemetry'")" != 1 ]; then
  as_postgres -c "create role cli_telemetry login password 'cli_telemetry'" >&2
fi
# One database for the tests, which empty it at will, and one for bench/collector.py.
for db in cli_telemetry_test cli_telemetry_bench; do
  if [ "$(as_postgres -c "select 1 from pg_database where datname = '$db'")" != 1 ]; then
    as_postgres -c "create database $db owner cli_telemetry" >&2
  fi
done
echo "postgresql://cli_telemetry:cli_telemetry@127.0.0.1:5432/cli_telemetry_test"
