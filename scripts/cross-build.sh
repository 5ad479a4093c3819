#!/usr/bin/env bash
# Static release builds of the oneloop daemon for embedded Linux boards.
#
#   scripts/cross-build.sh [x86_64|aarch64|armv7|armv7-musl|all] [--load] [--build-std]
#
#   x86_64      x86_64-unknown-linux-musl, linked by rust-lld (no C cross toolchain needed)
#   aarch64     aarch64-unknown-linux-musl, linked by rust-lld
#   armv7       armv7-unknown-linux-gnueabihf, glibc linked statically (+crt-static) by Debian's
#               gcc-arm-linux-gnueabihf: the 32-bit ARM build of the stable toolchain
#   armv7-musl  armv7-unknown-linux-musleabihf, linked by rust-lld: with --build-std against
#               Debian's musl for armhf (build-std needs no prebuilt standard library; that of
#               this target does not install here); without it where `rustup target add`
#               installs the target
#   all         x86_64, aarch64 and armv7 (the default); with --build-std x86_64, aarch64
#               and armv7-musl
#
# Builds `--release --no-default-features`: the daemon, the clients and `sockopts`, without the
# load generator. `--load` builds with the default features (load generator included) instead.
# `--build-std` (musl targets) builds the size-budget binary: a pinned nightly toolchain
# (NIGHTLY, default nightly-2026-10-29) rebuilds the standard library without its backtrace
# symbolizer (`-Z build-std-features=`: no gimli, addr2line, miniz, demangler): for aarch64
# 401 KiB against the stable build's 690 KiB, and without unwind tables
# (`-C force-unwind-tables=no`: a panic aborts, so nothing unwinds; about 45 KiB on x86_64).
# Panics still print their message, without a backtrace. Its binaries go to
# TARGET_DIR/build-std/TRIPLE/release/.
# For armv7-musl the nightly has no rust-std component, whose self-contained directory holds
# musl's C runtime for the other musl targets, so the script gathers one in
# TARGET_DIR/armv7-musl-link/ (symbolic links): crt1.o, crti.o, crtn.o and libc.a from
# musl-dev:armhf (it adds the dpkg architecture armhf for it), crtbegin.o, crtend.o and the
# unwinder libgcc_eh.a (as libunwind.a, the name Rust's std links) from
# gcc-arm-linux-gnueabihf; `-L native=` that directory is where rustc finds them.
# Installs what it needs (Rust targets, Debian packages) the first time. Linkers and rustflags
# are in .cargo/config.toml, so a plain `cargo build --release --target TRIPLE` works as well
# (armv7-musl: see there).
# Prints each binary's path, its size and `file` output, and fails unless it is statically linked
# (x86_64 musl comes out as static-pie, which keeps address-space randomisation).
#
# Time: about 20 s per target on 2 cores with the stable toolchain; a --build-std build
# rebuilds std too, 1 to 2.5 min per target (seconds once built). The first run adds the
# installs: about a minute.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

arches=()
features=(--no-default-features)
build_std=0
all=0
for arg in "$@"; do
    case "$arg" in
        all) all=1 ;;
        x86_64 | aarch64 | armv7 | armv7-musl) arches+=("$arg") ;;
        --load) features=() ;;
        --build-std) build_std=1 ;;
        -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done
if [ "$all" -eq 1 ] || [ ${#arches[@]} -eq 0 ]; then
    if [ "$build_std" -eq 1 ]; then
        arches+=(x86_64 aarch64 armv7-musl)
    else
        arches+=(x86_64 aarch64 armv7)
    fi
fi

# armv7_musl_link_dir: gathers the C runtime of armv7-unknown-linux-musleabihf in LINK_DIR
# (see the top of this file), installing musl-dev:armhf and gcc-arm-linux-gnueabihf if missing.
armv7_musl_link_dir() {
    local musl=/usr/lib/arm-linux-musleabihf gcc_dir
    if ! dpkg --print-foreign-architectures | grep -qx armhf; then
        say "adding the dpkg architecture armhf (for musl-dev:armhf)"
        as_root dpkg --add-architecture armhf
        APT_UPDATED=0 # the package lists of armhf are not fetched yet
    fi
    need_apt musl-dev:armhf gcc-arm-linux-gnueabihf
    gcc_dir=$(dirname "$(arm-linux-gnueabihf-gcc -print-libgcc-file-name)")
    LINK_DIR=$TARGET_DIR/armv7-musl-link
    mkdir -p "$LINK_DIR"
    ln -sf "$musl/crt1.o" "$musl/crti.o" "$musl/crtn.o" "$musl/libc.a" \
        "$gcc_dir/crtbegin.o" "$gcc_dir/crtend.o" "$LINK_DIR/"
    ln -sf "$gcc_dir/libgcc_eh.a" "$LINK_DIR/libunwind.a"
}

need_apt file
cd "$ROOT" || exit 1
for arch in "${arches[@]}"; do
    triple=$(triple_of "$arch")
    [ "$arch" = armv7 ] && need_apt gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
    echo "== $triple ${features[*]:-(default features)}"
    if [ "$build_std" -eq 1 ]; then
        [ "$arch" != armv7 ] || die "--build-std: musl targets only (armv7-musl for 32-bit ARM)"
        nightly=${NIGHTLY:-nightly-2026-10-29}
        rustup toolchain list | grep -q "^$nightly" ||
            rustup toolchain install "$nightly" --profile minimal -c rust-src >/dev/null 2>&1
        rustup component add --toolchain "$nightly" rust-src >/dev/null 2>&1
        # Joined to the rustflags of .cargo/config.toml (cargo merges the two lists).
        link=(--config "target.$triple.rustflags = ['-C', 'force-unwind-tables=no']")
        if [ "$arch" = armv7-musl ]; then
            armv7_musl_link_dir
            link+=(--config "target.$triple.rustflags = ['-L', 'native=$LINK_DIR']")
        else
            # Its self-contained directory holds musl's C runtime and LLVM's libunwind.
            rustup target add --toolchain "$nightly" "$triple" >/dev/null 2>&1
        fi
        CARGO_TARGET_DIR="$TARGET_DIR/build-std" \
            cargo "+$nightly" build --quiet --release --target "$triple" "${features[@]}" \
            -Z build-std=std,panic_abort -Z build-std-features= "${link[@]}"
        bin="$TARGET_DIR/build-std/$triple/release/oneloop"
    else
        if [ "$arch" = armv7-musl ]; then
            rustup target add "$triple" >/dev/null 2>&1 ||
                die "the armv7 musl standard library does not install here: use --build-std"
        fi
        need_target "$triple"
        cargo build --quiet --release --target "$triple" "${features[@]}"
        bin=$(bin_of "$triple")
    fi
    report_size "$bin"
    # x86_64 musl is static-pie (`file`: "static-pie linked"), the others "statically linked".
    file -b "$bin" | grep -Eq "statically linked|static-pie linked" ||
        die "$bin is not statically linked"
done
