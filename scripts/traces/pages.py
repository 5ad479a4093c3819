"""The pages of docs/learn/traces/ made from one scenario's run: its log normalised, its
system calls normalised, and each log line placed after the `write(2, ...)` that wrote it.
Used by drive.py (see scripts/traces.sh)."""

import math
import os
import re
import sys

from order import NARRATION, STEP

# strace's string length while it records: long enough for every log line the daemon writes,
# so each `write(2, "...")` carries its whole line. The pages show other strings cut to SHOWN
# bytes, as `strace -s 64` would.
RECORDED = 65536
SHOWN = 64


def fail(msg):
    sys.exit("traces.sh: " + msg)


class Names:
    """Real ports to stable ones, in order of appearance: the daemon's listening ports
    51423, 51424, ..., the others (the clients') 40001, 40002, ...; and the `aliases` a
    scenario gives, real strings to what the pages show: process ids (after `pid ` or `pid=`,
    and the last word of a handover's `end` record) and paths (replaced wherever they are)."""

    def __init__(self, log, aliases=None):
        self.ports = {}
        for line in log:
            m = re.search(r"listening on \w+ 127\.0\.0\.1:(\d+)", line)
            if m:
                self.ports.setdefault(m.group(1), str(51423 + len(self.ports)))
        self.listening = len(self.ports)
        self.aliases = aliases or {}

    def port(self, real):
        if real == "0":
            return real
        if real not in self.ports:
            self.ports[real] = str(40001 + len(self.ports) - self.listening)
        return self.ports[real]

    def text(self, line):
        line = re.sub(r"(127\.0\.0\.1:|htons\()(\d+)",
                      lambda m: m.group(1) + self.port(m.group(2)), line)
        for real, shown in self.aliases.items():
            if not real.isdigit():
                line = line.replace(real, shown)
        alias = lambda m: m.group(1) + self.aliases.get(m.group(2), m.group(2))
        line = re.sub(r"(\bpid[ =])(\d+)", alias, line)
        line = re.sub(r'("end \d+ )(\d+)', alias, line)
        # Who the daemon runs as: root in CI, someone else elsewhere.
        line = re.sub(r"\buser \d+\)", "user UID)", line)
        return re.sub(r"\buid=\d+, gid=\d+", "uid=UID, gid=GID", line)


def rounded(seconds):
    """A timeout rounded up: to 0.1 s below 1 s, to whole seconds from there."""
    tenths = math.ceil(round(seconds * 10, 6)) / 10
    if tenths >= 1:
        return "%d" % math.ceil(round(seconds, 6))
    return "%.1f" % tenths


def norm_log(line, names):
    line = names.text(line)
    line = re.sub(r"\(timeout (\d+\.\d+) s\)",
                  lambda m: "(timeout ~%s s)" % rounded(float(m.group(1))), line)
    line = re.sub(r"open-file limit: \d+", "open-file limit: N", line)
    line = re.sub(r"broadcast addresses: \[.*\]", "broadcast addresses: [...]", line)
    return line


def strace_string(data):
    """`data` as strace shows a string (default escaping)."""
    out = []
    named = {9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 34: '\\"', 92: "\\\\"}
    for i, b in enumerate(data):
        nxt = data[i + 1] if i + 1 < len(data) else None
        if b in named:
            out.append(named[b])
        elif 32 <= b < 127:
            out.append(chr(b))
        elif nxt is not None and 48 <= nxt <= 55:
            out.append("\\%03o" % b)
        else:
            out.append("\\%o" % b)
    return '"' + "".join(out) + '"'


# A string as strace prints it, and `...` after it when strace cut it short.
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\.\.\.)?')
# One byte of such a string: an escape, or a character.
BYTE = re.compile(r"\\[0-7]{1,3}|\\x[0-9a-fA-F]{2}|\\.|[^\\]")
ESCAPES = {"n": 10, "t": 9, "v": 11, "f": 12, "r": 13}


def string_bytes(escaped):
    """The bytes of a string strace printed."""
    out = bytearray()
    for tok in BYTE.findall(escaped):
        if len(tok) == 1:
            out += tok.encode()
        elif tok[1] in "01234567":
            out.append(int(tok[1:], 8))
        elif tok[1] == "x":
            out.append(int(tok[2:], 16))
        else:
            out.append(ESCAPES.get(tok[1], ord(tok[1])))
    return bytes(out)


def shown(line):
    """A call's strings cut to SHOWN bytes, as `strace -s 64` prints them."""
    def cut(m):
        toks = BYTE.findall(m.group(1))
        more = m.group(2) or len(toks) > SHOWN
        return '"%s"%s' % ("".join(toks[:SHOWN]), "..." if more else "")
    return STRING.sub(cut, line)


def record_lengths(before, after):
    """`after`, a `sendmsg` or `recvmsg` that `before` was until its record changed length
    (a process id replaced): its `iov_len` (sent) and its result made the new length."""
    m, n = (re.search(r'iov_base=%s, iov_len=(\d+)' % STRING.pattern, l) for l in (before, after))
    if not (m and n) or not before.startswith(("sendmsg(", "recvmsg(")):
        return after
    was, now = (len(string_bytes(x.group(1))) for x in (m, n))
    if was == now:
        return after
    if after.startswith("sendmsg(") and n.group(3) == str(was):
        after = after[:n.start(3)] + str(now) + after[n.end(3):]
    return re.sub(r"(\)\s+= )%d$" % was, lambda r: r.group(1) + str(now), after)


def norm_call(line, names, d):
    line = shown(record_lengths(line, names.text(line)))
    line = re.sub(r"\b0x[0-9a-f]{8,}\b", "0xADDR", line)
    line = re.sub(r"si_pid=\d+, si_uid=\d+", "si_pid=PID, si_uid=UID", line)
    m = re.match(r"(epoll_wait\(\d+, .*, \d+, )(\d+)(\)\s+= .*)", line)
    if m:
        ms = round(float(rounded(int(m.group(2)) / 1000)) * 1000)
        line = "%s~%d%s" % (m.group(1), ms, m.group(3))
    reply = d.time_reply
    if reply is not None:
        line = line.replace("iov_base=%s, iov_len=4" % strace_string(reply),
                            'iov_base="<the time: 4 bytes>", iov_len=4')
    return line


def lines_by_write(d, raw):
    """Which log lines each write to standard error carries: {index in `raw`: [line
    numbers]}. Each write's bytes are matched, line by line, with the lines the daemon wrote:
    a write may carry two lines (when the trace's repeats end, the summary of the left-out
    lines goes with the line that ends them), and a partial write's rest comes in the next."""
    at, n, pending = {}, 0, b""
    written = re.compile(r'write\(2, %s, \d+\)\s+= (-?\d+)' % STRING.pattern)
    for i, l in enumerate(raw):
        if not l.startswith("write(2, "):
            continue
        m = written.match(l)
        if not m or m.group(2):
            fail("%s: a write to stderr that strace did not show whole: %s" % (d.name, l))
        pending += string_bytes(m.group(1))[:max(int(m.group(3)), 0)]
        at[i] = []
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            text = line.decode("utf-8", "replace")
            if n >= len(d.lines) or text != d.lines[n]:
                fail("%s: stderr has %r where the log has %r"
                     % (d.name, text, d.lines[n] if n < len(d.lines) else None))
            at[i].append(n)
            n += 1
    if n != len(d.lines) or pending:
        fail("%s: %d log lines but %d in the writes to stderr" % (d.name, len(d.lines), n))
    return at


def calls(d, log, names):
    """The system calls, each log line after the write that wrote it, the driver's steps
    before the epoll_wait they woke."""
    with open(d.raw) as f:
        raw = [re.sub(r"^\d+ +", "", l.rstrip("\n")) for l in f]
    os.remove(d.raw)
    lines_at = lines_by_write(d, raw)
    steps = {}
    for after, text in d.steps:
        steps.setdefault(after, []).append(text)
    start = None
    for i, l in enumerate(raw):
        if d.startup and l.startswith("epoll_create1("):
            start = i
            break
        if not d.startup and any("poll: sleeping" in log[n] for n in lines_at.get(i, [])):
            start = i
            break
    if start is None:
        fail("%s: no start in the strace" % d.name)
    out, pending, netlink = [], [], None
    for i, l in enumerate(raw):
        if i in lines_at:
            for n in lines_at[i]:
                if i >= start:
                    out.append(NARRATION + log[n])
                pending += steps.get(n + 1, [])
            continue
        if i < start:
            continue
        # getifaddrs(): a netlink socket lists the interfaces; the machine decides how
        # many calls that takes and what they say.
        m = re.match(r"socket\(AF_NETLINK, .*\) = (\d+)$", l)
        if m:
            netlink = m.group(1)
            out.append("... getifaddrs(): the interfaces' addresses, read once over a "
                       "netlink socket (calls elided) ...")
            continue
        if netlink is not None and re.match(r"\w+\(%s[,)]" % netlink, l):
            if l.startswith("close("):
                netlink = None
            continue
        # Before each close, a debug build of Rust's standard library checks that the
        # descriptor is open: not the daemon's doing.
        if re.match(r"fcntl\(\d+, F_GETFD\)", l):
            continue
        if l.startswith("epoll_wait(") and pending:
            out += [STEP + t for t in pending]
            pending = []
        out.append(norm_call(l, names, d))
    return out


def trace(d, log):
    out = []
    for n, line in enumerate(log):
        out.append(line)
        for after, text in d.steps:
            if after == n + 1:
                out.append(STEP + text)
    return out


def write(out, name, lines):
    with open(os.path.join(out, name), "w") as f:
        f.write("\n".join(lines) + "\n")


def quote_into_pages(out):
    """Refreshes, in every page, each block that follows `<!-- quote FILE -->`."""
    for page in sorted(os.listdir(out)):
        if not page.endswith(".md"):
            continue
        path = os.path.join(out, page)
        with open(path) as f:
            text = f.read()

        def block(m):
            src = os.path.join(out, m.group(1))
            if not os.path.exists(src):
                fail("%s quotes %s, which no scenario writes" % (page, m.group(1)))
            with open(src) as f:
                return "<!-- quote %s -->\n```text\n%s```\n" % (m.group(1), f.read())

        text, quoted = re.subn(r"<!-- quote (\S+) -->\n```text\n.*?```\n", block, text,
                               flags=re.S)
        if quoted != text.count("<!-- quote "):
            fail("%s: each `<!-- quote FILE -->` line must be followed by a ```text block "
                 "(it may be empty)" % page)
        with open(path, "w") as f:
            f.write(text)
