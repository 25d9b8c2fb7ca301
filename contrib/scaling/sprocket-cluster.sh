#!/bin/sh
# Runs N sprocket processes on this host, sharing every topic through one
# Redis (docs/scaling.md). Each process is one core; give it as many as
# the host has. Stop them all with Ctrl-C or SIGTERM.
#
#   N=4 REDIS=redis://127.0.0.1:6379 contrib/scaling/sprocket-cluster.sh
#
# Two ways to put them on the network (MODE):
#   ports (default)  process i listens on BASE_PORT+i: put a load balancer
#                    in front (contrib/scaling/nginx-sprocket.conf).
#   shared           every process listens on BASE_PORT with --reuse-port;
#                    the kernel spreads new connections among them.
# Process i serves /health and /metrics on ADMIN_PORT+i either way.
# Further arguments go to every process (e.g. --session-store ...).
set -eu
N=${N:-2}
MODE=${MODE:-ports}
HOST=${HOST:-127.0.0.1}
BASE_PORT=${BASE_PORT:-8081}
ADMIN_PORT=${ADMIN_PORT:-9101}
REDIS=${REDIS:-redis://127.0.0.1:6379}
SPROCKET=${SPROCKET:-sprocket}

pids=
stop() {
    trap - INT TERM
    # SIGTERM: each process closes its clients with 1001 and exits.
    [ -n "$pids" ] && kill $pids 2>/dev/null
    wait
    exit 0
}
trap stop INT TERM

i=0
while [ "$i" -lt "$N" ]; do
    case $MODE in
    ports) listen="--listen $HOST:$((BASE_PORT + i))" ;;
    shared) listen="--listen $HOST:$BASE_PORT --reuse-port" ;;
    *) echo "MODE must be ports or shared, not $MODE" >&2; exit 2 ;;
    esac
    # shellcheck disable=SC2086 # $listen is two words on purpose
    "$SPROCKET" $listen --admin-listen "$HOST:$((ADMIN_PORT + i))" --bus "$REDIS" "$@" &
    pids="$pids $!"
    i=$((i + 1))
done
wait
