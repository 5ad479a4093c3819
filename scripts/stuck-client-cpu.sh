#!/usr/bin/env bash
# CPU the daemon uses while a client that sends but never reads passes its deadline.
#   bash scripts/stuck-client-cpu.sh [BINARY]
# Starts BINARY (default: the release build) with echo and --idle-timeout 1, connects a
# client that writes 20 MB without reading, and prints the daemon's CPU time (user + system)
# over 3 s after the client's deadline, and what became of the client's write.
source "$(dirname "$0")/lib.sh"
BIN="${1:-$TARGET_DIR/release/oneloop}"
[ -x "$BIN" ] || die "no binary at $BIN (cargo build --release)"
log="$(mktemp)"
trap 'kill -9 "$daemon" 2>/dev/null || true; rm -f "$log"' EXIT
"$BIN" --tcp echo@127.0.0.1:0 --idle-timeout 1 2>"$log" &
daemon=$!
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
port="$(sed -n 's/.*listening on tcp 127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)"
[ -n "$port" ] || die "the daemon did not start"
python3 - "$port" "$daemon" <<'PY'
import os, socket, sys, threading, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(8)
ended = []
def write():
    # As `head -c 20000000 /dev/zero | socat -u - TCP:...`: write, never read.
    try:
        s.sendall(b"\0" * (20 << 20))
        ended.append("all sent")
    except socket.timeout:
        ended.append("still blocked")
    except OSError as e:
        ended.append(f"closed by the daemon ({e.strerror})")
writer = threading.Thread(target=write)
writer.start()
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
time.sleep(2)  # the buffers fill at once; the deadline is 1 s after the last byte moved
before = cpu()
time.sleep(3)
used = cpu() - before
writer.join()
print(f"daemon CPU over 3 s after the deadline: {used:.2f} s ({used / 3 * 100:.0f}% of a core); "
      f"the client's write: {ended[0]}")
PY
wait_quietly() { kill -9 "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true; }
wait_quietly
