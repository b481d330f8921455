#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests of the PostgreSQL store: Debian's server binaries,
# a data directory of its own, listening only on a Unix socket in that directory and on one
# loopback port, run as a user who is not root (PostgreSQL refuses root).
#
#   scripts/pg-cluster.sh start DIR     # initdb on first use, then start; prints the admin URL
#   scripts/pg-cluster.sh stop DIR      # fast shutdown
#   scripts/pg-cluster.sh restart DIR   # stop and start again (the tests of reconnecting)
#   scripts/pg-cluster.sh url DIR       # the admin URL of a started cluster
#   scripts/pg-cluster.sh env DIR       # `export` lines for the tests (STEPWISE_TEST_PG…)
#
# The admin URL connects over the socket as the cluster's superuser with no password
# (`trust` on the socket only). A second role, `stepwise_pw`, must give its password
# (scram-sha-256) over the loopback port: the tests of PGPASSWORD, ~/.pgpass and password_env.
# Its password is in DIR/password.
set -euo pipefail

command=${1:-}
dir=${2:-}
if [[ -z "$command" || -z "$dir" ]]; then
    sed -n '2,15p' "$0"
    exit 2
fi

bin=""
for candidate in /usr/lib/postgresql/*/bin; do
    [[ -x "$candidate/pg_ctl" ]] && bin=$candidate
done
if [[ -z "$bin" ]]; then
    echo "pg-cluster: PostgreSQL's server is not installed (apt-get install postgresql)" >&2
    exit 1
fi

data="$dir/data"
socket="$dir/socket"

# Runs a server program as the cluster's owner: this user, or `postgres` when this is root.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

owner() {
    if [[ $(id -u) -eq 0 ]]; then echo postgres; else id -un; fi
}

port_of() { cat "$dir/port"; }

admin_url() {
    printf 'postgres://%s@/postgres?host=%s&port=%s\n' "$(owner)" "$socket" "$(port_of)"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

init() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    data="$dir/data"
    socket="$dir/socket"
    mkdir -p "$socket"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir" "$socket"
        # The owner must reach the directory through its parents.
        chmod o+x "$(dirname "$dir")" 2>/dev/null || true
    fi
    free_port >"$dir/port"
    python3 -c 'import secrets; print(secrets.token_hex(16))' >"$dir/password"
    chmod 0644 "$dir/port" "$dir/password"
    as_owner "$bin/initdb" --pgdata="$data" --auth-local=trust --auth-host=scram-sha-256 \
        --username="$(owner)" --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $(port_of)
unix_socket_directories = '$socket'
max_connections = 400
fsync = on
logging_collector = off
EOF
}

start() {
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        init
    fi
    dir=$(cd "$dir" && pwd)
    data="$dir/data"
    socket="$dir/socket"
    if ! as_owner "$bin/pg_ctl" --pgdata="$data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" --pgdata="$data" --log="$dir/server.log" --wait --timeout=60 start >/dev/null ||
            { tail -n 30 "$dir/server.log" >&2; exit 1; }
    fi
    # The password role, once.
    as_owner "$bin/psql" --quiet --no-psqlrc --host="$socket" --port="$(port_of)" \
        --username="$(owner)" --dbname=postgres --set=ON_ERROR_STOP=1 >/dev/null <<EOF
SELECT 'CREATE ROLE stepwise_pw LOGIN CREATEDB'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'stepwise_pw') \gexec
ALTER ROLE stepwise_pw PASSWORD '$(cat "$dir/password")';
EOF
    admin_url
}

stop() {
    [[ -f "$dir/data/PG_VERSION" ]] || return 0
    as_owner "$bin/pg_ctl" --pgdata="$dir/data" --mode=fast --wait stop >/dev/null 2>&1 || true
}

case "$command" in
start) start ;;
stop) stop ;;
restart)
    stop
    start >/dev/null
    ;;
url) admin_url ;;
env)
    printf 'export STEPWISE_TEST_PG=%q\n' "$(admin_url)"
    printf 'export STEPWISE_TEST_PG_DIR=%q\n' "$(cd "$dir" && pwd)"
    printf 'export STEPWISE_TEST_PG_PW_URL=%q\n' "postgres://stepwise_pw@127.0.0.1:$(port_of)/postgres"
    printf 'export STEPWISE_TEST_PG_PASSWORD=%q\n' "$(cat "$dir/password")"
    ;;
*)
    echo "pg-cluster: unknown command $command (start, stop, restart, url)" >&2
    exit 2
    ;;
esac
