#!/usr/bin/env bash
# Debian packages of oneloop for amd64, arm64 and armhf, made with cargo-deb.
#
#   bash scripts/deb.sh [--check] [amd64|arm64|armhf ...]     (all three when none is named)
#
# Each architecture's static binary, without the load generator, is built once by
# scripts/cross-build.sh: the size-budget build (--build-std, musl) for amd64
# (x86_64-unknown-linux-musl), arm64 (aarch64-unknown-linux-musl) and armhf
# (armv7-unknown-linux-musleabihf, linked against Debian's musl for armhf).
# target/deb/units/ gets the units of contrib/systemd with the binary at /usr/bin/oneloop, and
# `cargo deb --no-build --target TRIPLE` packages each binary as it is (Cargo.toml,
# [package.metadata.deb]). The packages go to TARGET_DIR/deb/oneloop_VERSION-1_ARCH.deb.
# Installs cargo-deb (cargo install --locked) and what cross-build.sh needs the first time.
#
# A package holds /usr/bin/oneloop, the man page oneloop(1), the copyright file, a lintian
# override for the static binary, and the units in /lib/systemd/system, each service with a
# drop-in (contrib/debian/user.conf) that runs it as the system user oneloop, which postinst
# makes with adduser. postinst also makes /var/lib/oneloop, empty and root's (mode 0755), for
# `--user oneloop --chroot /var/lib/oneloop`. No unit is enabled or started: a default install
# opens no port. The synopsis (the first line of Description) is Cargo.toml's `description`.
#
# --check, what CI runs: packages amd64 and arm64 (rust-lld links both: nothing to install
# but rustup components), and armhf when arm-linux-gnueabihf-gcc is installed (cross-build.sh
# adds musl-dev:armhf; the armhf build takes crtbegin.o and the unwinder from gcc); checks every
# package with dpkg-deb --info and --contents (and its binary with `file`), and that the
# synopsis is whole on its line, under 80 characters; installs the amd64 one with dpkg -i
# under a /usr/sbin/policy-rc.d that forbids starting services, checks the user, the chroot
# directory, that nothing is enabled, `systemd-analyze verify` of the installed units (their
# Documentation=man:oneloop(1) included), and one count exchange with the installed daemon
# serving as user oneloop in the chroot; then dpkg -r and dpkg --purge, which leave no file,
# and leave the system user and group (Debian's practice), which the script then removes; last,
# lintian on every package when it installs (apt), failing on any error it reports.
#
# Time: --check takes about 25 s once the binaries are built. Building them adds 1 to 2.5 min
# per size-budget build (CI's earlier steps, qemu-smoke.sh --build-std and size-budget.sh,
# build all three); the first run adds cargo-deb's install (about 80 s) and lintian's (about
# a minute).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

check=0
arches=()
for arg in "$@"; do
    case "$arg" in
        --check) check=1 ;;
        amd64 | arm64 | armhf) arches+=("$arg") ;;
        -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done
if [ ${#arches[@]} -eq 0 ]; then
    if [ "$check" -eq 1 ]; then
        arches=(amd64 arm64)
        if command -v arm-linux-gnueabihf-gcc >/dev/null; then
            arches+=(armhf)
        else
            say "armhf left out: arm-linux-gnueabihf-gcc is not installed"
        fi
    else
        arches=(amd64 arm64 armhf)
    fi
fi

# Per architecture: the scripts/cross-build.sh architecture (built --build-std, so its binary
# is under TARGET_DIR/build-std), the Rust target, and what `file` says of the binary.
declare -A build=([amd64]=x86_64 [arm64]=aarch64 [armhf]=armv7-musl)
declare -A triple=([amd64]=$(triple_of x86_64) [arm64]=$(triple_of aarch64)
    [armhf]=$(triple_of armv7-musl))
declare -A machine=([amd64]="x86-64" [arm64]="ARM aarch64" [armhf]="ARM, EABI5")

started=$SECONDS
cd "$ROOT" || exit 1
need_apt file
command -v cargo-deb >/dev/null || {
    say "installing cargo-deb (cargo install)"
    cargo install cargo-deb --version "${CARGO_DEB_VERSION:-3.8.0}" --locked --quiet ||
        die "cargo install cargo-deb failed"
}
version=$(cargo pkgid --quiet) # path+file:///...#oneloop@0.1.0
version=${version##*[#@]}

# The units as packaged: the binary is /usr/bin/oneloop. Cargo.toml's assets name this
# directory, relative to the sources.
units=$ROOT/target/deb/units
rm -rf "$units"
mkdir -p "$units"
for unit in "$ROOT"/contrib/systemd/*; do
    sed 's|/usr/local/bin/oneloop|/usr/bin/oneloop|g' "$unit" >"$units/${unit##*/}"
done
! grep -l /usr/local "$units"/* || die "a packaged unit still names /usr/local"

latest=$(sed -n '1s/^oneloop (\([^)]*\)).*/\1/p' contrib/debian/changelog)
[ "$latest" = "$version-1" ] ||
    die "contrib/debian/changelog: the latest entry is '$latest', not $version-1 (Cargo.toml)"

out=$TARGET_DIR/deb
mkdir -p "$out"
debs=()
for arch in "${arches[@]}"; do
    "$ROOT/scripts/cross-build.sh" "${build[$arch]}" --build-std >&2
    deb=$out/oneloop_${version}-1_${arch}.deb
    rm -f "$deb"
    CARGO_TARGET_DIR=$TARGET_DIR/build-std cargo deb --quiet --no-build --no-strip \
        --target "${triple[$arch]}" --output "$deb" >/dev/null
    [ -f "$deb" ] || die "cargo deb made no $deb"
    debs+=("$deb")
    printf '%s: %d bytes; binary %d bytes\n' "$deb" "$(stat -c %s "$deb")" \
        "$(stat -c %s "$TARGET_DIR/build-std/${triple[$arch]}/release/oneloop")"
done
[ "$check" -eq 1 ] || exit 0

# The package's synopsis.
description=$(sed -n 's/^description = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$description" ] || die "no description in Cargo.toml"

# What every package must hold, as dpkg-deb --contents lists it.
expected=(
    ./usr/bin/oneloop
    ./usr/share/man/man1/oneloop.1.gz
    ./usr/share/doc/oneloop/copyright
    ./usr/share/doc/oneloop/changelog.Debian.gz
    ./usr/share/lintian/overrides/oneloop
    ./lib/systemd/system/oneloop.service
    ./lib/systemd/system/oneloop-count.socket
    ./lib/systemd/system/oneloop-echo.socket
    ./lib/systemd/system/oneloop@.service
    ./lib/systemd/system/oneloop.service.d/user.conf
    ./lib/systemd/system/oneloop@.service.d/user.conf
)
echo "== dpkg-deb --info, --contents"
for i in "${!arches[@]}"; do
    arch=${arches[$i]} deb=${debs[$i]}
    info=$(dpkg-deb --info "$deb")
    for field in "Package: oneloop" "Version: $version-1" "Architecture: $arch" \
        "Depends: adduser" "Section: net" "Description: "; do
        grep -q "^ $field" <<<"$info" || die "$deb: no '$field' in dpkg-deb --info:"$'\n'"$info"
    done
    # cargo-deb wraps a description of 80 characters or more onto the next line, which then
    # reads as the start of the extended description. (sed, not head: head would close the
    # pipe early, and dpkg-deb dying of SIGPIPE fails the script under pipefail.)
    synopsis=$(dpkg-deb -f "$deb" Description | sed -n 1p)
    [ "$synopsis" = "$description" ] ||
        die "$deb: the synopsis is '$synopsis', not Cargo.toml's whole description '$description'"
    [ ${#synopsis} -lt 80 ] ||
        die "$deb: the synopsis has ${#synopsis} characters (fewer than 80 wanted)"
    for script in postinst prerm postrm; do
        grep -Eq "^ +[0-9]+ bytes, +[0-9]+ lines +\* +$script " <<<"$info" ||
            die "$deb: no $script"
    done
    contents=$(dpkg-deb --contents "$deb" | awk '{print $NF}')
    for path in "${expected[@]}"; do
        grep -qx -- "$path" <<<"$contents" || die "$deb: $path missing:"$'\n'"$contents"
    done
    ! grep -q '^\./usr/local' <<<"$contents" || die "$deb: files under /usr/local"
    dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/oneloop/copyright |
        cmp -s - contrib/debian/copyright || die "$deb: the copyright file is not ours"
    dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/man/man1/oneloop.1.gz | gzip -dc |
        cmp -s - docs/oneloop.1 || die "$deb: the man page is not docs/oneloop.1"
    what=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/oneloop | file -b -)
    grep -q "${machine[$arch]}" <<<"$what" || die "$deb: the binary is not $arch: $what"
    grep -Eq "statically linked|static-pie linked" <<<"$what" ||
        die "$deb: the binary is not static: $what"
    echo "$deb: fields, maintainer scripts and the ${#expected[@]} files present; $what"
    echo "  synopsis (${#synopsis} characters): $synopsis"
done

# The amd64 package on this machine: installed, checked, removed and purged.
amd64=
for i in "${!arches[@]}"; do
    [ "${arches[$i]}" = amd64 ] && amd64=${debs[$i]}
done
[ -n "$amd64" ] || die "--check needs the amd64 package"
[ "$(id -u)" -eq 0 ] || die "--check installs a package: run it as root"
state=$(dpkg-query -W -f='${db:Status-Status}' oneloop 2>/dev/null) || state=not-installed
[ "$state" = not-installed ] ||
    die "the oneloop package is here already ($state); --check would purge it"
! getent passwd oneloop >/dev/null ||
    die "a user oneloop exists already; --check makes and removes its own (userdel oneloop)"
[ ! -e /var/lib/oneloop ] || die "/var/lib/oneloop exists already; --check would remove it"
# man-db: systemd-analyze verify runs man(1) for each unit's Documentation=.
need_apt systemd man-db

POLICY=/usr/sbin/policy-rc.d
LOG=$(mktemp)
DAEMON=
installed=0
made_user=0
policy_saved=
cleanup() {
    if [ -n "$DAEMON" ]; then kill -KILL "$DAEMON" 2>/dev/null || true; fi
    rm -f "$LOG"
    if [ "$installed" -eq 1 ]; then dpkg --purge oneloop >/dev/null 2>&1 || true; fi
    # The purge leaves the system user and group: the ones the package made here go.
    if [ "$made_user" -eq 1 ]; then
        userdel oneloop 2>/dev/null || true
        groupdel oneloop 2>/dev/null || true
    fi
    rm -f "$POLICY"
    if [ -n "$policy_saved" ]; then mv "$policy_saved" "$POLICY"; fi
}
trap cleanup EXIT
if [ -e "$POLICY" ]; then
    policy_saved=$(mktemp)
    mv "$POLICY" "$policy_saved"
fi
# 101: "action forbidden": deb-systemd-invoke and invoke-rc.d start nothing.
printf '#!/bin/sh\nexit 101\n' >"$POLICY"
chmod 755 "$POLICY"

echo "== dpkg -i $amd64"
installed=1
made_user=1
dpkg -i "$amd64" >/dev/null || die "dpkg -i failed"
[ "$(/usr/bin/oneloop --version)" = "oneloop $version" ] || die "/usr/bin/oneloop --version"
user=$(getent passwd oneloop) || die "postinst made no user oneloop"
IFS=: read -r _ _ uid gid _ home shell <<<"$user"
if [ "$uid" -ge 1000 ] || [ "$home" != /nonexistent ] || [[ "$shell" != */nologin ]]; then
    die "oneloop is not a system user without a home and a login: $user"
fi
[ "$(getent group oneloop | cut -d: -f3)" = "$gid" ] || die "no group oneloop for the user"
chroot_dir=$(stat -c '%U:%G %a' /var/lib/oneloop) || die "postinst made no /var/lib/oneloop"
[ "$chroot_dir" = "root:root 755" ] || die "/var/lib/oneloop is $chroot_dir, not root:root 755"
[ -z "$(ls -A /var/lib/oneloop)" ] || die "/var/lib/oneloop is not empty"
enabled=$(find /etc/systemd/system -name 'oneloop*' 2>/dev/null)
[ -z "$enabled" ] || die "units enabled by the install: $enabled"
if command -v man >/dev/null; then
    [ "$(man -w oneloop)" = /usr/share/man/man1/oneloop.1.gz ] || die "man -w oneloop"
fi
echo "installed: user oneloop (uid $uid, gid $gid, shell $shell), /var/lib/oneloop empty" \
    "($chroot_dir), no unit enabled"

echo "== systemd-analyze verify (installed units)"
status=0
found=$(systemd-analyze verify oneloop.service oneloop-count.socket oneloop-echo.socket \
    oneloop@1.service 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$found" ]; then die "systemd-analyze verify:"$'\n'"$found"; fi
for unit in oneloop.service oneloop@1.service; do
    security=$(systemd-analyze security --offline=yes "$unit" 2>&1) || true
    grep -q 'User=/DynamicUser=.*static non-root user' <<<"$security" ||
        die "$unit does not run as a static user:"$'\n'"$security"
done
echo "systemd-analyze verify: no problems; both services run as User=oneloop"

echo "== the installed daemon, serving as user oneloop in the chroot /var/lib/oneloop, sandboxed"
/usr/bin/oneloop --user oneloop --chroot /var/lib/oneloop --sandbox --tcp count@127.0.0.1:0 2>"$LOG" &
DAEMON=$!
deadline=$((SECONDS + 10))
until addr=$(grep -o 'listening on tcp 127\.0\.0\.1:[0-9]*' "$LOG" | cut -d' ' -f4) &&
    [ -n "$addr" ] && grep -q 'serving as user oneloop .*, root /var/lib/oneloop' "$LOG"; do
    [ $SECONDS -lt $deadline ] ||
        fail "no 'listening on' and 'serving as user oneloop ..., root /var/lib/oneloop' lines"
    sleep 0.1
done
reply=$(/usr/bin/oneloop client count "$addr" hello --timeout 10) || fail "client count: $reply"
grep -q 'You entered 5 characters.' <<<"$reply" || fail "count reply: $reply"
grep -q '^Seccomp:[[:space:]]*2$' "/proc/$DAEMON/status" || fail "no seccomp filter"
kill -TERM "$DAEMON"
wait_pid_exit "$DAEMON" 15 || fail "the daemon did not stop on SIGTERM"
wait "$DAEMON" || fail "exit status $? after SIGTERM"
DAEMON=
grep "serving as user" "$LOG" | sed 's/^/  /'
echo "count exchange answered: $(tail -n 1 <<<"$reply")"

echo "== dpkg -r, dpkg --purge"
dpkg -r oneloop >/dev/null || die "dpkg -r failed"
if [ -e /usr/bin/oneloop ] || [ -e /lib/systemd/system/oneloop.service ]; then
    die "dpkg -r left the package's files"
fi
dpkg --purge oneloop >/dev/null || die "dpkg --purge failed"
installed=0
getent passwd oneloop >/dev/null || die "the purge removed the system user oneloop"
getent group oneloop >/dev/null || die "the purge removed the group oneloop"
left=$(find /lib/systemd/system /etc/systemd/system /usr/share/doc /var/lib/systemd \
    -name 'oneloop*' 2>/dev/null)
[ -z "$left" ] || die "the purge left: $left"
[ ! -e /var/lib/oneloop ] || die "the purge left /var/lib/oneloop"
echo "removed and purged: no files; the user and group oneloop stay, as Debian's practice is"

echo "== lintian"
if (need_apt lintian) && command -v lintian >/dev/null; then
    for deb in "${debs[@]}"; do
        status=0
        found=$(lintian --fail-on error --display-level '>=warning' "$deb" 2>&1) || status=$?
        # Its advice to CI, which runs as root, is not about the package.
        found=$(grep -v '^running with root privileges' <<<"$found" || true)
        echo "$deb: ${found:-no errors, no warnings}"
        [ "$status" -eq 0 ] || die "lintian reports errors in $deb"
    done
else
    say "lintian does not install here: skipped"
fi
echo "deb.sh --check: ${#debs[@]} packages (${arches[*]}) in $((SECONDS - started)) s"
