#!/usr/bin/env bash
# Provide a local PostgreSQL for the store tests (Debian 12, run as root; safe to re-run).
#
# Progress goes to stderr and the only line on stdout is the export, so a CI step can do
#   eval "$(.ci/postgres.sh)" && pytest tests/test_store.py
set -euo pipefail

role=phasegate
password=phasegate
database=phasegate_test

log() { echo "postgres.sh: $*" >&2; }
as_postgres() { runuser -u postgres -- "$@"; }
psql_value() { as_postgres psql -p "$port" -XtAc "$1"; }

if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y postgresql >&2
fi

# The packaged version decides the cluster directory (15 on Debian 12); take the newest present.
newest_version_in() { find "$1" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1; }
version=$(newest_version_in /etc/postgresql || true)
if [[ -z "$version" ]]; then
    version=$(newest_version_in /usr/lib/postgresql)
    log "creating cluster $version/main"
    pg_createcluster "$version" main >&2
fi

if ! pg_ctlcluster "$version" main status >/dev/null 2>&1; then
    log "starting cluster $version/main"
    pg_ctlcluster "$version" main start >&2
fi

port=$(pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')
for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 1
done
pg_isready -h 127.0.0.1 -p "$port" >&2

if [[ -z "$(psql_value "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" ]]; then
    log "creating role $role"
    psql_value "CREATE ROLE $role LOGIN PASSWORD '$password'" >/dev/null
fi
if [[ -z "$(psql_value "SELECT 1 FROM pg_database WHERE datname = '$database'")" ]]; then
    log "creating database $database"
    as_postgres createdb -p "$port" -O "$role" "$database"
fi

echo "export PHASEGATE_TEST_POSTGRES_URL=postgresql+psycopg://$role:$password@127.0.0.1:$port/$database"
