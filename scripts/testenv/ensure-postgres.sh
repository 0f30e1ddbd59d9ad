#!/usr/bin/env bash
# Ensure a local PostgreSQL answers on 127.0.0.1:5432 with role `orcakit_tester`
# (password `tq8Zr4vLw2pX`, CREATEDB) and database `orcakit_tests`, then print
# the SQLAlchemy URL on stdout:
#     postgresql+psycopg://orcakit_tester:tq8Zr4vLw2pX@127.0.0.1:5432/orcakit_tests
#
# Why this password: the suite scrubs every secret it knows (the run store's
# password among them) from its reports. The old password `orcakit` is a word
# of every module path, so `orcakit.conformance.harness` came out as
# `********.conformance.harness`. A password that is no word of any output
# leaves reports readable. The old role `orcakit` (password `orcakit`) is left
# as it is: sessions started with its URL keep working.
#
# Fast path: login as the role works and it has CREATEDB -> print URL
# (~0.05 s). Cold path (no systemd): install Debian `postgresql` if the server
# binaries are missing, create/start the `<ver> main` cluster with
# pg_createcluster / pg_ctlcluster, create role + database idempotently.
#
# Usage:  export ORCAKIT_TEST_DATABASE_URL=$(scripts/testenv/ensure-postgres.sh)
set -euo pipefail

log() { printf '[ensure-postgres] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

HOST=127.0.0.1
PORT=5432
ROLE=orcakit_tester
PASS=tq8Zr4vLw2pX
DB=orcakit_tests
URL="postgresql+psycopg://$ROLE:$PASS@$HOST:$PORT/$DB"
CLUSTER=main
export DEBIAN_FRONTEND=noninteractive

# `t` iff we can log in over TCP with password and the role may create databases.
login_ok() {
    command -v psql >/dev/null 2>&1 || return 1
    local r
    r=$(PGPASSWORD=$PASS PGCONNECT_TIMEOUT=3 psql -X -q -w -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DB" -tAc \
        'SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user' 2>/dev/null) || return 1
    [ "$r" = t ]
}

if login_ok; then
    log "postgres already answering on $HOST:$PORT as $ROLE"
    echo "$URL"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root to install/start PostgreSQL"
exec 9>/run/orcakit-ensure-postgres.lock
flock -w 300 9 || die "timed out waiting for lock /run/orcakit-ensure-postgres.lock"
if login_ok; then
    log "postgres came up while waiting for lock"
    echo "$URL"
    exit 0
fi

# --- 1. server binaries --------------------------------------------------------
pg_version() {  # newest installed server major version
    ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | awk -F/ '{print $5}' | sort -n | tail -n1
}
VER=$(pg_version)
if [ -z "$VER" ] || ! command -v pg_ctlcluster >/dev/null 2>&1; then
    APT_LOG=/var/log/orcakit-testenv-apt.log
    log "PostgreSQL server not installed; apt-get update && apt-get install postgresql (log: $APT_LOG)"
    { apt-get -o DPkg::Lock::Timeout=120 update &&
      apt-get -o DPkg::Lock::Timeout=120 install -y --no-install-recommends postgresql; } >>"$APT_LOG" 2>&1 9>&- ||
        { tail -n 30 "$APT_LOG" >&2; die "apt-get install postgresql failed"; }
    VER=$(pg_version)
    [ -n "$VER" ] || die "postgresql installed but no server binary under /usr/lib/postgresql"
fi

# --- 2. cluster ----------------------------------------------------------------
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$VER" -v c="$CLUSTER" '$1 == v && $2 == c {f = 1} END {exit !f}'; then
    log "creating cluster $VER/$CLUSTER on port $PORT"
    pg_createcluster --port="$PORT" "$VER" "$CLUSTER" >/dev/null 9>&-
fi
cur_port=$(pg_conftool -s "$VER" "$CLUSTER" show port 2>/dev/null || echo "$PORT")
if [ "$cur_port" != "$PORT" ]; then
    log "cluster $VER/$CLUSTER configured for port $cur_port; switching it to $PORT"
    pg_conftool "$VER" "$CLUSTER" set port "$PORT"
    pg_ctlcluster "$VER" "$CLUSTER" stop >/dev/null 2>&1 9>&- || true
fi

if pg_ctlcluster "$VER" "$CLUSTER" status >/dev/null 2>&1; then
    log "cluster $VER/$CLUSTER already running"
else
    log "starting cluster $VER/$CLUSTER (pg_ctlcluster $VER $CLUSTER start)"
    # 9>&- : the postmaster must not inherit (and thus hold forever) our flock fd.
    if ! pg_ctlcluster "$VER" "$CLUSTER" start >&2 9>&-; then
        # A machine snapshot/reboot can leave a stale postmaster.pid whose PID
        # now belongs to some other process; postgres then refuses to start.
        datadir=$(pg_lsclusters -h | awk -v v="$VER" -v c="$CLUSTER" '$1 == v && $2 == c {print $6}')
        pidfile="$datadir/postmaster.pid"
        if [ -f "$pidfile" ]; then
            pid=$(head -n1 "$pidfile")
            if ! grep -qs postgres "/proc/$pid/comm"; then
                log "removing stale $pidfile (pid $pid is not postgres) and retrying"
                rm -f "$pidfile"
                pg_ctlcluster "$VER" "$CLUSTER" start >&2 9>&- || true
            fi
        fi
        pg_ctlcluster "$VER" "$CLUSTER" status >/dev/null 2>&1 || {
            tail -n 30 "/var/log/postgresql/postgresql-$VER-$CLUSTER.log" >&2 || true
            die "could not start cluster $VER/$CLUSTER"
        }
    fi
fi

for _ in $(seq 1 60); do
    pg_isready -q -h "$HOST" -p "$PORT" && break
    sleep 0.5
done
pg_isready -q -h "$HOST" -p "$PORT" || die "postgres not accepting TCP connections on $HOST:$PORT"

# --- 3. role + database (idempotent) --------------------------------------------
log "ensuring role $ROLE (LOGIN CREATEDB) and database $DB"
(cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres >/dev/null) <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
        CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASS';
    ELSE
        ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASS';
    END IF;
END
\$\$;
SELECT 'CREATE DATABASE $DB OWNER $ROLE'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB')
\gexec
SQL

login_ok || die "still cannot log in as $ROLE on $HOST:$PORT (check pg_hba.conf of $VER/$CLUSTER)"
log "OK: PostgreSQL $VER on $HOST:$PORT, role/db $ROLE"
echo "$URL"
