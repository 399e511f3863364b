#!/bin/sh
# The PostgreSQL server of deploy/docker-compose.postgres.yml. On first start (an empty volume):
# a cluster (UTF-8, data checksums) whose superuser postgres has no password and may only
# connect over the local socket, and the role and database handoff, whose password is read from
# $HANDOFF_PG_PASSWORD_FILE (a compose secret) and which reaches it over the network with
# scram-sha-256. Then the server, in the foreground, listening on every address of the
# container (the compose network only: no port is published).
set -eu
PGBIN=/usr/lib/postgresql/15/bin
DATA=${HANDOFF_PG_DATA:-/var/lib/postgresql/data/cluster}
SOCK=${HANDOFF_PG_SOCKET_DIR:-/tmp}   # the root filesystem is read-only: the socket on the tmpfs
PWFILE=${HANDOFF_PG_PASSWORD_FILE:-/run/secrets/pg_password}
if [ ! -s "$DATA/PG_VERSION" ]; then
  [ -r "$PWFILE" ] || { echo "handoff-postgres: no password file $PWFILE (the secret pg_password)" >&2; exit 1; }
  password=$(head -n 1 "$PWFILE")
  [ -n "$password" ] || { echo "handoff-postgres: $PWFILE is empty" >&2; exit 1; }
  "$PGBIN/initdb" -D "$DATA" --encoding=UTF8 --locale=C.UTF-8 --data-checksums --auth-local=peer \
    --auth-host=scram-sha-256 --username=postgres >/dev/null
  {
    echo "listen_addresses = '*'"
    echo "password_encryption = 'scram-sha-256'"
    echo "unix_socket_directories = '$SOCK'"
  } >> "$DATA/postgresql.conf"
  echo "host handoff handoff all scram-sha-256" >> "$DATA/pg_hba.conf"
  "$PGBIN/pg_ctl" -D "$DATA" -o "-c listen_addresses=''" -w start >/dev/null
  # the password goes in as a literal, quoted for SQL (a ' doubled), never on a command line
  quoted=$(printf '%s' "$password" | sed "s/'/''/g")
  printf "CREATE ROLE handoff LOGIN PASSWORD '%s';\nCREATE DATABASE handoff OWNER handoff;\n" "$quoted" |
    "$PGBIN/psql" -q -v ON_ERROR_STOP=1 -h "$SOCK" -U postgres -d postgres >/dev/null
  "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  echo "handoff-postgres: a new cluster in $DATA, database handoff owned by handoff"
fi
exec "$PGBIN/postgres" -D "$DATA"
