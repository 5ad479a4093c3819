#!/usr/bin/env bash
# Checks the unit files in contrib/systemd with `systemd-analyze verify`, offline.
#
#   scripts/systemd-verify.sh
#
# Needs no running systemd: the units go into a scratch root (--root) next to a copy of this
# machine's system units and stand-ins for /usr/local/bin/oneloop and /bin/kill, and are
# verified there, the template as instances oneloop@1 and oneloop@2. verify runs man(1) for
# each unit's Documentation=man:oneloop(1), which finds docs/oneloop.1 in the scratch root (MANPATH). Then
# prints the exposure score of `systemd-analyze security --offline=yes` for each service.
# Installs Debian's systemd and man-db packages the first time (for systemd-analyze and man).
# Time: about 2 s.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

need_apt systemd man-db
units=$ROOT/contrib/systemd
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/usr/local/bin" "$scratch/etc/systemd/system" "$scratch/usr/lib/systemd" \
    "$scratch/usr/share/man/man1"
cp "$ROOT/docs/oneloop.1" "$scratch/usr/share/man/man1/"
export MANPATH=$scratch/usr/share/man
cp -r /lib/systemd/system "$scratch/usr/lib/systemd/"
# Stand-ins for the commands the units run: the daemon, and the kill of ExecReload=.
mkdir -p "$scratch/bin"
for command in usr/local/bin/oneloop bin/kill; do
    printf '#!/bin/sh\n' >"$scratch/$command"
    chmod 755 "$scratch/$command"
done
cp "$units"/* "$scratch/etc/systemd/system/"

cd "$scratch/etc/systemd/system"
names=(oneloop.service oneloop-count.socket oneloop-echo.socket oneloop@1.service oneloop@2.service)
status=0
out=$(systemd-analyze verify --root="$scratch" "${names[@]}" 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$out" ]; then
    say "$out"
    die "systemd-analyze verify found problems in contrib/systemd"
fi
echo "systemd-analyze verify: no problems in ${names[*]}"
for s in oneloop.service oneloop@1.service; do
    printf '%s: %s\n' "$s" "$(systemd-analyze security --offline=yes --root="$scratch" "$s" 2>&1 |
        grep -o 'Overall exposure level.*')"
done
