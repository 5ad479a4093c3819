#!/usr/bin/env bash
# The size budget: every embedded target's stripped static `oneloop` (daemon and clients, no
# load generator) must be at most 512 KiB.
#
#   scripts/size-budget.sh
#
# Builds (scripts/cross-build.sh) the size-budget binary of each target, whose standard library
# is rebuilt without its backtrace symbolizer (`--build-std`): x86_64 and aarch64 musl, and
# armv7 musl (32-bit ARM). Prints each one's size next to the stable toolchain's build of the
# same architecture (for 32-bit ARM that is the static glibc build), and fails when a
# size-budget binary is over 512 KiB. The stable builds are for comparison only: the standard
# library and musl alone come to about 368 KiB for a trivial static TCP program (aarch64),
# and the size-budget build is some 290 KiB smaller than the stable one.
#
# Time: about 5 min from a clean build directory on 2 cores (three standard libraries to
# rebuild; the first run adds a nightly toolchain and Debian packages), seconds once built.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

BUDGET=$((512 * 1024))
started=$SECONDS
"$ROOT/scripts/cross-build.sh" x86_64 aarch64 armv7 >/dev/null
"$ROOT/scripts/cross-build.sh" x86_64 aarch64 armv7-musl --build-std >/dev/null

# size_line LABEL FILE: the label, the size in bytes and KiB.
size_line() {
    local bytes
    bytes=$(stat -c %s "$2")
    printf '%-44s %7d bytes (%d.%d KiB)\n' "$1" "$bytes" $((bytes / 1024)) \
        $(((bytes % 1024) * 10 / 1024))
}

over=()
# Per architecture: the stable build's short name, the size-budget build's short name.
for pair in x86_64:x86_64 aarch64:aarch64 armv7:armv7-musl; do
    stable=${pair%%:*} small=${pair#*:}
    stable_bin=$(bin_of "$(triple_of "$stable")")
    small_bin="$TARGET_DIR/build-std/$(triple_of "$small")/release/oneloop"
    case "$stable" in
        armv7) size_line "armv7 static glibc, stable toolchain:" "$stable_bin" ;;
        *) size_line "$stable static musl, stable toolchain:" "$stable_bin" ;;
    esac
    size_line "${small%-musl} static musl, size-budget build:" "$small_bin"
    [ "$(stat -c %s "$small_bin")" -le "$BUDGET" ] || over+=("$small")
done
printf '%-44s %7d bytes (512.0 KiB)\n' "budget:" "$BUDGET"
[ ${#over[@]} -eq 0 ] || die "size-budget builds over 512 KiB: ${over[*]}"
echo "size budget holds for x86_64, aarch64 and armv7 ($((SECONDS - started)) s)"
