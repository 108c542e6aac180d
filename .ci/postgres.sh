#!/usr/bin/env bash
# Install Debian's PostgreSQL (as root), start a throwaway cluster on 127.0.0.1 and print its DSN.
#
#   export AGENTPULSE_TEST_PG_DSN="$(.ci/postgres.sh)"
#
# Idempotent: a cluster already running on the port is reused. Everything but the DSN goes to stderr.
set -euo pipefail

PORT="${AGENTPULSE_PG_PORT:-55432}"
DATA="${AGENTPULSE_PG_DATA:-/tmp/agentpulse-pg}"
DB=agentpulse_test
USER_NAME=agentpulse
PASSWORD=agentpulse

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (apt-get, and the cluster runs as the postgres user)"
  exit 1
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  # Do not let the package start its own cluster: ours listens on 127.0.0.1:$PORT only.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends postgresql >&2
fi

BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"

as_pg() { runuser -u postgres -- "$@"; }

if ! as_pg "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  if [ ! -s "$DATA/PG_VERSION" ]; then
    log "creating a cluster in $DATA"
    rm -rf "$DATA"
    install -d -o postgres -g postgres -m 700 "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" -A trust -U postgres --no-sync >&2
  fi
  log "starting the cluster on 127.0.0.1:$PORT"
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >&2
fi

psql_pg() { as_pg psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

if [ "$(psql_pg -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'")" != "1" ]; then
  psql_pg -c "CREATE ROLE $USER_NAME LOGIN PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
  psql_pg -c "CREATE DATABASE $DB OWNER $USER_NAME" >&2
fi

echo "postgresql://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/$DB"
