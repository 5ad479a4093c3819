#!/usr/bin/env bash
# What the PROXY protocol costs the daemon per count connection: system calls (strace -c)
# and CPU time, with and without --proxy-protocol, over N exchanges (default 2000) from one
# client that sends a v1 header (or none), its line, and half-closes.
#   bash scripts/proxy-cost.sh [BINARY] [N]
source "$(dirname "$0")/lib.sh"
BIN="${1:-$TARGET_DIR/release/oneloop}"
N="${2:-2000}"
command -v strace >/dev/null || die "needs strace"
log="$(mktemp)"; counts="$(mktemp)"
trap 'rm -f "$log" "$counts"' EXIT
# run MODE TRACE: serves N exchanges; prints the daemon's CPU ticks (TRACE=1: under strace,
# which writes its counts to $counts).
run() {
    local mode="$1" trace="$2" flags=() port pid runner
    [ "$mode" = proxy ] && flags=(--proxy-protocol)
    if [ "$trace" = 1 ]; then runner=(strace -c -f -o "$counts"); else runner=(); fi
    "${runner[@]}" "$BIN" --tcp count@127.0.0.1:0 "${flags[@]}" 2>"$log" &
    local child=$!
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
    port="$(sed -n 's/.*listening on tcp 127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)"
    pid="$(pgrep -f -n -- "$BIN --tcp count@127.0.0.1:0")"
    python3 - "$port" "$N" "$mode" <<'PY'
import socket, sys
port, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
header = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 51423\r\n" if mode == "proxy" else b""
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(header + b"hello\n")
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
    s.close()
PY
    awk '{print $14 + $15}' "/proc/$pid/stat"
    kill -INT "$pid"; wait "$child" || true
}
for mode in direct proxy; do
    ticks="$(run "$mode" 0)"
    run "$mode" 1 >/dev/null
    # The total line: % time, seconds, usecs/call, calls, [errors], "total".
    calls="$(awk '$NF == "total" {print $4}' "$counts")"
    python3 -c "import sys; c,t,n,h=map(float,sys.argv[1:5]); print(f'{sys.argv[5]:6}: {c/n:.2f} system calls and {t/h/n*1e6:.1f} us of CPU per connection')" \
        "$calls" "$ticks" "$N" "$(getconf CLK_TCK)" "$mode"
done
