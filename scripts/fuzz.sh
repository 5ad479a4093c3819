#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo fuzz, libFuzzer) one after the other.
#
#   scripts/fuzz.sh [--ci] [SECS] [TARGET...]
#
# Each target runs SECS seconds (default 60; `scripts/fuzz.sh 3600` for an hour each);
# --ci runs each for 20 s, the short fixed budget of .ci/run. With no TARGET, every one runs.
# Installs what it needs when missing: a pinned nightly toolchain (NIGHTLY, the same
# default as the size-budget build in cross-build.sh), a C++ compiler and cargo-fuzz.
#
# The seeds in fuzz/corpus/TARGET are read, never written. What a run learns goes to
# fuzz/work/corpus/TARGET and is kept, so a later run goes on from it; each run's log is
# fuzz/work/TARGET.log. A crash (or a run over 10 s on one input) stops the script, its
# input saved in fuzz/artifacts/TARGET/; `cargo +NIGHTLY fuzz run TARGET FILE` replays it.
#
# Time with --ci: 20 s per target and about 25 s more once built. The first build (from a
# clean clone) took 10 min on 2 busy cores under nice, later ones seconds; the installs,
# once: the nightly about 50 s, cargo-fuzz about 2.5 min.
source "$(dirname "$0")/lib.sh"

NIGHTLY=${NIGHTLY:-nightly-2026-10-29}
CARGO_FUZZ_VERSION=0.13.2

secs=60
targets=()
for arg in "$@"; do
    case "$arg" in
        --ci) secs=20 ;;
        '' | *[!0-9]*) targets+=("$arg") ;;
        *) secs=$arg ;;
    esac
done

rustup toolchain list | grep -q "^$NIGHTLY" || {
    say "installing the Rust toolchain $NIGHTLY (rustup)"
    # --no-self-update: installing a toolchain must not replace rustup itself.
    rustup toolchain install "$NIGHTLY" --profile minimal --no-self-update >/dev/null 2>&1 ||
        die "rustup toolchain install $NIGHTLY failed"
}
# libfuzzer-sys builds libFuzzer, which is C++.
command -v c++ >/dev/null || need_apt g++
command -v cargo-fuzz >/dev/null || {
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install)"
    cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" ||
        die "cargo install cargo-fuzz failed"
}

cd "$ROOT"
fuzz() { cargo "+$NIGHTLY" fuzz "$@"; }
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(fuzz list)
fi

start=$SECONDS
say "building the fuzz targets ($NIGHTLY)"
fuzz build || die "cargo fuzz build failed"
say "built in $((SECONDS - start)) s"

for target in "${targets[@]}"; do
    [ -d "fuzz/corpus/$target" ] || die "no seed corpus fuzz/corpus/$target"
    mkdir -p "fuzz/work/corpus/$target"
    log="fuzz/work/$target.log"
    say "fuzzing $target for $secs s (log: $log)"
    if ! fuzz run "$target" "fuzz/work/corpus/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -max_len=8192 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "$target failed: its input is in fuzz/artifacts/$target/"
    fi
    # The last status line: runs, coverage, corpus size.
    grep -E '^#[0-9]+' "$log" | tail -n 1 >&2 || true
done
say "fuzzed ${#targets[@]} targets in $((SECONDS - start)) s: nothing found"
