"""The order check of the system-call pages (docs/learn/traces/*.strace.txt).

    python3 scripts/traces/order.py FILE...

Exits 1, naming each fault, unless in every FILE each narrated line sits where the daemon
wrote it, next to the system call it tells of. A line that reports a call comes right after
it (the previous call is its call, with the same descriptor and result, and no other line
claims it):
- `poll: woke with N events ...` after its `epoll_wait(...) = N`, `poll: interrupted ...`
  after an `epoll_wait` that gave EINTR;
- `accept -> conn N ... (fd F)` after its `accept4(...) = F`, `accept -> WouldBlock` after an
  `accept4` that gave EAGAIN;
- a connection's `read` and `write` after its `recvfrom` and `sendto` on the connection's
  descriptor, the console's `read` after its `read`, a UDP socket's `recvmmsg` and
  `sendmmsg` after those calls, each with the result the line gives.
A line that announces a call comes right before it (the next call is its call): `poll:
sleeping ...` before its `epoll_wait`, a connection's `shutdown(Write)` before its
`shutdown`. The calls a signal handler makes (after strace's `--- SIGTERM` note, inside the
interrupted `epoll_wait`) belong to no line. Other lines (state changes, decisions) have no
call of their own and are not checked.

scripts/traces.sh runs this on the pages it makes, and on a page whose lines are deliberately
out of place (tests/fixtures/traces/misordered.strace.txt), where it must fail.
"""

import re
import sys

NARRATION, STEP = "  | ", "# "
NOTES = ("--- ", "+++ ", "... ")
# A call: its name, and after ` = ` its result (a number, or -1 and an error name).
CALL = re.compile(r"(\w+)\((.*)\)\s+= (-?\d+|\?)(?: (E[A-Z]+))?")


def kind(line):
    """What a line of a page is: `narration`, `step`, `note` or `call`."""
    if line.startswith(NARRATION):
        return "narration"
    if line.startswith(STEP):
        return "step"
    if line.startswith(NOTES):
        return "note"
    return "call"


def call_of(line):
    """(name, arguments, result, error) of a call line, or None."""
    m = CALL.match(line)
    return m and (m.group(1), m.group(2), m.group(3), m.group(4))


def _result(n):
    """A call result as the narration gives it: `0` from `no`, digits as they are."""
    return "0" if n == "no" else n


# What each narrated line says about its call: a pattern for the line, and from its match the
# call's name, descriptor (None: any) and result ("EAGAIN", "EINTR", or the number).
# `conn` is a function from a connection's number to its descriptor.
def _wants(text, conn):
    rules = [
        (r"poll: woke with (\d+|no) events?", lambda m: ("epoll_wait", None, _result(m[1]))),
        (r"poll: interrupted by a signal", lambda m: ("epoll_wait", None, "EINTR")),
        (r"accept -> conn \d+ from \S+ \(fd (\d+)\)", lambda m: ("accept4", None, m[1])),
        (r"accept -> WouldBlock", lambda m: ("accept4", None, "EAGAIN")),
        (r"conn (\d+): read (\d+) bytes", lambda m: ("recvfrom", conn(m[1]), m[2])),
        (r"conn (\d+): read -> WouldBlock", lambda m: ("recvfrom", conn(m[1]), "EAGAIN")),
        (r"conn (\d+): write (\d+)/\d+ bytes", lambda m: ("sendto", conn(m[1]), m[2])),
        (r"conn (\d+): write -> WouldBlock", lambda m: ("sendto", conn(m[1]), "EAGAIN")),
        (r"console: read (\d+) bytes", lambda m: ("read", None, m[1])),
        (r"udp \S+ \(\w+\): recvmmsg -> (\d+) datagram", lambda m: ("recvmmsg", None, m[1])),
        (r"udp \S+ \(\w+\): sendmmsg: (\d+) of", lambda m: ("sendmmsg", None, m[1])),
    ]
    for pattern, want in rules:
        m = re.search(r"^\w+ +" + pattern, text)
        if m:
            return want(m)
    return None


def _announced(text, conn):
    """The call that a line announces (it comes next), as `_wants` gives it, or None."""
    m = re.search(r"^\w+ +conn (\d+): shutdown\(Write\)", text)
    if m:
        return ("shutdown", conn(m[1]), "0")
    if re.search(r"^\w+ +poll: sleeping", text):
        return ("epoll_wait", None, None)
    return None


def faults(lines):
    """The order faults of one page, as messages with line numbers (from 1)."""
    found, claimed, fds = [], set(), {}

    def conn(n):
        return fds.get(n, "?")

    calls, handler = [], False
    for i, line in enumerate(lines):
        if line.startswith("--- SIG"):
            handler = True
        elif kind(line) == "call" and call_of(line):
            if not handler:
                calls.append((i, call_of(line)))
        else:
            handler = False

    def matches(c, name, fd, result):
        got = c[3] if c[2] == "-1" else c[2]
        return (c[0] == name and result in (None, got)
                and (fd is None or c[1].split(",", 1)[0] == fd))

    for n, line in enumerate(lines):
        if kind(line) != "narration":
            continue
        text = line[len(NARRATION):]
        m = re.search(r"accept -> conn (\d+) from \S+ \(fd (\d+)\)", text)
        if m:
            fds[m[1]] = m[2]
        before = [(i, c) for i, c in calls if i < n]
        announced = _announced(text, conn)
        if announced:
            after = [c for i, c in calls if i > n]
            if not after or not matches(after[0], *announced):
                found.append("line %d: %r is not followed by its %s (fd %s)"
                             % (n + 1, text, announced[0], announced[1] or "any"))
            continue
        want = _wants(text, conn)
        if want is None:
            continue
        # Its call: the one just before it, claimed by no other line.
        ok = before and matches(before[-1][1], *want) and before[-1][0] not in claimed
        if ok:
            claimed.add(before[-1][0])
        else:
            found.append("line %d: %r does not come right after its %s (fd %s, = %s)"
                         % (n + 1, text, want[0], want[1] or "any", want[2]))
    return found


def main(paths):
    bad = 0
    for path in paths:
        with open(path) as f:
            lines = f.read().splitlines()
        for fault in faults(lines):
            print("%s: %s" % (path, fault))
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
