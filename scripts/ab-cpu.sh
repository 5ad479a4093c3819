#!/usr/bin/env bash
# CPU per request of two daemon builds under the same load, side by side (an A/B check that a
# change costs nothing):
#   bash scripts/ab-cpu.sh OLD_BINARY NEW_BINARY [SECONDS] [ROUNDS]
# Each daemon runs pinned to CPU 0 and the load (NEW_BINARY's `oneloop load`) to CPU 1: count
# exchanges with 64 clients, then UDP echo from 8 sockets, SECONDS each (default 10), ROUNDS
# times (default 3), alternating the builds. Prints the server's user and system CPU per
# request from /proc/PID/stat.
source "$(dirname "$0")/lib.sh"
[ $# -ge 2 ] || die "usage: ab-cpu.sh OLD_BINARY NEW_BINARY [SECONDS] [ROUNDS]"
# shellcheck disable=SC2034 # OLD and NEW are read through ${!build} below
OLD="$1" NEW="$2" SECS="${3:-10}" ROUNDS="${4:-3}"
TICK="$(getconf CLK_TCK)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

# run BINARY SCENARIO: prints "requests user_ticks sys_ticks"
run() {
    local bin="$1" scenario="$2" addr
    taskset -c 0 "$bin" --tcp count@127.0.0.1:0 --udp echo@127.0.0.1:0 2>"$log" &
    daemon=$!
    for _ in $(seq 100); do [ "$(grep -c 'listening on' "$log")" -ge 2 ] && break; sleep 0.1; done
    case "$scenario" in
        count) addr="$(sed -n 's/.*listening on tcp \([^ ]*\).*/\1/p' "$log")"
               set -- count "$addr" --connections 64 ;;
        udp)   addr="$(sed -n 's/.*listening on udp \([^ ]*\).*/\1/p' "$log")"
               set -- udp-echo "$addr" --connections 8 ;;
    esac
    read -r u0 s0 < <(ticks "$daemon")
    local report
    report="$(taskset -c 1 "$NEW" load "$@" --duration "$SECS" --json)" || true
    read -r u1 s1 < <(ticks "$daemon")
    kill -INT "$daemon"; wait "$daemon" 2>/dev/null || true
    local n
    n="$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r.get("completed") or r.get("replies") or r.get("answered"))' "$report")"
    echo "$n $((u1 - u0)) $((s1 - s0))"
}

declare -A totals
for scenario in count udp; do
    for build in OLD NEW; do totals[$build]="0 0 0"; done
    for round in $(seq "$ROUNDS"); do
        for build in OLD NEW; do
            bin="${!build}"
            read -r n u s < <(run "$bin" "$scenario")
            read -r tn tu ts <<<"${totals[$build]}"
            totals[$build]="$((tn + n)) $((tu + u)) $((ts + s))"
            say "$scenario round $round $build: $n requests, $u user + $s sys ticks"
        done
    done
    for build in OLD NEW; do
        read -r n u s <<<"${totals[$build]}"
        python3 -c 'import sys; n,u,s,t=map(float,sys.argv[3:7]); print(f"{sys.argv[1]:5} {sys.argv[2]:4}: {n/float(sys.argv[7]):9.0f} req/s, server CPU per request {u/t/n*1e6:.2f} user + {s/t/n*1e6:.2f} sys us")' \
            "$scenario" "$build" "$n" "$u" "$s" "$TICK" "$((SECS * ROUNDS))"
    done
done
