#!/usr/bin/env bash
# Checks the service files for boards without systemd: contrib/openrc, contrib/runit,
# contrib/busybox and contrib/openwrt.
#
#   bash scripts/contrib-check.sh
#
# 1. `sh -n` (dash) and `busybox sh -n` (ash, the shell of most boards) on every script, and on
#    the command of the BusyBox inittab line.
# 2. shellcheck on every script (and on that command), with no finding left.
# 3. Each one run against the real daemon (target/debug/oneloop, built by `cargo build`), with
#    three substitutions: that binary for /usr/bin/oneloop, the port 0 on 127.0.0.1 for
#    `@:51423`, and the user nobody for the user oneloop (the current user when not root:
#    --user then may name only that one):
#    - runit: contrib/runit/oneloop copied to a temporary directory, its settings in a ./conf
#      there, supervised by the real `runsv`, the log through the real `svlogd` of log/run;
#    - BusyBox: the inittab line's command as BusyBox init runs it,
#      `busybox sh -c "exec COMMAND"`;
#    - OpenRC and procd cannot run here (installing openrc would replace this machine's init;
#      procd is OpenWrt's own): the OpenRC script and its conf.d file are sourced by sh, and
#      the procd script with stand-ins for procd_open_instance, procd_set_param and
#      procd_close_instance, and the command line and descriptor limit they give are run.
#    Each must bind, answer one `count` exchange (`oneloop client count`), serve as the user
#    with the descriptor limit set (1024, soft and hard: /proc/PID/limits) and the sandbox on
#    (`NoNewPrivs: 1`, `Seccomp: 2` in /proc/PID/status), and exit 0 on
#    SIGTERM (runit: runsv's own SIGTERM, which stops the service and its log, then runsv).
# Installs shellcheck and busybox (apt) when missing; runsv and svlogd come from Debian's runit
# package, unpacked (not installed: its maintainer scripts would set up services on this
# machine) in TARGET_DIR/contrib-check/runit when they are not on the PATH.
#
# Time: about 10 s once the debug binary is built.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

started=$SECONDS
cd "$ROOT" || exit 1
need_apt shellcheck busybox
if ! command -v runsv >/dev/null || ! command -v svlogd >/dev/null; then
    runit=$TARGET_DIR/contrib-check/runit
    if [ ! -x "$runit/usr/bin/runsv" ]; then
        say "fetching Debian's runit package (apt-get download), unpacked in $runit"
        mkdir -p "$runit"
        if ! (cd "$runit" && apt-get download -qq runit >/dev/null 2>&1); then
            as_root apt-get update -qq >/dev/null
            (cd "$runit" && apt-get download -qq runit >/dev/null) || die "apt-get download runit"
        fi
        dpkg-deb -x "$runit"/runit_*.deb "$runit"
    fi
    PATH=$runit/usr/bin:$PATH
fi
cargo build --quiet --bin oneloop
bin=$TARGET_DIR/debug/oneloop
if [ "$(id -u)" -eq 0 ]; then user=nobody; else user=$(id -un); fi
uid=$(id -u "$user")

OPENRC=contrib/openrc/oneloop
CONFD=contrib/openrc/oneloop.confd
RUNIT=contrib/runit/oneloop
PROCD=contrib/openwrt/oneloop.init
INITTAB=contrib/busybox/inittab
# The command of the inittab's respawn line: what follows `ID:RUNLEVELS:respawn:`.
inittab_cmd=$(sed -n 's/^[^#:]*:[^:]*:respawn://p' "$INITTAB")
if [ -z "$inittab_cmd" ] || [ "$(wc -l <<<"$inittab_cmd")" -ne 1 ]; then
    die "$INITTAB: not one respawn line"
fi

tmp=$(mktemp -d)
LOG=$tmp/daemon.log
DAEMON=
RUNSV=
cleanup() {
    if [ -n "$RUNSV" ]; then kill -TERM "$RUNSV" 2>/dev/null && wait_pid_exit "$RUNSV" 10; fi
    if [ -n "$DAEMON" ]; then kill -KILL "$DAEMON" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "== sh -n, busybox sh -n, shellcheck"
printf '%s\n' "$inittab_cmd" >"$tmp/inittab-command"
for file in "$OPENRC" "$CONFD" "$RUNIT/run" "$RUNIT/log/run" "$PROCD" "$tmp/inittab-command"; do
    sh -n "$file" || die "sh -n $file"
    busybox sh -n "$file" || die "busybox sh -n $file"
    shellcheck --shell=sh "$file" || die "shellcheck $file"
    echo "$file: sh -n, busybox sh -n, shellcheck: clean"
done

# local_copy COMMAND-LINE: the line with this machine's binary, a loopback port 0 and $user.
local_copy() {
    sed -e "s|/usr/bin/oneloop|$bin|g" -e "s|@:51423|@127.0.0.1:0|g" \
        -e "s|--user oneloop|--user $user|g" <<<"$1"
}

# serving NAME PID: the daemon PID (its log in LOG) bound its sockets, serves as $user with
# 1024 descriptors at most and the sandbox on, and answers one count exchange.
serving() {
    local name=$1 pid=$2 deadline=$((SECONDS + 15)) addr reply limits ids sandbox
    until addr=$(grep -o 'listening on tcp 127\.0\.0\.1:[0-9]*' "$LOG" | cut -d' ' -f4) &&
        [ -n "$addr" ] && grep -q "serving as user $user " "$LOG"; do
        kill -0 "$pid" 2>/dev/null || fail "$name: the daemon exited"
        [ $SECONDS -lt $deadline ] || fail "$name: no 'listening on' and 'serving as' lines"
        sleep 0.1
    done
    reply=$("$bin" client count "$addr" hello --timeout 10 2>&1) || fail "$name: client: $reply"
    grep -q 'You entered 5 characters.' <<<"$reply" || fail "$name: count reply: $reply"
    limits=$(awk '/^Max open files/ {print $4, $5}' "/proc/$pid/limits")
    [ "$limits" = "1024 1024" ] || fail "$name: descriptor limit (soft, hard) $limits"
    ids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
    [ "$ids" = "$uid $uid $uid $uid" ] || fail "$name: uids $ids, not $user's $uid"
    sandbox=$(awk '/^(NoNewPrivs|Seccomp):/ {printf "%s %s ", $1, $2}' "/proc/$pid/status")
    [ "$sandbox" = "NoNewPrivs: 1 Seccomp: 2 " ] || fail "$name: not sandboxed: $sandbox"
    echo "$name: listening on $addr as user $user (uid $uid), descriptors 1024 (soft and hard)," \
        "sandboxed; count: $(tail -n 1 <<<"$reply")"
}

# stopped NAME: the daemon DAEMON ends with status 0 on SIGTERM, its summary logged.
stopped() {
    local status=0
    kill -TERM "$DAEMON"
    wait_pid_exit "$DAEMON" 15 || fail "$1: still running 15 s after SIGTERM"
    wait "$DAEMON" || status=$?
    DAEMON=
    [ "$status" -eq 0 ] || fail "$1: exit status $status after SIGTERM"
    grep -q 'connections served 1,' "$LOG" || fail "$1: no summary 'connections served 1'"
    echo "$1: SIGTERM: exit 0, summary logged"
}

# run_line NAME LIMIT COMMAND-LINE: runs the line (local copy) under `sh -c`, after `ulimit LIMIT`.
run_line() {
    local line
    line=$(local_copy "$3")
    : >"$LOG"
    sh -c "ulimit $2 && exec $line" 2>"$LOG" &
    DAEMON=$!
    serving "$1" "$DAEMON"
    stopped "$1"
}

echo "== runit: runsv $RUNIT (a copy), svlogd"
sv=$tmp/sv/oneloop
mkdir -p "$tmp/sv"
cp -r "$RUNIT" "$sv"
sed -i "s|/usr/bin/oneloop|$bin|" "$sv/run"
# The settings a board would put in ./conf: the run script's own ONELOOP_ARGS, local.
cat >"$sv/conf" <<EOF
ONELOOP_USER=$user
ONELOOP_ARGS="$(local_copy "$(sed -n 's/^ONELOOP_ARGS="\(.*\)"$/\1/p' "$RUNIT/run")")"
EOF
runsv "$sv" &
RUNSV=$!
LOG=$sv/log/main/current
deadline=$((SECONDS + 15))
until [ -s "$sv/supervise/pid" ] && [ -f "$LOG" ]; do
    kill -0 "$RUNSV" 2>/dev/null || die "runit: runsv exited"
    [ $SECONDS -lt $deadline ] || die "runit: no supervise/pid and log/main/current within 15 s"
    sleep 0.1
done
pid=$(cat "$sv/supervise/pid")
serving runit "$pid"
kill -TERM "$RUNSV"
wait_pid_exit "$RUNSV" 20 || fail "runit: runsv still running 20 s after SIGTERM"
RUNSV=
! kill -0 "$pid" 2>/dev/null || fail "runit: the daemon outlived runsv"
grep -q 'connections served 1,' "$LOG" || fail "runit: no summary 'connections served 1' in the log"
echo "runit: runsv's SIGTERM stopped the daemon and svlogd; summary in log/main/current"
LOG=$tmp/daemon.log

echo "== BusyBox inittab: busybox sh -c \"exec COMMAND\""
: >"$LOG"
busybox sh -c "exec $(local_copy "$inittab_cmd")" 2>"$LOG" &
DAEMON=$!
serving busybox "$DAEMON"
stopped busybox

echo "== OpenRC: $OPENRC and $CONFD, sourced; command, command_args and rc_ulimit run"
# shellcheck disable=SC2016 # the variables are those of the sourced files
openrc=$(env -i RC_SVCNAME=oneloop sh -c '. "$1" && . "$2" &&
    printf "%s\n%s %s\n" "$rc_ulimit" "$command" "$command_args"' sh "./$CONFD" "./$OPENRC")
run_line openrc "$(head -n 1 <<<"$openrc")" "$(tail -n 1 <<<"$openrc")"

echo "== procd: $PROCD sourced, start_service with stand-ins for procd_*; command, limits run"
# shellcheck disable=SC2016 # the variables are those of the stand-ins
procd=$(env -i sh -c '
    procd_open_instance() { :; }
    procd_close_instance() { :; }
    procd_set_param() {
        case $1 in
            command) shift; command="$*" ;;
            limits) nofile=${2#nofile=} ;;
        esac
    }
    . "$1" && start_service &&
        printf "%s\n%s\n" "-S -n ${nofile% *} && ulimit -H -n ${nofile#* }" "$command"' \
    sh "./$PROCD")
run_line procd "$(head -n 1 <<<"$procd")" "$(tail -n 1 <<<"$procd")"

echo "contrib-check: openrc, runit, busybox and procd files checked in $((SECONDS - started)) s"
