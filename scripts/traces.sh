#!/usr/bin/env bash
# The narrated traces of docs/learn/traces/: each scenario run once under strace, its trace
# (RUST_LOG=info,oneloop=trace) and its system calls written out, normalised.
#
#   bash scripts/traces.sh            regenerate docs/learn/traces/*.txt, the blocks the pages
#                                     there quote from them, and the trace player's data
#   bash scripts/traces.sh --check    regenerate into a temporary directory; exit 1, with a
#                                     diff, when anything differs from what is committed; and
#                                     prove that the order check fails on a misordered page
#
# Needs strace and python3 (installs nothing; .ci/run installs both). Builds the debug binary
# (cargo build) and runs it under `strace -f` on loopback port 0, once per scenario. A small
# Python driver (scripts/traces/drive.py) plays the clients (and the operator, and the
# signals). It acts only while the daemon sleeps in epoll_wait, after the trace line it waits
# for, so each wake-up of the daemon sees the same events on every run.
#
# For each scenario NAME it writes:
#   NAME.trace.txt    the daemon's standard error, with the driver's steps as `# ...` lines
#   NAME.strace.txt   the daemon's system calls in order, each log line the daemon wrote shown
#                     (as `  | ...`) right after the `write(2, ...)` that wrote it (strace
#                     records whole strings, and each write's bytes are matched with the log
#                     lines they carry: scripts/traces/pages.py), the driver's steps before the
#                     epoll_wait they woke
# then player-data.js, every scenario's lines for docs/learn/player.html, each with the phase
# of the loop it belongs to (scripts/traces/player.py), and refreshes, in every page of the
# directory, each block that follows a line `<!-- quote NAME.trace.txt -->` (or another file
# of the directory).
#
# Every NAME.strace.txt must pass the order check (scripts/traces/order.py): each narrated line
# next to the call it tells of (`poll: woke` after its epoll_wait, `accept -> conn N` after its
# accept4, each read or write after its call). Nothing is written when one does not. And the
# lines a lesson of docs/learn/ quotes from a page by hand (after `<!-- excerpt traces/FILE -->`)
# must still be lines of it, in order (scripts/traces/excerpts.py): the script fails otherwise.
#
# A scenario may start a second daemon (handover: the new daemon that takes the sockets over),
# which gets pages of its own (handover-new.*); the process ids, the user and the handover
# socket's temporary directory are normalised too.
#
# What changes from run to run is normalised: ports (the daemon's as 51423, 51424, ..., the
# clients' as 40001, 40002, ..., in order of appearance, so messages keep their length),
# timeouts (rounded up to 0.1 s, or to whole seconds from 1 s, written `~`), addresses in
# memory, the sender of a signal, the open-file limit, the 4-byte time and the system calls
# that list the network interfaces (their number depends on the machine). Descriptors need
# no normalising: the daemon starts with only 0, 1 and 2 open, so its own are the same each run.
#
# Time: about 5 s, once built.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check=$(check_mode "${1:-}")
command -v strace >/dev/null ||
    die "strace is missing: the traces show its output (Debian: apt-get install strace)"
command -v python3 >/dev/null || die "python3 is missing (Debian: apt-get install python3)"

cd "$ROOT"
cargo build --quiet --bin oneloop
bin="$TARGET_DIR/debug/oneloop"
pages="$ROOT/docs/learn/traces"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out="$work/traces"
mkdir -p "$out"
cp "$pages"/*.md "$out"/

python3 "$ROOT/scripts/traces/drive.py" "$bin" "$out"

order="$ROOT/scripts/traces/order.py"
if ! python3 "$order" "$out"/*.strace.txt; then
    die "the narration is out of place in the pages above: the aligner in scripts/traces/pages.py is wrong"
fi

# The lessons' excerpts of the pages (docs/learn/*.md) must still be lines of them.
excerpts_hold=1
python3 "$ROOT/scripts/traces/excerpts.py" "$ROOT/docs/learn" "$out" || excerpts_hold=0
stale_excerpts="a lesson quotes lines the daemon no longer makes (above): edit its excerpt from docs/learn/traces"

# The order check must see a misordered page for what it is: a page made by an aligner that
# matched log lines to writes by length, where each narrated line comes too early. It must fail
# there, on each kind of line it checks.
order_check_fails_on_misordered_page() {
    local page="$ROOT/tests/fixtures/traces/misordered.strace.txt" said what
    if said=$(python3 "$order" "$page"); then
        die "the order check passed $page, whose lines are out of place"
    fi
    for what in "poll: woke" "accept -> conn 0" "conn 0: read" "conn 0: write"; do
        grep -qF "TRACE $what" <<<"$said" ||
            die "the order check did not see that \`$what\` is out of place in $page; it said:
$said"
    done
    say "the order check fails, as it must, on $(basename "$page") ($(wc -l <<<"$said") faults)"
}

if [ "$check" -eq 1 ]; then
    order_check_fails_on_misordered_page
    if ! diff -ru "$pages" "$out" >"$work/diff"; then
        cat "$work/diff"
        say "FAIL: docs/learn/traces differs from what the daemon does now (above: - committed, + now)."
        say "If the change is meant, run: bash scripts/traces.sh, and review and commit the result."
        exit 1
    fi
    [ "$excerpts_hold" -eq 1 ] || die "$stale_excerpts"
    say "docs/learn/traces is up to date, every narrated line sits next to its call, and the lessons' excerpts are lines of it"
else
    rm -f "$pages"/*.txt "$pages"/*.js
    cp "$out"/* "$pages"/
    say "wrote docs/learn/traces ($(find "$out" -name '*.txt' -o -name '*.js' | wc -l) files)"
    [ "$excerpts_hold" -eq 1 ] || die "$stale_excerpts"
fi
