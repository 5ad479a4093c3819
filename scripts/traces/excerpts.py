"""The excerpts of the traces that the lessons of docs/learn/ quote by hand.

    python3 scripts/traces/excerpts.py LESSONS TRACES

A lesson may quote some lines of a page of docs/learn/traces/ in a ```text block that follows
a line `<!-- excerpt traces/NAME.strace.txt -->` (or another file of that directory). Exits 1,
naming each fault, unless every such block is made of runs of consecutive lines of that file
as it is in TRACES, in the file's order; a line `...` between two runs stands for the lines
left out. So a lesson's excerpt goes stale, and says so, when the daemon's calls change.

scripts/traces.sh runs this on docs/learn/*.md and the pages it has just made.
"""

import os
import re
import sys

BLOCK = re.compile(r"<!-- excerpt traces/(\S+) -->\n```text\n(.*?)```\n", re.S)
GAP = "..."


def faults(lesson, text, traces):
    """What is wrong with the excerpts of `lesson` (its text), against the pages in `traces`."""
    found = []
    if len(BLOCK.findall(text)) != text.count("<!-- excerpt "):
        found.append("%s: each `<!-- excerpt traces/FILE -->` line must be followed by a "
                     "```text block" % lesson)
    for name, block in BLOCK.findall(text):
        path = os.path.join(traces, name)
        if not os.path.exists(path):
            found.append("%s: an excerpt of %s, which no scenario writes" % (lesson, name))
            continue
        with open(path) as f:
            page = f.read().splitlines()
        at = 0  # where the next run may start in the page
        runs = [[]]
        for line in block.splitlines():
            if line == GAP:
                runs.append([])
            else:
                runs[-1].append(line)
        for run in filter(None, runs):
            start = next((i for i in range(at, len(page) - len(run) + 1)
                          if page[i:i + len(run)] == run), None)
            if start is None:
                found.append("%s: the excerpt of %s beginning %r is not a run of its lines "
                             "(from line %d of it on)" % (lesson, name, run[0], at + 1))
                break
            at = start + len(run)
    return found


def main(lessons, traces):
    bad = []
    for name in sorted(os.listdir(lessons)):
        if name.endswith(".md"):
            with open(os.path.join(lessons, name)) as f:
                bad += faults(os.path.join(lessons, name), f.read(), traces)
    for fault in bad:
        print(fault)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
