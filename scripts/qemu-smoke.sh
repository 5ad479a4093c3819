#!/usr/bin/env bash
# Smoke test of the static aarch64 and 32-bit ARM release binaries under qemu-user-static.
#
#   scripts/qemu-smoke.sh [--build-std] [aarch64] [armv7] [armv7-musl]
#
# With none named: aarch64 and armv7 (static glibc), or with `--build-std`, which tests the
# size-budget builds (scripts/cross-build.sh --build-std; musl only), aarch64 and armv7-musl.
#
# For each: builds it (scripts/cross-build.sh), starts
#   qemu-ARCH-static oneloop --tcp count@127.0.0.1:0 --udp time@127.0.0.1:0
# reads the ports from its `listening on` lines, then
#   - one `count` exchange from python3 (expects `You entered 5 characters.`),
#   - one UDP `time` request from python3 (expects a 4-byte reply close to the host's clock),
#   - the same two through the board's own clients (`oneloop client count|time`, emulated too),
# stops it with SIGTERM and checks exit status 0 and the summary line
# (`connections served 2, ... datagrams answered 2, dropped 0`). Prints each binary's size.
# Every wait is bounded; a failure names the step and shows the daemon's log.
#
# Time: about 10 s per binary once built (the build itself: see cross-build.sh).
# Never with --sandbox: qemu-user takes no seccomp filter, so the daemon would exit 1.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

arches=()
build=()
for arg in "$@"; do
    case "$arg" in
        --build-std) build=(--build-std) ;;
        *) arches+=("$arg") ;;
    esac
done
if [ ${#arches[@]} -eq 0 ]; then
    arches=(aarch64 armv7)
    [ ${#build[@]} -eq 0 ] || arches=(aarch64 armv7-musl)
fi
need_apt qemu-user-static python3
"$ROOT/scripts/cross-build.sh" "${arches[@]}" "${build[@]}" >/dev/null

daemon_log

# count_exchange PORT: welcome, a line, the reply (python3, 10 s timeout).
count_exchange() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.settimeout(10)
s.sendall(b"hello\n")
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    got += chunk
text = got.decode()
print(text.replace("\n", "\\n"))
sys.exit(0 if text.startswith("Welcome, ") and text.endswith("You entered 5 characters.\n") else 1)
PY
}

# time_exchange PORT: one UDP datagram, a 4-byte reply within 60 s of our clock (3 tries).
time_exchange() {
    python3 - "$1" <<'PY'
import socket, struct, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
for _ in range(3):
    u.sendto(b"", ("127.0.0.1", int(sys.argv[1])))
    try:
        data, _ = u.recvfrom(64)
        break
    except socket.timeout:
        continue
else:
    print("no reply"); sys.exit(1)
if len(data) != 4:
    print(f"reply of {len(data)} bytes"); sys.exit(1)
secs = struct.unpack(">I", data)[0]
print(f"4 bytes: {secs} s since 1970")
sys.exit(0 if abs(secs - int(time.time()) % 2**32) < 60 else 1)
PY
}

for arch in "${arches[@]}"; do
    triple=$(triple_of "$arch")
    bin=$(bin_of "$triple")
    [ ${#build[@]} -gt 0 ] && bin="$TARGET_DIR/build-std/$triple/release/oneloop"
    case "$arch" in
        aarch64) qemu="qemu-aarch64-static" ;;
        armv7 | armv7-musl) qemu="qemu-arm-static" ;;
        *) die "no smoke test for $arch" ;;
    esac
    echo "== $arch: $qemu $bin"
    report_size "$bin"

    : >"$LOG"
    "$qemu" "$bin" --tcp count@127.0.0.1:0 --udp time@127.0.0.1:0 2>"$LOG" &
    DAEMON=$!
    deadline=$((SECONDS + 15))
    until [ "$(grep -c 'listening on' "$LOG")" -ge 2 ]; do
        kill -0 "$DAEMON" 2>/dev/null || fail start: "the daemon exited"
        [ $SECONDS -ge $deadline ] && fail start: "no two 'listening on' lines within 15 s"
        sleep 0.1
    done
    tcp=$(sed -n 's/.*listening on tcp 127\.0\.0\.1:\([0-9]*\) (count).*/\1/p' "$LOG")
    udp=$(sed -n 's/.*listening on udp 127\.0\.0\.1:\([0-9]*\) (time).*/\1/p' "$LOG")
    if [ -z "$tcp" ] || [ -z "$udp" ]; then fail start: "cannot read the ports"; fi
    echo "  listening: tcp count $tcp, udp time $udp"

    out=$(count_exchange "$tcp") || fail "count: $out"
    echo "  count (python3): $out"
    out=$(time_exchange "$udp") || fail "time: $out"
    echo "  time (python3): $out"
    out=$(timeout 20 "$qemu" "$bin" client count "127.0.0.1:$tcp" 'héllo' 2>&1) ||
        fail "client count: $out"
    echo "  client count: ${out##*: }"
    out=$(timeout 20 "$qemu" "$bin" client time "127.0.0.1:$udp" 2>&1) || fail "client time: $out"
    echo "  client time: $out"

    kill -TERM "$DAEMON"
    wait_pid_exit "$DAEMON" 15 || fail stop: "still running 15 s after SIGTERM"
    status=0
    wait "$DAEMON" || status=$?
    DAEMON=
    [ "$status" -eq 0 ] || fail stop: "exit status $status after SIGTERM"
    summary=$(grep 'connections served' "$LOG") || fail stop: "no summary line"
    echo "  SIGTERM: exit 0; ${summary#INFO  }"
    case "$summary" in
        *"connections served 2, refused 0, timed out 0, denied 0, limited 0; datagrams answered 2, dropped 0, denied 0, limited 0"*) ;;
        *) fail stop: "unexpected summary" ;;
    esac
done
echo "qemu smoke test passed: ${arches[*]}"
