"""The driver of scripts/traces.sh: runs each scenario once, the daemon under strace and
clients played from here, and writes its pages (pages.py) into the directory given.

    python3 scripts/traces/drive.py BINARY OUT

It acts only while the daemon sleeps in epoll_wait, after the trace line it waits for, so each
wake-up of the daemon sees the same events on every run."""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pages
import player
from pages import fail

BIN, OUT = sys.argv[1], sys.argv[2]
# Every wait is bounded.
WAIT = 10.0
CALLS = ("trace=%network,epoll_create1,epoll_ctl,epoll_wait,epoll_pwait,eventfd2,read,write,"
         "close,shutdown,openat,fcntl,rt_sigaction")


# The daemons running now: killed if the script fails.
RUNNING = []


class Daemon:
    """The daemon under strace, its stderr read line by line, and the driver's steps."""

    def __init__(self, name, args, startup=False, stdin=False, files=None, calls="",
                 title=None):
        self.name, self.startup = name, startup
        # The player's title for this daemon's page, when it is not its scenario's page's.
        self.title = title
        # Daemons a scenario started besides this one, each with pages of its own.
        self.others = []
        # Real strings (process ids, a temporary directory) and what the pages show instead.
        self.aliases = {}
        self.raw = os.path.join(OUT, name + ".raw")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_", "RUST_"))}
        env["RUST_LOG"] = "info,oneloop=trace"
        cmd = ["strace", "-f", "-s", str(pages.RECORDED), "-o", self.raw,
               "-e", CALLS + calls, BIN] + args
        # `files`: the open-file limit, soft and hard, of strace and so of the daemon.
        limit = None if files is None else (
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (files, files)))
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                  preexec_fn=limit)
        self.lines, self.ended, self.steps = [], False, []
        # The 4 bytes a time service answered with (normalised away in the strace).
        self.time_reply = None
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.pid = None
        RUNNING.append(self)
        self.pid = self._tracee()

    def _read(self):
        for line in self.p.stderr:
            with self.cv:
                self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
                self.cv.notify_all()
        with self.cv:
            self.ended = True
            self.cv.notify_all()

    def _tracee(self):
        """The daemon: the child of strace that runs BIN (strace forks test children of its
        own first)."""
        end = time.time() + WAIT
        while time.time() < end:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/stat" % pid) as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    exe = os.readlink("/proc/%s/exe" % pid)
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == self.p.pid and exe == os.path.realpath(BIN):
                    return int(pid)
            time.sleep(0.01)
        fail("%s: strace started no daemon" % self.name)

    def kill(self):
        """Ends strace and the daemon (after a failure)."""
        for pid in (self.pid, self.p.pid):
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def _wait_line(self, text, start):
        """The index of the first line from `start` on that contains `text`."""
        end = time.time() + WAIT
        with self.cv:
            while True:
                for i in range(start, len(self.lines)):
                    if text in self.lines[i]:
                        return i
                left = end - time.time()
                if self.ended or left <= 0:
                    fail("%s: the scenario waits for a line with %r, and none came (if the "
                         "daemon's words changed, change the scenario here); the daemon said:\n%s"
                         % (self.name, text, "\n".join(self.lines)))
                self.cv.wait(left)

    def ready(self):
        """The real ports of the `listening on` lines, once the daemon sleeps in its first
        poll."""
        self.settle()
        return [int(re.search(r":(\d+) \(", l).group(1))
                for l in self.lines if "listening on" in l]

    def settle(self, after=None):
        """Waits until the daemon has reacted to the last step (a line with `after`, when
        given), has gone back to its poll and sleeps there."""
        start = self.steps[-1][0] if self.steps else 0
        if after is not None:
            start = self._wait_line(after, start) + 1
        self._wait_line("poll: sleeping", start)
        end = time.time() + WAIT
        while time.time() < end:
            if self._in_epoll_wait():
                return
            time.sleep(0.001)
        fail("%s: the daemon did not go back to sleep in epoll_wait" % self.name)

    def _in_epoll_wait(self):
        """Whether the daemon sleeps in epoll_wait: the kernel function it waits in, or else
        the number of the system call it is in."""
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%d/wchan" % self.pid) as f:
                wchan = f.read()
            with open("/proc/%d/syscall" % self.pid) as f:
                call = f.read().split()[0]
        except (OSError, IndexError):
            return False
        epoll_calls = {"x86_64": ("232", "281", "441"), "aarch64": ("22", "441")}
        return state == "S" and ("ep_poll" in wchan or "epoll" in wchan
                                 or call in epoll_calls.get(os.uname().machine, ()))

    def step(self, text):
        """Notes what the driver does now, after the lines the daemon has written so far."""
        with self.cv:
            self.steps.append((len(self.lines), text))

    def signal(self, sig, text):
        self.step(text)
        os.kill(self.pid, sig)

    def stop(self):
        """SIGTERM, and the daemon's exit."""
        self.signal(signal.SIGTERM, "kill -TERM: the daemon drains and exits")
        self.wait_exit()

    def wait_exit(self):
        try:
            self.p.wait(WAIT)
        except subprocess.TimeoutExpired:
            fail("%s: the daemon did not exit" % self.name)
        with self.cv:
            if not self.cv.wait_for(lambda: self.ended, WAIT):
                fail("%s: the daemon's standard error did not end" % self.name)
        RUNNING.remove(self)
        if self.p.returncode != 0:
            fail("%s: exit status %d" % (self.name, self.p.returncode))


# The clients: blocking sockets with a bounded wait.

def connect(port, rcvbuf=None):
    s = socket.socket()
    s.settimeout(WAIT)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    return s


def read_until(s, end):
    got = b""
    while not got.endswith(end):
        more = s.recv(4096)
        if not more:
            fail("EOF before %r (got %r)" % (end, got))
        got += more
    return got


def read_to_end(s):
    got = b""
    while True:
        more = s.recv(65536)
        if not more:
            return got
        got += more


def send_with_fin(s, data):
    """The bytes and the FIN in one segment: MSG_MORE holds the bytes back until the
    shutdown, so the daemon's poll reports both at once."""
    s.send(data, socket.MSG_MORE)
    s.shutdown(socket.SHUT_WR)


def expect(what, got, want):
    if got != want:
        fail("%s: got %r, expected %r" % (what, got, want))


def shown(data):
    """Bytes as a step line quotes them: `"hi\n"`."""
    return '"%s"' % data.decode().replace("\n", "\\n")


def welcomed(d, port, who):
    """A count client that connects and reads the welcome."""
    d.step("%s: connects, and reads the welcome" % who)
    s = connect(port)
    read_until(s, b"string: ")
    d.settle()
    return s


def last_line(d, s, who, line, reply):
    """`who` sends `line` and its FIN in one segment, reads `reply` and the EOF, and closes."""
    d.step("%s: sends %s and its FIN in one segment, and reads to EOF" % (who, shown(line)))
    send_with_fin(s, line)
    expect(who, read_to_end(s), reply)
    s.close()
    d.settle(after="closed")


# The scenarios, in the order they run: each drives a daemon started with its arguments and
# given the ports it listens on. The daemon is stopped with SIGTERM afterwards, unless the
# scenario ended it.
SCENARIOS = []


def scenario(args, **options):
    def register(run):
        SCENARIOS.append((run.__name__, args, options, run))
        return run
    return register


@scenario(["--tcp", "count@127.0.0.1:0"], startup=True)
def count(d, ports):
    s = welcomed(d, ports[0], "client")
    last_line(d, s, "client", b"hello, world\n", b"You entered 12 characters.\n")


@scenario(["--tcp", "count@127.0.0.1:0"])
def pieces(d, ports):
    s = welcomed(d, ports[0], "client")
    d.step('client: sends "hel"')
    s.sendall(b"hel")
    d.settle(after='read 3 bytes "hel"')
    d.step('client: sends "lo\\n" (no FIN), and reads to EOF')
    s.sendall(b"lo\n")
    expect("pieces", read_to_end(s), b"You entered 5 characters.\n")
    d.settle(after="lingering")
    d.step('client: sends "extra" and its FIN in one segment, then closes')
    send_with_fin(s, b"extra")
    s.close()
    d.settle(after="closed")


@scenario(["--tcp", "echo@127.0.0.1:0", "--idle-timeout", "0.5", "--sndbuf", "4096"])
def echo(d, ports):
    d.step("client: connects with a 4096-byte receive buffer (SO_RCVBUF), and never reads")
    s = connect(ports[0], rcvbuf=4096)
    d.settle()
    # The first bytes fill the buffers; the next ones find the connection not reading.
    for which, then in (("", "backpressure"), (" more", None)):
        d.step("client: sends 32768 bytes%s" % which)
        s.sendall(b"e" * 32768)
        d.settle(after=then)
    d.settle(after="closed")
    s.close()


@scenario(["--tcp", "count@127.0.0.1:0", "--idle-timeout", "0.3", "--linger", "0.3"])
def deadline(d, ports):
    d.step("client: connects, reads the welcome, and sends nothing")
    s = connect(ports[0])
    read_until(s, b"string: ")
    expect("deadline", read_to_end(s), b"Error: timed out after 0.3 s\n")
    d.settle(after="closed")
    s.close()


@scenario(["--tcp", "count@127.0.0.1:0", "--max-connections", "1"])
def busy(d, ports):
    a = welcomed(d, ports[0], "client A")
    d.step("client B: connects, and reads to EOF")
    b = connect(ports[0])
    expect("busy", read_to_end(b), b"Error: server busy (1 connections)\n")
    d.settle(after="lingering")
    d.step("client B: closes")
    b.close()
    d.settle(after="closed")
    last_line(d, a, "client A", b"hi\n", b"You entered 2 characters.\n")


@scenario(["--tcp", "count@127.0.0.1:0", "--shutdown-grace", "2"])
def sigterm(d, ports):
    a = welcomed(d, ports[0], "client A")
    b = welcomed(d, ports[0], "client B")
    d.signal(signal.SIGTERM, "kill -TERM: two requests are in flight")
    d.settle(after="draining")
    last_line(d, a, "client A", b"just in time\n", b"You entered 12 characters.\n")
    d.step("client B: sends nothing, and reads to EOF")
    expect("sigterm", read_to_end(b), b"Error: server shutting down\n")
    d.wait_exit()


@scenario(["--udp", "echo@127.0.0.1:0", "--udp", "time@127.0.0.1:0"], startup=True)
def udp(d, ports):
    echo_port, time_port = ports
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(WAIT)
    c.bind(("127.0.0.1", 0))
    d.step('client: sends "hello, udp" to the echo service, and reads the reply')
    c.sendto(b"hello, udp", ("127.0.0.1", echo_port))
    expect("udp echo", c.recvfrom(65536)[0], b"hello, udp")
    d.settle()
    d.step("client: sends an empty datagram to the echo service (there is no reply)")
    c.sendto(b"", ("127.0.0.1", echo_port))
    d.settle(after="no reply")
    d.step("client: sends an empty datagram to the time service, and reads the reply")
    c.sendto(b"", ("127.0.0.1", time_port))
    d.time_reply = c.recvfrom(65536)[0]
    expect("udp time length", len(d.time_reply), 4)
    d.settle()
    c.close()


@scenario(["--tcp", "ack@127.0.0.1:0", "--console"], startup=True, stdin=True)
def console(d, ports):
    clients = []
    for who, said in (("client A", b"hello"), ("client B", b"hi")):
        d.step("%s: connects, sends %s and its FIN in one segment" % (who, shown(said)))
        s = connect(ports[0])
        send_with_fin(s, said)
        expect(who, read_until(s, b"I get it!\n"), said + b"\nI get it!\n")
        d.settle(after="waits for your reply")
        clients.append(s)
    a, b = clients
    for s, typed, note, reply in (
            (b, b"@2 to you, B", "for B, console number 2", b"to you, B\n"),
            (a, b"fine, thanks", "for the connection that waited longest, A", b"fine, thanks\n")):
        d.step("operator: types %s (%s)" % (shown(typed), note))
        d.p.stdin.write(typed + b"\n")
        d.p.stdin.flush()
        expect("console", read_to_end(s), reply)
        d.settle(after="closed")
    d.step("operator: ends the input (Ctrl-D)")
    d.p.stdin.close()
    d.settle(after="end of input")
    a.close()
    b.close()


# Descriptors 0-9: the standard three, the poll, the waker, the signal pipe's two ends, the
# listener, and two connections. A third finds none left.
@scenario(["--tcp", "count@127.0.0.1:0"], files=10)
def emfile(d, ports):
    a = welcomed(d, ports[0], "client A")
    d.step("client B: connects, and reads the welcome")
    b = connect(ports[0])
    read_until(b, b"string: ")
    d.settle(after="pausing accepts")
    d.step("client C: connects (the kernel completes the handshake; C waits in the backlog)")
    c = connect(ports[0])
    d.settle()
    d.step('client B: sends "bee\\n" and its FIN in one segment, and reads to EOF')
    send_with_fin(b, b"bee\n")
    expect("emfile B", read_to_end(b), b"You entered 3 characters.\n")
    b.close()
    d.settle(after="accepting again")
    d.step('client C: reads the welcome, sends "sea\\n" and its FIN, and reads to EOF')
    read_until(c, b"string: ")
    send_with_fin(c, b"sea\n")
    expect("emfile C", read_to_end(c), b"You entered 3 characters.\n")
    c.close()
    d.settle(after="closed")
    last_line(d, a, "client A", b"ay\n", b"You entered 2 characters.\n")


# The handover socket's directory: a fresh one under /tmp (mode 0700, as --handover wants),
# `/tmp/oneloop-` and 8 random characters, shown as `/tmp/oneloop-XXXXXXXX` (the same length).
HANDOVER_DIR = tempfile.mkdtemp(prefix="oneloop-", dir="/tmp")
HANDOVER_SHOWN = "/tmp/oneloop-XXXXXXXX"
HANDOVER_ARGS = ["--tcp", "count@127.0.0.1:0", "--udp", "echo@127.0.0.1:0",
                 "--handover", os.path.join(HANDOVER_DIR, "handover")]


@scenario(HANDOVER_ARGS, calls=",exit_group")
def handover(d, ports):
    if len(HANDOVER_DIR) != len(HANDOVER_SHOWN):
        fail("handover: %s is not as long as %s" % (HANDOVER_DIR, HANDOVER_SHOWN))
    a = welcomed(d, ports[0], "client A")
    d.step("a new daemon starts, the same instances and --handover, and --backlog 64 "
           "(its own page: handover-new)")
    new = Daemon("handover-new", HANDOVER_ARGS + ["--backlog", "64"], startup=True,
                 calls=",exit_group",
                 title="handover, the new daemon: it takes the sockets, says ready, serves")
    d.others.append(new)
    aliases = {str(d.pid): "OLDPID", str(new.pid): "NEWPID", HANDOVER_DIR: HANDOVER_SHOWN}
    d.aliases = new.aliases = aliases
    d.settle(after="is ready")
    taken = new.ready()
    if taken != ports:
        fail("handover: the new daemon listens on %s, the old one on %s" % (taken, ports))
    d.step('client A: sends "still served\\n" and its FIN in one segment, and reads to EOF')
    send_with_fin(a, b"still served\n")
    expect("client A", read_to_end(a), b"You entered 12 characters.\n")
    a.close()
    d.wait_exit()
    b = welcomed(new, ports[0], "client B")
    last_line(new, b, "client B", b"new\n", b"You entered 3 characters.\n")


def main():
    made = []
    try:
        for name, args, options, run in SCENARIOS:
            d = Daemon(name, args, **options)
            try:
                run(d, d.ready())
            except OSError as e:
                fail("%s: a client failed: %s; the daemon said:\n%s"
                     % (name, e, "\n".join(d.lines)))
            for daemon in [d] + d.others:
                if daemon in RUNNING:
                    daemon.stop()
                names = pages.Names(daemon.lines, daemon.aliases)
                log = [pages.norm_log(l, names) for l in daemon.lines]
                strace_lines = pages.calls(daemon, log, names)
                pages.write(OUT, daemon.name + ".trace.txt", pages.trace(daemon, log))
                pages.write(OUT, daemon.name + ".strace.txt", strace_lines)
                made.append((daemon, name, strace_lines))
        pages.quote_into_pages(OUT)
        player.write_data(OUT, made)
    except BaseException:
        for d in RUNNING:
            d.kill()
        raise
    finally:
        shutil.rmtree(HANDOVER_DIR, ignore_errors=True)


main()
