#!/usr/bin/env bash
# Runs the suite against PostgreSQL: starts the local Debian cluster (installing it if
# missing), makes a role that may create the test database, and points DATABASE_URL at it.
set -euo pipefail

if ! command -v pg_lsclusters >/dev/null; then
  echo "Installing PostgreSQL"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
read -r version cluster port status _ < <(pg_lsclusters --no-header | head -1)
[ "$status" = "online" ] || pg_ctlcluster "$version" "$cluster" start
su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_roles WHERE rolname='vernacular'\"" | grep -q 1 \
  || su postgres -c "psql -q -p $port -c \"CREATE ROLE vernacular LOGIN CREATEDB PASSWORD 'vernacular'\""
su postgres -c "psql -q -p $port -tc \"SELECT 1 FROM pg_database WHERE datname='vernacular'\"" | grep -q 1 \
  || su postgres -c "createdb -p $port -O vernacular vernacular"

DATABASE_URL="postgres://vernacular:vernacular@127.0.0.1:$port/vernacular" .venv/bin/python -m pytest "$@"
