"""The data of docs/learn/player.html: every scenario's page of system calls, line by line,
each line with its kind and the phase of the loop it belongs to. Written by drive.py as
player-data.js beside the pages (see scripts/traces.sh).

The phases are the boxes of the player's picture of the loop (a simplified docs/learn/loop.svg):
  setup     before the loop: the poll, the signal pipe, the listeners
  poll      steps 1 and 2: the timeout, and the sleep in epoll_wait (the driver acts then)
  wake      step 3: the poll returned; events are dispatched (the signal pipe, the console)
  accept    a listener's event: accept until WouldBlock, register each connection
  read      a connection or UDP socket reads (recvfrom, recvmmsg, the console's read)
  write     it writes (sendto, sendmmsg), or asks for WRITABLE while output waits
  again     step 4: sockets that used their turn go again
  deadline  step 5: deadlines and the loop's timers that are due
  close     step 6 and the end: shutdowns, closes, the drain and the exit
A line that says nothing of its own (a state change, a decision) keeps the phase of the line
before it.
"""

import json
import os
import re

from order import call_of, kind, NARRATION, STEP

PHASES = ("setup", "poll", "wake", "accept", "read", "write", "again", "deadline", "close")

# The phase of a narrated line, by what it says: the first pattern that matches.
SAID = [
    (r"poll: not sleeping", "again"),
    (r"poll: sleeping", "poll"),
    (r"poll: (woke|interrupted)|SIGTERM: no longer accepting|serving -> draining", "wake"),
    (r"open-file limit|listening on", "setup"),
    (r"its deadline passed|deadline passed|grace period|trying to accept again", "deadline"),
    (r"accept|registered with the poll|turned away|the console's connection", "accept"),
    (r"-> closed|-> lingering|shutdown\(Write\)|-> stopping|connections served", "close"),
    (r": read |recvmmsg|bytes from|a short batch|empty datagram|end of input", "read"),
    (r": write |sendmmsg|interest now|the operator says", "write"),
]

# The phase of a call, by its name (epoll_ctl: by what it asks).
CALLED = {
    "epoll_wait": "poll", "accept4": "accept",
    "recvfrom": "read", "read": "read", "recvmmsg": "read",
    "sendto": "write", "sendmmsg": "write",
    "shutdown": "close", "close": "close",
}
# The calls of a handover's exchange: in the loop (the old daemon) a read or a write; before
# it (the new daemon, at start-up) part of the set-up.
IN_THE_LOOP = {"recvmsg": "read", "sendmsg": "write"}


def phases(lines):
    """The phase of each line of a page."""
    out, phase, looping, handler, signal_event = [], "setup", False, False, False
    for line in lines:
        k = kind(line)
        call = call_of(line) if k == "call" else None
        handler = (handler and call is not None) or line.startswith("--- SIG")
        if k == "narration":
            text = line[len(NARRATION):]
            phase = next((p for pat, p in SAID if re.search(pat, text)), phase)
            signal_event = "the signal pipe readable" in text
        elif k == "step" or line.startswith("--- SIG"):
            # The driver acts, and signals come, while the daemon sleeps in the poll; the
            # handler's own calls run inside the interrupted epoll_wait.
            phase = "poll"
        elif line.startswith("+++ "):
            phase = "close"
        elif call and not handler:
            name, args = call[:2]
            looping = looping or name == "epoll_wait"
            if signal_event and name == "recvfrom":
                phase = "wake"  # the signal pipe's bytes: which signals came
            elif name == "epoll_ctl" and "EPOLL_CTL_MOD" in args:
                phase = "write"
            elif name == "epoll_ctl" and looping:
                phase = "accept"  # a new connection's registration
            elif name in CALLED:
                phase = CALLED[name]
            elif name in IN_THE_LOOP:
                phase = IN_THE_LOOP[name] if looping else "setup"
            elif not looping:
                phase = "setup"
        out.append(phase)
    return out


def rows(lines):
    """[kind, phase, text] for each line: kind n (narrated), s (the driver's step), c (a
    call) or o (strace's other notes); the text without the page's `  | ` or `# `."""
    tags = {"narration": "n", "step": "s", "call": "c", "note": "o"}
    out = []
    for line, phase in zip(lines, phases(lines)):
        k = kind(line)
        text = line[len(NARRATION):] if k == "narration" else line
        text = text[len(STEP):] if k == "step" else text
        out.append([tags[k], phase, text])
    return out


def write_data(out, made):
    """player-data.js: `made` is [(daemon, its scenario, lines of its strace page)], in
    reading order; the title is the daemon's own, else the first line of its scenario's page."""
    data = []
    for daemon, scenario, lines in made:
        title = daemon.title
        if title is None:
            with open(os.path.join(out, scenario + ".md")) as f:
                title = f.readline().lstrip("# ").strip()
        data.append({"name": daemon.name, "title": title, "rows": rows(lines)})
    with open(os.path.join(out, "player-data.js"), "w") as f:
        f.write("// Made by scripts/traces.sh from the pages of this directory: do not edit.\n")
        f.write("// Each row: [kind, phase, text]; kind n narrated, s the driver's step, c a call,\n")
        f.write("// o strace's note. Phases: %s.\n" % ", ".join(PHASES))
        # One scenario a line; between `const TRACES = ` and the last `;`, JSON.
        f.write("const TRACES = [\n%s\n];\n" % ",\n".join(json.dumps(s) for s in data))
