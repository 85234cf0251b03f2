#!/bin/bash
# docker-entrypoint.sh of the real-postgres test image, with the contract of postgres:16's:
# POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required on first start), POSTGRES_DB
# (default: the user) read on first start only; data in $PGDATA, owned by postgres (999); while
# the first start initialises, the server listens on the Unix socket only, then on TCP with
# scram-sha-256 passwords. The server is Debian's postgresql-15.
set -euo pipefail
if [ "${1:-}" != postgres ]; then exec "$@"; fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  # Drop to postgres (999) as the real image does with gosu; this base has no gosu, su or setpriv.
  exec /opt/standin/bin/python3 -c 'import os, sys; os.setgroups([]); os.setgid(999); os.setuid(999); os.execv(sys.argv[1], sys.argv[1:])' "$0" "$@"
fi

user=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    echo "       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser." >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start
  db=${POSTGRES_DB:-$user}
  if [ "$db" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -q -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
  fi
  sleep "${STANDIN_INIT_SECONDS:-0}"  # test knob: hold the socket-only phase open longer
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
