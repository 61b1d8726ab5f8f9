#!/usr/bin/env bash
# A private PostgreSQL server for the tests, from Debian's packages, on 127.0.0.1 only.
#   usage: postgres.sh start DIR PORT   (prints the URL to use)
#          postgres.sh halt DIR         (stop the server, keep its data)
#          postgres.sh resume DIR PORT  (start it again after halt)
#          postgres.sh stop DIR         (stop and remove)
set -euo pipefail
cmd=${1:?usage: postgres.sh start DIR PORT | halt DIR | resume DIR PORT | stop DIR}
dir=${2:?data directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "postgres.sh: PostgreSQL is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
as_pg() { runuser -u postgres -- "$@"; }
case "$cmd" in
  start)
    port=${3:?port}
    rm -rf "$dir"
    mkdir -p "$dir"
    chown postgres: "$dir"
    as_pg "$bin/initdb" -A trust -U sdn -D "$dir/data" >/dev/null
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
    as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U sdn -d postgres -qc 'CREATE DATABASE sdn' >/dev/null
    echo "postgres://sdn@127.0.0.1:$port/sdn"
    ;;
  halt)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  resume)
    port=${3:?port}
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null
    ;;
  stop)
    [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    rm -rf "$dir"
    ;;
  *) echo "usage: postgres.sh start DIR PORT | halt DIR | resume DIR PORT | stop DIR" >&2; exit 2 ;;
esac
