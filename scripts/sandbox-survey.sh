#!/usr/bin/env bash
# The survey behind the sandbox's table: the system calls the daemon makes once its filter is
# installed, in every scenario below, for the glibc and the musl build (x86_64).
#
#   bash scripts/sandbox-survey.sh           run the survey, write docs/sandbox-survey.txt,
#                                            check the table against it
#   bash scripts/sandbox-survey.sh --check   run it into a temporary file; exit 1, with a
#                                            diff, when it differs from the committed survey,
#                                            or when the table does not match it
#
# Each scenario runs the debug build (`cargo build`, and `--target x86_64-unknown-linux-musl`)
# with `--sandbox=log` under `strace -f` (log mode: a call the table misses goes through, so
# the survey sees it instead of a death), and a Python driver plays the clients, the operator
# and the signals: every service on TCP and UDP, long lines, backpressure, the limits
# (refusals, deadlines, denials, rates), PROXY headers, the console, SIGUSR1, SIGHUP, SIGUSR2,
# a drain on SIGTERM and a second SIGTERM, both inetd modes with --exit-idle, and an upgrade
# with --handover (both daemons surveyed: the old one hands its sockets over from its loop,
# the new one says it is ready once its own filter is in). Only the calls after the
# `seccomp(SECCOMP_SET_MODE_FILTER, ...)` are counted.
#
# The check is the unit test `os::sandbox::tables::tests::the_survey_and_the_table_agree`:
# every surveyed call is in the table, and every call of the table's `Survey` group was
# surveyed (the `Always` and `Probed` groups are the documented rest).
#
# Needs strace and python3 (.ci/run installs both). Time: about 30 s once built.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check=$(check_mode "${1:-}")
command -v strace >/dev/null || die "strace is missing (Debian: apt-get install strace)"
command -v python3 >/dev/null || die "python3 is missing (Debian: apt-get install python3)"

cd "$ROOT"
musl=x86_64-unknown-linux-musl
need_target "$musl"
cargo build --quiet --bin oneloop
cargo build --quiet --bin oneloop --target "$musl"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
survey="$ROOT/docs/sandbox-survey.txt"
out="$work/sandbox-survey.txt"

python3 - "$out" "glibc=$TARGET_DIR/debug/oneloop" "musl=$TARGET_DIR/$musl/debug/oneloop" <<'PY'
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

OUT = sys.argv[1]
BUILDS = [a.split("=", 1) for a in sys.argv[2:]]
WAIT = 10.0
WORK = tempfile.mkdtemp()


def fail(msg):
    sys.exit("sandbox-survey.sh: " + msg)


class Daemon:
    """The daemon with --sandbox=log under strace -f, its stderr read line by line."""

    def __init__(self, bin, name, args, stdin=subprocess.DEVNULL):
        self.raw = os.path.join(WORK, name + ".raw")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_", "JOURNAL_", "RUST_"))}
        env["RUST_LOG"] = "info,oneloop=trace"
        # Standard error is a pipe named as the journal (JOURNAL_STREAM), as systemd names
        # it: under --inetd the log would go to syslog otherwise.
        r, w = os.pipe()
        st = os.fstat(w)
        env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        cmd = ["strace", "-f", "-qq", "-o", self.raw, bin] + args + ["--sandbox=log"]
        self.p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                                  stderr=w, env=env)
        os.close(w)
        self.stderr = os.fdopen(r, "rb")
        self.lines, self.cv = [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for("sandbox: ")
        self.pid = self._tracee(bin)

    def _read(self):
        for line in self.stderr:
            with self.cv:
                self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
                self.cv.notify_all()

    def _tracee(self, bin):
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == self.p.pid and os.readlink("/proc/%s/exe" % pid) == os.path.realpath(bin):
                    return int(pid)
            except (OSError, ValueError, IndexError):
                continue
        fail("no daemon under strace")

    def wait_for(self, needle, n=1):
        end = time.time() + WAIT
        with self.cv:
            while sum(needle in l for l in self.lines) < n:
                if not self.cv.wait(timeout=max(0.0, end - time.time())):
                    fail("no %r; stderr:\n%s" % (needle, "\n".join(self.lines)))

    def addrs(self):
        found = {}
        for l in self.lines:
            m = re.search(r"listening on (tcp|udp) (\S+):(\d+) \((\w+)\)", l)
            if m:
                found[(m[1], m[4])] = ("127.0.0.1", int(m[3]))
        return found

    def signal(self, sig):
        os.kill(self.pid, sig)

    def finish(self):
        """Waits for the exit; returns the calls made after the filter was installed."""
        try:
            self.p.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail("the daemon did not exit")
        calls, after = set(), False
        with open(self.raw) as f:
            for line in f:
                if "seccomp(SECCOMP_SET_MODE_FILTER" in line:
                    after = True
                    continue
                m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", line)
                if after and m:
                    calls.add(m[1])
        if not after:
            fail("no seccomp call in the trace")
        if "SIGSYS" in open(self.raw).read():
            fail("a SIGSYS in the trace")
        return calls


def tcp(addr, send=b"", read=True, header=b""):
    s = socket.create_connection(addr, timeout=WAIT)
    s.sendall(header + send)
    s.shutdown(socket.SHUT_WR)
    out = b""
    while read:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out


def udp(addr, msg):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    for _ in range(5):
        s.sendto(msg, addr)
        try:
            return s.recv(65536)
        except socket.timeout:
            continue
    fail("no answer from %s" % (addr,))


def drain(d, echo, twice):
    """SIGTERM with an echo connection open, which then finishes (with `twice`, a second
    SIGTERM first: the daemon stops at once); the calls made."""
    held = socket.create_connection(echo, timeout=WAIT)
    held.sendall(b"x")
    held.recv(1)
    d.signal(signal.SIGTERM)
    d.wait_for("no longer accepting")
    if twice:
        d.signal(signal.SIGTERM)
    held.close()
    return d.finish()


def services(bin):
    d = Daemon(bin, "services", ["--max-line", "16", "--nodelay", "--keepalive"] +
               [a for svc in ("count", "echo", "ack", "time", "stats")
                for a in ("--tcp", svc + "@127.0.0.1:0")] +
               ["--udp", "echo@127.0.0.1:0", "--udp", "time@127.0.0.1:0"])
    a = d.addrs()
    tcp(a[("tcp", "count")], b"hello\n")
    tcp(a[("tcp", "count")], b"x" * 100 + b"\n")
    # Backpressure: a small receive window, so the daemon's writes meet EAGAIN.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(WAIT)
    s.connect(a[("tcp", "echo")])
    big = b"e" * 300_000
    sender = threading.Thread(target=lambda: (s.sendall(big), s.shutdown(socket.SHUT_WR)))
    sender.start()
    got = 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
    sender.join()
    if got != len(big):
        fail("echo returned %d bytes" % got)
    tcp(a[("tcp", "ack")], b"one\ntwo\n")
    tcp(a[("tcp", "time")])
    tcp(a[("tcp", "stats")], b"GET /metrics HTTP/1.0\r\n\r\n")
    udp(a[("udp", "echo")], b"ping")
    udp(a[("udp", "time")], b"")
    for sig in (signal.SIGUSR1, signal.SIGHUP, signal.SIGUSR2):
        d.signal(sig)
    d.wait_for("SIGHUP")
    return drain(d, a[("tcp", "echo")], twice=False)


def limits(bin):
    d = Daemon(bin, "limits", ["--tcp", "count@127.0.0.1:0", "--tcp", "echo@127.0.0.1:0",
                               "--max-connections", "1", "--idle-timeout", "0.2",
                               "--deny", "127.0.0.9", "--max-rate", "2", "--udp-rate", "1",
                               "--udp", "echo@127.0.0.1:0", "--linger", "0.1"])
    a = d.addrs()
    held = socket.create_connection(a[("tcp", "echo")], timeout=WAIT)
    held.sendall(b"x")
    held.recv(1)
    tcp(a[("tcp", "count")], b"busy\n")      # refused: one connection at most
    held.close()
    quiet = socket.create_connection(a[("tcp", "count")], timeout=WAIT)
    while quiet.recv(4096):                 # says nothing: timed out after 0.2 s
        pass
    quiet.close()
    s = socket.socket()
    s.bind(("127.0.0.9", 0))
    s.connect(a[("tcp", "count")])          # denied
    s.close()
    for _ in range(4):                      # over the rate
        try:
            tcp(a[("tcp", "count")], b"r\n")
        except OSError:
            pass
    for _ in range(3):
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"u", a[("udp", "echo")])
    d.signal(signal.SIGUSR1)
    d.wait_for("connections open")
    return drain(d, a[("tcp", "echo")], twice=True)


def proxy(bin):
    d = Daemon(bin, "proxy", ["--tcp", "count@127.0.0.1:0", "--proxy-from", "127.0.0.1"])
    a = d.addrs()[("tcp", "count")]
    tcp(a, b"via v1\n", header=b"PROXY TCP4 192.0.2.1 192.0.2.2 5000 51423\r\n")
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    v2 = sig + b"\x21\x11\x00\x0c" + bytes([192, 0, 2, 3, 192, 0, 2, 4, 0x13, 0x88, 0xc8, 0xdf])
    tcp(a, b"via v2\n", header=v2)
    try:
        tcp(a, b"", header=b"PROXY nonsense\r\n")  # closed without a word, maybe reset
    except OSError:
        pass
    d.signal(signal.SIGTERM)
    return d.finish()


def console(bin):
    r, w = os.pipe()
    d = Daemon(bin, "console", ["--tcp", "ack@127.0.0.1:0", "--console"], stdin=r)
    os.close(r)
    a = d.addrs()[("tcp", "ack")]
    s = socket.create_connection(a, timeout=WAIT)
    s.sendall(b"hello\n")
    d.wait_for("the console's connection")
    os.write(w, b"typed\n")
    os.close(w)
    d.wait_for("end of input")
    s.close()
    d.signal(signal.SIGTERM)
    return d.finish()


def inetd_tcp(bin):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    d = Daemon(bin, "inetd-tcp", ["--inetd", "tcp:count", "--exit-idle", "0.3"],
               stdin=listener.fileno())
    tcp(listener.getsockname(), b"passed\n")
    listener.close()
    return d.finish()


def inetd_udp(bin):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    d = Daemon(bin, "inetd-udp", ["--inetd", "udp:time", "--exit-idle", "0.3"],
               stdin=s.fileno())
    udp(s.getsockname(), b"")
    s.close()
    return d.finish()


def handover(bin):
    """An upgrade: a second daemon takes the first one's sockets over --handover while a
    connection to the first is open; the first drains it and exits 0, the second serves."""
    path = os.path.join(tempfile.mkdtemp(dir=WORK), "handover")
    args = ["--tcp", "count@127.0.0.1:0", "--tcp", "echo@127.0.0.1:0",
            "--udp", "echo@127.0.0.1:0", "--handover", path]
    old = Daemon(bin, "handover-old", args)
    a = old.addrs()
    held = socket.create_connection(a[("tcp", "echo")], timeout=WAIT)
    held.sendall(b"x")
    held.recv(1)
    new = Daemon(bin, "handover-new", args)
    old.wait_for("is ready")
    held.sendall(b"y")
    if held.recv(1) != b"y":
        fail("the old daemon did not serve its connection on")
    held.close()
    calls = old.finish()
    if old.p.returncode != 0:
        fail("the old daemon exited %d" % old.p.returncode)
    if new.addrs() != a:
        fail("the new daemon serves %s, the old one served %s" % (new.addrs(), a))
    tcp(a[("tcp", "count")], b"after\n")
    udp(a[("udp", "echo")], b"after")
    new.signal(signal.SIGTERM)
    return calls | new.finish()


SCENARIOS = [services, limits, proxy, console, inetd_tcp, inetd_udp, handover]
lines = [
    "# The system calls oneloop made once its sandbox was installed (x86_64, debug builds),",
    "# by C library, over the scenarios of scripts/sandbox-survey.sh, which writes this file.",
    "# The `Survey` group of src/os/sandbox/tables.rs names exactly these calls.",
    "scenarios: " + " ".join(s.__name__.replace("_", "-") for s in SCENARIOS),
]
for libc, bin in BUILDS:
    calls = set()
    for scenario in SCENARIOS:
        started = time.time()
        calls |= scenario(bin)
        print("%s %s: %.1f s" % (libc, scenario.__name__, time.time() - started), file=sys.stderr)
    lines.append("%s: %s" % (libc, " ".join(sorted(calls))))
with open(OUT, "w") as f:
    f.write("\n".join(lines) + "\n")
PY

if [ "$check" = 1 ]; then
    if ! diff -u "$survey" "$out"; then
        die "the survey differs from docs/sandbox-survey.txt (run scripts/sandbox-survey.sh and commit it)"
    fi
else
    cp "$out" "$survey"
fi
say "== the table against the survey"
ONELOOP_SURVEY="$out" cargo test --quiet --lib os::sandbox::tables::tests::the_survey_and_the_table_agree
