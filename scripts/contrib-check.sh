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
#    four substitutions: that binary for /usr/bin/oneloop, the port 0 on 127.0.0.1 for
#    `@:51423`, the user nobody for the user oneloop (the current user when not root:
#    --user then may name only that one), and a temporary directory for the handover
#    socket's /run/oneloop or /var/run/oneloop:
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
# 4. Each upgrade action (--handover) run against the daemon that its service file started:
#    - runit: the copy's ./upgrade, under the real runsv: two handovers, the second to the
#      daemon runsv starts again;
#    - BusyBox: contrib/busybox/oneloop-upgrade on an inittab holding the line, with a stand-in
#      for init's respawn (the line's command started again whenever it exits): two handovers;
#    - procd: the script's upgrade, sourced with a stand-in for `ubus call service list` and
#      for procd's respawn (started again after the delay that the script's `respawn` sets):
#      two handovers;
#    - OpenRC: the script's upgrade, sourced as openrc-run does (rc_ulimit set), with
#      stand-ins for start-stop-daemon (runs the daemon in the background and writes the
#      pidfile), checkpath and the e* functions: one handover, after which the pidfile names
#      the new daemon.
#    First an upgrade whose new daemon refuses to start (the handover socket's directory made
#    writable by its group): it must fail and leave the daemon serving (and OpenRC's pidfile as
#    it was). Then the upgrade, while a client makes one count exchange after another, none of
#    which may fail (a refused connect is a gap); after it the old daemon has ended, the new
#    one serves (as in 3), and the logs show each handover (`handover: took N socket(s)`).
# Installs shellcheck and busybox (apt) when missing; runsv and svlogd come from Debian's runit
# package, unpacked (not installed: its maintainer scripts would set up services on this
# machine) in TARGET_DIR/contrib-check/runit when they are not on the PATH.
#
# Time: about 30 s once the debug binary is built (procd's respawn delay is 5 s).
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
BUSYBOX_UPGRADE=contrib/busybox/oneloop-upgrade
# The command of the inittab's respawn line: what follows `ID:RUNLEVELS:respawn:`.
inittab_cmd=$(sed -n 's/^[^#:]*:[^:]*:respawn://p' "$INITTAB")
if [ -z "$inittab_cmd" ] || [ "$(wc -l <<<"$inittab_cmd")" -ne 1 ]; then
    die "$INITTAB: not one respawn line"
fi

tmp=$(mktemp -d)
LOG=$tmp/daemon.log
DAEMON=
RUNSV=
PROBE=
RESPAWN=
cleanup() {
    if [ -n "$PROBE" ]; then kill -TERM "$PROBE" 2>/dev/null; fi
    if [ -n "$RESPAWN" ]; then
        touch "$tmp/respawn.stop"
        kill -KILL "$(cat "$tmp/respawn.pid")" 2>/dev/null || true
    fi
    if [ -n "$RUNSV" ]; then kill -TERM "$RUNSV" 2>/dev/null && wait_pid_exit "$RUNSV" 10; fi
    if [ -n "$DAEMON" ]; then kill -KILL "$DAEMON" 2>/dev/null; fi
    # Any daemon left with this run's handover socket: those the OpenRC stand-in started (not
    # children of this script), or an unsupervised one after a failed upgrade.
    local cmdline
    for cmdline in /proc/[0-9]*/cmdline; do
        if tr '\0' ' ' 2>/dev/null <"$cmdline" | grep -qF -- "--handover $tmp/run/"; then
            cmdline=${cmdline#/proc/}
            kill -KILL "${cmdline%/cmdline}" 2>/dev/null || true
        fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
# The directory of the handover socket, as the service files make it: writable by its owner only.
mkdir -m 0755 "$tmp/run"

echo "== sh -n, busybox sh -n, shellcheck"
printf '%s\n' "$inittab_cmd" >"$tmp/inittab-command"
for file in "$OPENRC" "$CONFD" "$RUNIT/run" "$RUNIT/log/run" "$RUNIT/upgrade" "$PROCD" \
    "$BUSYBOX_UPGRADE" "$tmp/inittab-command"; do
    sh -n "$file" || die "sh -n $file"
    busybox sh -n "$file" || die "busybox sh -n $file"
    shellcheck --shell=sh "$file" || die "shellcheck $file"
    echo "$file: sh -n, busybox sh -n, shellcheck: clean"
done

# local_copy COMMAND-LINE: the line with this machine's binary, a loopback port 0, $user and
# the handover socket in $tmp/run.
local_copy() {
    sed -e "s|/usr/bin/oneloop|$bin|g" -e "s|@:51423|@127.0.0.1:0|g" \
        -e "s|--user oneloop|--user $user|g" -e "s|\(/var\)\{0,1\}/run/oneloop|$tmp/run|g" <<<"$1"
}

# alive PID: the process PID has not ended. The daemons the OpenRC stand-in starts are not
# this script's children, and this machine's init may leave them zombies once they end.
alive() {
    local state
    state=$(sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# serving NAME PID: the daemon PID (its log in LOG) bound its sockets, serves as $user with
# 1024 descriptors at most and the sandbox on, and answers one count exchange on ADDR (set
# here from the log's first `listening on tcp` line).
serving() {
    local name=$1 pid=$2 deadline=$((SECONDS + 15)) reply limits ids sandbox
    until ADDR=$(grep -o 'listening on tcp 127\.0\.0\.1:[0-9]*' "$LOG" | head -n 1 | cut -d' ' -f4) &&
        [ -n "$ADDR" ] && grep -q "serving as user $user " "$LOG"; do
        alive "$pid" || fail "$name: the daemon exited"
        [ $SECONDS -lt $deadline ] || fail "$name: no 'listening on' and 'serving as' lines"
        sleep 0.1
    done
    reply=$("$bin" client count "$ADDR" hello --timeout 10 2>&1) || fail "$name: client: $reply"
    grep -q 'You entered 5 characters.' <<<"$reply" || fail "$name: count reply: $reply"
    limits=$(awk '/^Max open files/ {print $4, $5}' "/proc/$pid/limits")
    [ "$limits" = "1024 1024" ] || fail "$name: descriptor limit (soft, hard) $limits"
    ids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
    [ "$ids" = "$uid $uid $uid $uid" ] || fail "$name: uids $ids, not $user's $uid"
    sandbox=$(awk '/^(NoNewPrivs|Seccomp):/ {printf "%s %s ", $1, $2}' "/proc/$pid/status")
    [ "$sandbox" = "NoNewPrivs: 1 Seccomp: 2 " ] || fail "$name: not sandboxed: $sandbox"
    echo "$name: pid $pid listening on $ADDR as user $user (uid $uid), descriptors 1024" \
        "(soft and hard), sandboxed; count: $(tail -n 1 <<<"$reply")"
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

# probe_start: a client that makes one count exchange with ADDR after another until
# probe_stop, counting those that fail (a refused connect: a gap in the service).
probe_start() {
    rm -f "$tmp/probe.stop" "$tmp/probe.failures"
    (
        ok=0 failed=0
        until [ -e "$tmp/probe.stop" ]; do
            if reply=$("$bin" client count "$ADDR" hello --timeout 10 2>&1) &&
                grep -q 'You entered 5 characters.' <<<"$reply"; then
                ok=$((ok + 1))
            else
                failed=$((failed + 1))
                echo "$reply" >>"$tmp/probe.failures"
            fi
        done
        echo "$ok $failed" >"$tmp/probe.result"
    ) &
    PROBE=$!
}

# probe_stop NAME: stops the client; NAME fails if an exchange failed, or if none was made.
probe_stop() {
    local ok failed
    touch "$tmp/probe.stop"
    wait "$PROBE" || true
    PROBE=
    read -r ok failed <"$tmp/probe.result"
    [ "$failed" -eq 0 ] ||
        fail "$1: $failed of $((ok + failed)) count exchanges failed: $(head -n 3 "$tmp/probe.failures")"
    [ "$ok" -gt 0 ] || fail "$1: no count exchange during the upgrade"
    echo "$1: $ok count exchanges during the upgrade, none failed"
}

# upgraded NAME OLD NEW HANDOVERS OUTPUT...: after an upgrade, the daemon OLD has ended, the
# daemon NEW serves (serving), and the log LOG with the upgrade's OUTPUT files shows
# HANDOVERS handovers.
upgraded() {
    local name=$1 old=$2 new=$3 handovers=$4 took
    shift 4
    if [ -z "$new" ] || [ "$new" = "$old" ]; then
        fail "$name: the daemon is pid ${new:-none}, as before"
    fi
    ! alive "$old" || fail "$name: the old daemon (pid $old) still runs"
    took=$(cat "$LOG" "$@" | grep -c 'handover: took [0-9]* socket(s)') || true
    [ "$took" -eq "$handovers" ] || fail "$name: $took 'handover: took' lines, not $handovers"
    serving "$name" "$new"
    echo "$name: pid $old handed its sockets over to pid $new ($handovers handover(s))"
}

# refused NAME PID COMMAND...: COMMAND, an upgrade whose new daemon refuses to start (others
# may write to the handover socket's directory), must fail and leave the daemon PID serving.
refused() {
    local name=$1 pid=$2 status=0
    shift 2
    chmod 0775 "$tmp/run"
    "$@" >"$tmp/upgrade.out" 2>&1 || status=$?
    chmod 0755 "$tmp/run"
    [ "$status" -ne 0 ] ||
        fail "$name: an upgrade to a daemon that cannot start succeeded: $(cat "$tmp/upgrade.out")"
    serving "$name" "$pid"
    echo "$name: the upgrade failed: $(tail -n 1 "$tmp/upgrade.out")"
}

# respawn DELAY COMMAND...: runs COMMAND (its log in LOG), and again DELAY s after each time it
# exits, as BusyBox init (at once) and procd (after its respawn delay) do, until respawn_stop;
# the current one's pid is in $tmp/respawn.pid.
respawn() {
    local delay=$1 child
    shift
    rm -f "$tmp/respawn.stop" "$tmp/respawn.pid"
    (
        until [ -e "$tmp/respawn.stop" ]; do
            "$@" 2>>"$LOG" &
            child=$!
            echo "$child" >"$tmp/respawn.pid.new" && mv "$tmp/respawn.pid.new" "$tmp/respawn.pid"
            wait "$child" || true
            [ -e "$tmp/respawn.stop" ] || sleep "$delay"
        done
    ) &
    RESPAWN=$!
    local deadline=$((SECONDS + 10))
    until [ -s "$tmp/respawn.pid" ]; do
        [ $SECONDS -lt $deadline ] || fail "respawn: $* not started within 10 s"
        sleep 0.1
    done
}

# respawn_stop NAME: stops respawning, then the current daemon with SIGTERM; its summary must
# be the last line of LOG.
respawn_stop() {
    touch "$tmp/respawn.stop"
    kill -TERM "$(cat "$tmp/respawn.pid")"
    wait_pid_exit "$RESPAWN" 15 || fail "$1: the daemon still runs 15 s after SIGTERM"
    RESPAWN=
    tail -n 1 "$LOG" | grep -q 'connections served' || fail "$1: no summary at the end of the log"
    echo "$1: SIGTERM: summary logged"
}

echo "== runit: runsv $RUNIT (a copy), svlogd; then its ./upgrade"
sv=$tmp/sv/oneloop
mkdir -p "$tmp/sv"
cp -r "$RUNIT" "$sv"
sed -i "s|/usr/bin/oneloop|$bin|" "$sv/run"
# The settings a board would put in ./conf: the run script's own ONELOOP_ARGS, local.
cat >"$sv/conf" <<EOF
ONELOOP_USER=$user
ONELOOP_HANDOVER=$tmp/run/handover.sock
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
refused "runit refused upgrade" "$pid" "$sv/upgrade"
probe_start
"$sv/upgrade" >"$tmp/upgrade.out" 2>&1 || fail "runit: ./upgrade failed: $(cat "$tmp/upgrade.out")"
probe_stop "runit upgrade"
# svlogd writes the new daemon's lines a moment later.
deadline=$((SECONDS + 10))
until grep -q 'handover: took' "$LOG" || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
upgraded "runit upgrade" "$pid" "$(cat "$sv/supervise/pid")" 2 "$tmp/upgrade.out"
pid=$(cat "$sv/supervise/pid")
kill -TERM "$RUNSV"
wait_pid_exit "$RUNSV" 20 || fail "runit: runsv still running 20 s after SIGTERM"
RUNSV=
! kill -0 "$pid" 2>/dev/null || fail "runit: the daemon outlived runsv"
tail -n 1 "$LOG" | grep -q 'connections served' || fail "runit: no summary at the end of the log"
echo "runit: runsv's SIGTERM stopped the daemon and svlogd; summary in log/main/current"
LOG=$tmp/daemon.log

echo "== BusyBox inittab: busybox sh -c \"exec COMMAND\""
: >"$LOG"
busybox sh -c "exec $(local_copy "$inittab_cmd")" 2>"$LOG" &
DAEMON=$!
serving busybox "$DAEMON"
stopped busybox

echo "== BusyBox: $BUSYBOX_UPGRADE, with a stand-in for init's respawn"
: >"$LOG"
printf '::respawn:%s\n' "$(local_copy "$inittab_cmd")" >"$tmp/inittab"
respawn 0 busybox sh -c "exec $(local_copy "$inittab_cmd")"
pid=$(cat "$tmp/respawn.pid")
serving busybox "$pid"
refused "busybox refused upgrade" "$pid" busybox sh "$BUSYBOX_UPGRADE" "$tmp/inittab"
probe_start
busybox sh "$BUSYBOX_UPGRADE" "$tmp/inittab" 2>"$tmp/upgrade.out" ||
    fail "busybox: $BUSYBOX_UPGRADE failed: $(cat "$tmp/upgrade.out")"
probe_stop "busybox upgrade"
upgraded "busybox upgrade" "$pid" "$(cat "$tmp/respawn.pid")" 2 "$tmp/upgrade.out"
respawn_stop busybox

echo "== OpenRC: $OPENRC and $CONFD, sourced; command, command_args and rc_ulimit run"
# shellcheck disable=SC2016 # the variables are those of the sourced files
openrc=$(env -i RC_SVCNAME=oneloop sh -c '. "$1" && . "$2" &&
    printf "%s\n%s\n%s\n" "$rc_ulimit" "$command" "$command_args"' sh "./$CONFD" "./$OPENRC")
openrc_limit=$(sed -n 1p <<<"$openrc")
openrc_args=$(sed -n 3p <<<"$openrc")
run_line openrc "$openrc_limit" "$(sed -n 2p <<<"$openrc") $openrc_args"

echo "== OpenRC: $OPENRC's upgrade, with stand-ins for start-stop-daemon, checkpath, e*"
# start-stop-daemon --start as openrc-run and upgrade call it: the daemon in the background
# (its log in LOG), its pid in the pidfile; each call's arguments, and whether RC_SVCNAME was
# set, logged in $tmp/ssd.calls.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/start-stop-daemon" <<'EOF'
#!/bin/sh
echo "RC_SVCNAME=${RC_SVCNAME-unset} $*" >>"$SSD_CALLS"
while [ $# -gt 0 ]; do
    case $1 in
        --exec) exec=$2; shift ;;
        --pidfile) pidfile=$2; shift ;;
        --stderr-logger) shift ;;
        --background) background=1 ;;
        --make-pidfile) make=1 ;;
        --) shift; break ;;
    esac
    shift
done
[ -n "$background" ] && [ -n "$make" ] || { echo "start-stop-daemon: not in the background" >&2; exit 1; }
"$exec" "$@" 2>>"$LOG" &
echo $! >"$pidfile"
EOF
chmod 755 "$tmp/bin/start-stop-daemon"
# openrc_run COMMANDS: runs COMMANDS in sh, as openrc-run runs an action: the conf.d file and the
# script sourced, rc_ulimit applied; with this machine's binary and the local command_args.
openrc_run() {
    # shellcheck disable=SC2016 # the variables are those of the sourced files
    env -i PATH="$tmp/bin:$PATH" RC_SVCNAME=oneloop LOG="$LOG" SSD_CALLS="$tmp/ssd.calls" \
        BIN="$bin" ARGS="$(local_copy "$openrc_args")" PIDFILE="$tmp/openrc.pid" sh -c '
        ebegin() { echo "* $* ..."; }
        eend() { [ "$1" -eq 0 ] || echo "* ERROR: $2"; return "$1"; }
        einfo() { echo "* $*"; }
        checkpath() { :; }
        . "$1" && . "$2" && ulimit $rc_ulimit || exit 1
        command=$BIN command_args=$ARGS pidfile=$PIDFILE
        eval "$3"' sh "./$CONFD" "./$OPENRC" "$1"
}
: >"$LOG"
# shellcheck disable=SC2016 # the variables are those of the sourced files
openrc_run 'start-stop-daemon --start --exec "$command" --background --make-pidfile \
    --pidfile "$pidfile" -- $command_args' || fail "openrc: start"
pid=$(cat "$tmp/openrc.pid")
serving openrc "$pid"
refused "openrc refused upgrade" "$pid" openrc_run upgrade
[ "$(cat "$tmp/openrc.pid")" = "$pid" ] || fail "openrc: the failed upgrade changed the pidfile"
[ ! -e "$tmp/openrc.next.pid" ] || fail "openrc: the failed upgrade left openrc.next.pid behind"
probe_start
openrc_run upgrade >"$tmp/upgrade.out" 2>&1 || fail "openrc: upgrade failed: $(cat "$tmp/upgrade.out")"
probe_stop "openrc upgrade"
upgraded "openrc upgrade" "$pid" "$(cat "$tmp/openrc.pid")" 1
tail -n 1 "$tmp/ssd.calls" | grep -q '^RC_SVCNAME=unset .*--stderr-logger logger -t oneloop' ||
    fail "openrc: upgrade's start-stop-daemon call: $(tail -n 1 "$tmp/ssd.calls")"
[ ! -e "$tmp/openrc.next.pid" ] || fail "openrc: upgrade left openrc.next.pid behind"
pid=$(cat "$tmp/openrc.pid")
kill -TERM "$pid"
deadline=$((SECONDS + 15))
while alive "$pid"; do
    [ $SECONDS -lt $deadline ] || fail "openrc: still running 15 s after SIGTERM"
    sleep 0.1
done
tail -n 1 "$LOG" | grep -q 'connections served' || fail "openrc: no summary at the end of the log"
echo "openrc: SIGTERM: summary logged"

echo "== procd: $PROCD sourced, start_service with stand-ins for procd_*; command, limits run"
# shellcheck disable=SC2016 # the variables are those of the stand-ins
procd=$(env -i sh -c '
    procd_open_instance() { :; }
    procd_close_instance() { :; }
    procd_set_param() {
        case $1 in
            command) shift; command="$*" ;;
            limits) nofile=${2#nofile=} ;;
            respawn) respawn_delay=$3 ;;
        esac
    }
    mkdir() { :; }
    . "$1" && start_service &&
        printf "%s\n%s\n%s\n" "-S -n ${nofile% *} && ulimit -H -n ${nofile#* }" "$command" \
            "$respawn_delay"' sh "./$PROCD")
procd_limit=$(sed -n 1p <<<"$procd")
procd_line=$(sed -n 2p <<<"$procd")
procd_delay=$(sed -n 3p <<<"$procd")
run_line procd "$procd_limit" "$procd_line"

echo "== procd: $PROCD's upgrade, with stand-ins for ubus and procd's respawn ($procd_delay s)"
: >"$LOG"
respawn "$procd_delay" sh -c "ulimit $procd_limit && exec $(local_copy "$procd_line")"
pid=$(cat "$tmp/respawn.pid")
serving procd "$pid"
# procd_upgrade: the script's upgrade, with the local command line.
procd_upgrade() {
    # shellcheck disable=SC2016 # the variables are those of the sourced file
    env -i PATH="$PATH" RESPAWN_PID="$tmp/respawn.pid" BIN="$bin" \
        LOCAL_ARGS="$(local_copy "${procd_line#* }")" sh -c '
        ubus() { echo "{ \"oneloop\": { \"instances\": { \"instance1\": { \"running\": true, \"pid\": $(cat "$RESPAWN_PID") } } } }"; }
        . "$1" && PROG=$BIN ARGS=$LOCAL_ARGS && upgrade' sh "./$PROCD"
}
refused "procd refused upgrade" "$pid" procd_upgrade
probe_start
procd_upgrade >"$tmp/upgrade.out" 2>&1 || fail "procd: upgrade failed: $(cat "$tmp/upgrade.out")"
probe_stop "procd upgrade"
upgraded "procd upgrade" "$pid" "$(cat "$tmp/respawn.pid")" 2 "$tmp/upgrade.out"
respawn_stop procd

echo "contrib-check: openrc, runit, busybox and procd files and upgrades checked in $((SECONDS - started)) s"
