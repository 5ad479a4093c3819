#!/usr/bin/env bash
# Static release builds of the oneloop daemon for embedded Linux boards.
#
#   scripts/cross-build.sh [x86_64|aarch64|armv7|armv7-musl|all] [--load] [--build-std]
#
#   x86_64      x86_64-unknown-linux-musl, linked by rust-lld (no C cross toolchain needed)
#   aarch64     aarch64-unknown-linux-musl, linked by rust-lld
#   armv7       armv7-unknown-linux-gnueabihf, glibc linked statically (+crt-static) by Debian's
#               gcc-arm-linux-gnueabihf
#   armv7-musl  armv7-unknown-linux-musleabihf with rust-lld: the better 32-bit build, where
#               `rustup target add` can install it (it cannot on the project's build machines)
#   all         x86_64, aarch64 and armv7 (the default)
#
# Builds `--release --no-default-features`: the daemon, the clients and `sockopts`, without the
# load generator. `--load` builds with the default features (load generator included) instead.
# `--build-std` (musl targets) builds the size-budget binary: a pinned nightly toolchain
# (NIGHTLY, default nightly-2026-10-29) rebuilds the standard library without its backtrace
# symbolizer (`-Z build-std-features=`: no gimli, addr2line, miniz, demangler), about 140 KiB
# of the stable build's 576 KiB. Panics still print their message, without a backtrace. Its
# binaries go to TARGET_DIR/build-std/TRIPLE/release/.
# Installs what it needs (Rust targets, Debian packages) the first time. Linkers and rustflags
# are in .cargo/config.toml, so a plain `cargo build --release --target TRIPLE` works as well.
# Prints each binary's path, its size and `file` output, and fails unless it is statically linked
# (x86_64 musl comes out as static-pie, which keeps address-space randomisation).
#
# Time: about 20 s per target on 2 cores (the first run adds the installs: about a minute).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

arches=()
features=(--no-default-features)
build_std=0
for arg in "$@"; do
    case "$arg" in
        all) arches+=(x86_64 aarch64 armv7) ;;
        x86_64 | aarch64 | armv7 | armv7-musl) arches+=("$arg") ;;
        --load) features=() ;;
        --build-std) build_std=1 ;;
        -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done
[ ${#arches[@]} -eq 0 ] && arches=(x86_64 aarch64 armv7)

need_apt file
cd "$ROOT" || exit 1
for arch in "${arches[@]}"; do
    triple=$(triple_of "$arch")
    [ "$arch" = armv7 ] && need_apt gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
    if [ "$arch" = armv7-musl ]; then
        rustup target add "$triple" >/dev/null 2>&1 ||
            die "the armv7 musl standard library does not install here; use 'armv7' (static glibc)"
    fi
    need_target "$triple"
    echo "== $triple ${features[*]:-(default features)}"
    if [ "$build_std" -eq 1 ]; then
        [ "$arch" != armv7 ] || die "--build-std: musl targets only"
        nightly=${NIGHTLY:-nightly-2026-10-29}
        rustup toolchain list | grep -q "^$nightly" ||
            rustup toolchain install "$nightly" --profile minimal -c rust-src >/dev/null 2>&1
        rustup component add --toolchain "$nightly" rust-src >/dev/null 2>&1
        rustup target add --toolchain "$nightly" "$triple" >/dev/null 2>&1
        CARGO_TARGET_DIR="$TARGET_DIR/build-std" \
            cargo "+$nightly" build --quiet --release --target "$triple" "${features[@]}" \
            -Z build-std=std,panic_abort -Z build-std-features=
        bin="$TARGET_DIR/build-std/$triple/release/oneloop"
    else
        cargo build --quiet --release --target "$triple" "${features[@]}"
        bin=$(bin_of "$triple")
    fi
    report_size "$bin"
    # x86_64 musl is static-pie (`file`: "static-pie linked"), the others "statically linked".
    file -b "$bin" | grep -Eq "statically linked|static-pie linked" ||
        die "$bin is not statically linked"
done
