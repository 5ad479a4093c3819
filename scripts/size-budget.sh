#!/usr/bin/env bash
# The size budget: the stripped static aarch64 `oneloop` (daemon and clients, no load
# generator) must be at most 512 KiB.
#
#   scripts/size-budget.sh
#
# Builds it both ways (scripts/cross-build.sh): with the stable toolchain, and as the
# size-budget build, whose standard library is rebuilt without its backtrace symbolizer
# (`--build-std`). Prints both sizes; fails when the size-budget build is over 512 KiB.
# The stable build is printed for comparison: the standard library and musl alone come to
# about 368 KiB for a trivial static TCP program, and the backtrace code to about 140 KiB more.
#
# Time: about a minute the first time (a nightly toolchain to install), seconds afterwards.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

BUDGET=$((512 * 1024))
TRIPLE=aarch64-unknown-linux-musl
"$ROOT/scripts/cross-build.sh" aarch64 >/dev/null
"$ROOT/scripts/cross-build.sh" aarch64 --build-std >/dev/null
stable=$(stat -c %s "$(bin_of "$TRIPLE")")
small=$(stat -c %s "$TARGET_DIR/build-std/$TRIPLE/release/oneloop")
echo "aarch64 static, stable toolchain:          $stable bytes ($((stable / 1024)) KiB)"
echo "aarch64 static, size-budget build:         $small bytes ($((small / 1024)) KiB)"
echo "budget:                                    $BUDGET bytes (512 KiB)"
[ "$small" -le "$BUDGET" ] || die "the size-budget build is over 512 KiB"
echo "size budget holds"
