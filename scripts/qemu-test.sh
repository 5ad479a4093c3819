#!/usr/bin/env bash
# The test suite built for aarch64 (static musl) and run under qemu-user-static on this machine.
#
#   scripts/qemu-test.sh
#
# Runs `cargo test --target aarch64-unknown-linux-musl --no-default-features` for the unit tests
# and the in-process integration tests (count, streams, udp, limits): real sockets on loopback,
# with the daemon's loop on a thread of the emulated test process.
#
# The test files that spawn the built `oneloop` binary (daemon_cli, client, sockopts, systemd,
# load) are left out unless the kernel runs aarch64 executables itself (binfmt_misc with a
# qemu-aarch64 handler registered): a test process under qemu-user execs its child natively, and
# without binfmt_misc that exec fails ("Exec format error"). The script checks and says which.
#
# Installs qemu-user-static and the aarch64 musl target the first time.
# Time: about 2 minutes for the first build of the test dependencies, then under a minute.
# Never with --sandbox: qemu-user takes no seccomp filter, so the daemon would exit 1.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

TRIPLE=aarch64-unknown-linux-musl
need_apt qemu-user-static
need_target "$TRIPLE"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64-static
cd "$ROOT" || exit 1

tests=(--lib --test count --test streams --test udp --test limits)

# Can an aarch64 executable be started directly (binfmt_misc)? A tiny static one tells.
say "== building the tests for $TRIPLE"
cargo test --quiet --target "$TRIPLE" --no-default-features --no-run "${tests[@]}" 2>/dev/null ||
    cargo test --target "$TRIPLE" --no-default-features --no-run "${tests[@]}"
cargo build --quiet --target "$TRIPLE" --no-default-features
if timeout 10 "$TARGET_DIR/$TRIPLE/debug/oneloop" --version >/dev/null 2>&1; then
    say "binfmt_misc runs aarch64 executables: the binary-spawning tests run too"
    tests+=(--test daemon_cli --test client --test sockopts --test systemd)
else
    say "aarch64 executables do not start directly here (no binfmt_misc handler):" \
        "running the in-process tests only"
fi

say "== cargo test --target $TRIPLE --no-default-features ${tests[*]} (runner qemu-aarch64-static)"
cargo test --no-fail-fast --target "$TRIPLE" --no-default-features "${tests[@]}"
