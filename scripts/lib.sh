# shellcheck shell=bash
# Helpers shared by the scripts in this directory (sourced, not run).
# Installs are idempotent and quiet: a package or target already present costs nothing.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# check_mode ARG: 1 for `--check`, 0 for none; anything else is a usage error naming the
# calling script.
check_mode() {
    case "${1:-}" in
        "") echo 0 ;;
        --check) echo 1 ;;
        *) die "usage: scripts/$(basename "$0") [--check]" ;;
    esac
}

# Root, or sudo when there is one.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
}

APT_UPDATED=0
# need_apt PKG...: installs the Debian packages that are missing (apt-get update at most once).
need_apt() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]} (apt)"
    if [ "$APT_UPDATED" -eq 0 ]; then
        as_root apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# need_target TRIPLE: adds the Rust standard library for TRIPLE when it is missing.
need_target() {
    rustup target list --installed | grep -qx "$1" && return 0
    say "installing Rust target $1 (rustup)"
    rustup target add "$1" >/dev/null 2>&1 || die "rustup target add $1 failed"
}

# The triple for a short architecture name.
triple_of() {
    case "$1" in
        x86_64) echo x86_64-unknown-linux-musl ;;
        aarch64) echo aarch64-unknown-linux-musl ;;
        armv7) echo armv7-unknown-linux-gnueabihf ;;
        armv7-musl) echo armv7-unknown-linux-musleabihf ;;
        *) die "unknown architecture '$1' (x86_64, aarch64, armv7, armv7-musl)" ;;
    esac
}

# The release binary of a triple.
bin_of() { echo "$TARGET_DIR/$1/release/oneloop"; }

# Prints path, size in bytes and KiB, and what `file` says about a binary.
report_size() {
    local bin=$1 bytes
    bytes=$(stat -c %s "$bin")
    printf '%s\n  size: %d bytes (%d.%d KiB)\n  file: %s\n' "$bin" "$bytes" \
        $((bytes / 1024)) $(((bytes % 1024) * 10 / 1024)) "$(file -b "$bin")"
}

# wait_pid_exit PID SECS: waits for a process of ours to end; 1 if it is still there.
wait_pid_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.1
    done
}

# daemon_log: a log file (LOG) for a daemon the script starts in the background (its pid goes
# in DAEMON), removed, with the daemon killed, when the script exits; `fail MESSAGE...` reports
# a failed step with that log.
daemon_log() {
    LOG=$(mktemp)
    DAEMON=
    trap 'if [ -n "$DAEMON" ]; then kill -KILL "$DAEMON" 2>/dev/null; fi; rm -f "$LOG"' EXIT
}
fail() {
    say "FAIL: $*"
    say "--- daemon log:"
    cat "$LOG" >&2
    exit 1
}
