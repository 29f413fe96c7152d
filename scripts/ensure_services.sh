#!/usr/bin/env bash
# Make sure the services the test suite talks to are up on this machine: PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust auth on 127.0.0.1, a `test` database) and Redis on
# 127.0.0.1:6379. Installs them from Debian's packages when missing; starts them when down;
# leaves them alone when they already answer. Idempotent; needs root only to install or start.
set -euo pipefail

say() { echo "services: $*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

wait_for() {  # wait_for DESCRIPTION COMMAND...: up to 30 s
    local what=$1; shift
    for _ in $(seq 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    say "$what did not come up" >&2
    return 1
}

if ! command -v pg_ctlcluster >/dev/null || ! command -v redis-server >/dev/null; then
    say "installing postgresql and redis-server"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql redis-server
fi

if ! pg_isready -h 127.0.0.1 -q; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for "PostgreSQL" pg_isready -h 127.0.0.1 -q
fi

if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    say "allowing trust auth for 127.0.0.1 in $hba"
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    wait_for "PostgreSQL trust auth" psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1'
fi

if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != "1" ]; then
    say "creating database test"
    createdb -h 127.0.0.1 -U postgres test
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    say "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_for "Redis" redis-cli -h 127.0.0.1 -p 6379 ping
fi

say "PostgreSQL and Redis answer on 127.0.0.1"
