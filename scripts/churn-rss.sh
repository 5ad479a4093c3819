#!/usr/bin/env bash
# Memory after churn: does the daemon's RSS follow what is open now, or what has passed?
#   bash scripts/churn-rss.sh [BINARY] [SECONDS]
# Starts BINARY (default: the release build) with one count service on loopback, holds one
# connection open the whole time, churns count connections through it for SECONDS (default
# 30) with `oneloop load count`, then prints the connections served and the RSS at start,
# after a warm-up second and at the end.
source "$(dirname "$0")/lib.sh"
BIN="${1:-$TARGET_DIR/release/oneloop}"
SECS="${2:-30}"
[ -x "$BIN" ] || die "no binary at $BIN (cargo build --release)"
log="$(mktemp)"
trap 'kill "$daemon" "$holder" 2>/dev/null || true; rm -f "$log"' EXIT
"$BIN" --tcp count@127.0.0.1:0 2>"$log" &
daemon=$!
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
addr="$(sed -n 's/.*listening on tcp \([^ ]*\).*/\1/p' "$log" | head -1)"
[ -n "$addr" ] || die "the daemon did not start"
rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }
start_rss="$(rss)"
"$BIN" load hold "$addr" -n 1 --hold "$((SECS + 60))" >/dev/null 2>&1 &
holder=$!
"$BIN" load count "$addr" --connections 16 --duration 1 --sources 8 >/dev/null
warm_rss="$(rss)"
report="$("$BIN" load count "$addr" --connections 16 --duration "$SECS" --sources 8)"
end_rss="$(rss)"
echo "$report" | head -3
echo "RSS KiB: start $start_rss, after warm-up $warm_rss, after ${SECS} s of churn $end_rss (one connection held)"
