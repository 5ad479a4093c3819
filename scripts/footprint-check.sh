#!/usr/bin/env bash
# Footprint check for CI: an idle daemon makes no wake-ups; prints its idle RSS and binary sizes.
#
#   scripts/footprint-check.sh [IDLE_SECS]          (IDLE_SECS defaults to 3)
#
# Builds the static musl release binary for this machine's architecture (scripts/cross-build.sh),
# starts it on loopback port 0 (`--tcp count@127.0.0.1:0 --udp echo@127.0.0.1:0`), waits until it
# sleeps (/proc/PID/stat state S), then counts its context switches (voluntary and nonvoluntary,
# /proc/PID/status) over IDLE_SECS:
#   1. idle from start-up;
#   2. idle again after one `count` exchange and one UDP echo, once the connection has closed.
# Any context switch while idle fails the check (exit 1). Then it stops the daemon with SIGTERM
# (exit status 0 expected) and prints VmRSS/VmHWM and the size of every static build present.
#
# Time: about 10 s once built (the build: about 20 s, see cross-build.sh).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

IDLE=${1:-3}
case "$(uname -m)" in
    x86_64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) die "no static build for $(uname -m) here" ;;
esac
need_apt python3
"$ROOT/scripts/cross-build.sh" "$arch" >/dev/null
bin=$(bin_of "$(triple_of "$arch")")

daemon_log

# Not under a service manager: no READY/WATCHDOG messages (a watchdog would wake it up).
env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID -u LISTEN_FDS -u LISTEN_PID \
    "$bin" --tcp count@127.0.0.1:0 --udp echo@127.0.0.1:0 2>"$LOG" &
DAEMON=$!

deadline=$((SECONDS + 10))
until [ "$(grep -c 'listening on' "$LOG")" -ge 2 ]; do
    kill -0 "$DAEMON" 2>/dev/null || fail "the daemon exited"
    [ $SECONDS -ge $deadline ] && fail "no 'listening on' lines within 10 s"
    sleep 0.05
done
tcp=$(sed -n 's/.*listening on tcp 127\.0\.0\.1:\([0-9]*\) (count).*/\1/p' "$LOG")
udp=$(sed -n 's/.*listening on udp 127\.0\.0\.1:\([0-9]*\) (echo).*/\1/p' "$LOG")

state() { sed 's/.*) //' "/proc/$DAEMON/stat" | cut -d' ' -f1; }
field() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$DAEMON/status"; }
switches() { echo $(($(field voluntary_ctxt_switches) + $(field nonvoluntary_ctxt_switches))); }

# wait_asleep: until the daemon is in state S (interruptible sleep: blocked in epoll_wait).
wait_asleep() {
    local deadline=$((SECONDS + 10))
    until [ "$(state)" = S ]; do
        [ $SECONDS -ge $deadline ] && fail "not asleep within 10 s (state $(state))"
        sleep 0.05
    done
}

# idle_check WHAT: no context switch over IDLE seconds.
idle_check() {
    wait_asleep
    local before after
    before=$(switches)
    sleep "$IDLE"
    after=$(switches)
    printf '%-32s state %s, context switches over %s s: %d (voluntary %s, nonvoluntary %s total)\n' \
        "$1:" "$(state)" "$IDLE" $((after - before)) \
        "$(field voluntary_ctxt_switches)" "$(field nonvoluntary_ctxt_switches)"
    [ $((after - before)) -eq 0 ] || fail "$1: $((after - before)) context switch(es) while idle"
}

echo "== $bin (pid $DAEMON, threads $(field Threads))"
idle_check "idle after start"
echo "RSS idle after start:            VmRSS $(field VmRSS) kB, VmHWM $(field VmHWM) kB"

python3 - "$tcp" "$udp" <<'PY' || fail "the exchanges failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.settimeout(10)
s.sendall(b"hello\n")
s.shutdown(socket.SHUT_WR)
got = b""
while chunk := s.recv(4096):
    got += chunk
s.close()
assert got.endswith(b"You entered 5 characters.\n"), got
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
u.sendto(b"ping", ("127.0.0.1", int(sys.argv[2])))
assert u.recvfrom(64)[0] == b"ping"
PY
echo "served one count exchange and one UDP echo"
idle_check "idle after the exchanges"
echo "RSS idle after the exchanges:    VmRSS $(field VmRSS) kB, VmHWM $(field VmHWM) kB"

kill -TERM "$DAEMON"
wait_pid_exit "$DAEMON" 10 || fail "still running 10 s after SIGTERM"
status=0
wait "$DAEMON" || status=$?
DAEMON=
[ "$status" -eq 0 ] || fail "exit status $status after SIGTERM"
echo "SIGTERM: exit 0; $(grep -o 'connections served.*' "$LOG")"

echo "== binary sizes"
for triple in x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf \
    armv7-unknown-linux-musleabihf; do
    b=$(bin_of "$triple")
    [ -f "$b" ] && printf '%-32s %8d bytes (%d KiB)\n' "$triple" "$(stat -c %s "$b")" \
        $(($(stat -c %s "$b") / 1024))
done
echo "footprint check passed"
