#!/usr/bin/env bash
# The container image (Containerfile), built and run with Debian's podman.
#
#   bash scripts/container-check.sh
#
# Builds the static x86_64 binary the image holds (scripts/cross-build.sh x86_64 --build-std:
# seconds once CI's earlier steps have built it), then the image, in a podman storage of the
# script's own (driver vfs, which needs no overlay mount: the image is one small layer), so the
# machine's own images and containers are not touched; the runtime is runc, cgroups are
# managed directly (no systemd). Runs the image's default command on the host's network
# (`--network host`) with lowered limits (`--ulimit nofile=1024:1024`, `nproc=64:64`), and
# checks that it runs as user 65534 with those limits, that count on TCP 51423 and echo on
# UDP 51423 answer (the binary's own clients), and that `podman stop` (SIGTERM) ends it with
# exit status 0 and the summary line in `podman logs`. Port 51423 must be free on the host.
# Removes the container, the image and the storage at exit (and /var/lib/containers, where
# podman caches layer digests whatever the storage, when it made it). Installs podman and runc
# (apt) the first time.
#
# Time: about 10 s once the binary is built; the first run adds podman's install.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

PORT=51423
NAME=oneloop-check
started=$SECONDS
need_apt podman runc iproute2
"$ROOT/scripts/cross-build.sh" x86_64 --build-std >/dev/null
BIN=$TARGET_DIR/build-std/$(triple_of x86_64)/release/oneloop

store=$(mktemp -d /var/tmp/oneloop-podman.XXXXXX)
# podman keeps a cache of image layers' digests there whatever --root says: one it makes, it
# takes away again.
machine_store=/var/lib/containers
made_machine_store=0
[ -e "$machine_store" ] || made_machine_store=1
pm() {
    podman --root "$store/root" --runroot "$store/run" --tmpdir "$store/tmp" \
        --storage-driver vfs --runtime runc --cgroup-manager cgroupfs \
        --events-backend file "$@"
}
cleanup() {
    pm rm --force --time 0 "$NAME" >/dev/null 2>&1 || true
    pm rmi --force "$NAME" >/dev/null 2>&1 || true
    if grep -q " $store/" /proc/mounts; then umount -R "$store"/* 2>/dev/null || true; fi
    rm -rf "$store"
    if [ "$made_machine_store" -eq 1 ]; then rm -rf "$machine_store"; fi
}
trap cleanup EXIT

for proto in t u; do
    [ -z "$(ss -Hl"$proto"n "sport = :$PORT")" ] || die "port $PORT is in use on this machine"
done

echo "== podman build -f Containerfile"
pm build --quiet --tag "$NAME" --file "$ROOT/Containerfile" "$ROOT" >/dev/null
size=$(pm image inspect --format '{{.Size}}' "$NAME")
echo "image $NAME: $size bytes (the binary: $(stat -c %s "$BIN") bytes)"

echo "== podman run (the default command), host network, nofile 1024, nproc 64"
pm run --detach --name "$NAME" --network host --ulimit nofile=1024:1024 \
    --ulimit nproc=64:64 "$NAME" >/dev/null
deadline=$((SECONDS + 10))
until pm logs "$NAME" 2>&1 | grep -q "listening on udp 0.0.0.0:$PORT (echo)"; do
    [ $SECONDS -lt $deadline ] || die "no 'listening on' lines:"$'\n'"$(pm logs "$NAME" 2>&1)"
    sleep 0.1
done
pid=$(pm inspect --format '{{.State.Pid}}' "$NAME")
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
[ "$uids" = "65534 65534 65534 65534" ] || die "the daemon runs as uids $uids, not 65534"
files=$(awk '/^Max open files/ {print $4, $5}' "/proc/$pid/limits")
[ "$files" = "1024 1024" ] || die "the daemon's open-file limits are $files, not 1024 1024"
echo "the daemon (pid $pid on the host) runs as uid 65534, open files limited to 1024"

reply=$("$BIN" client count "127.0.0.1:$PORT" hello --timeout 10) || die "client count: $reply"
grep -q 'You entered 5 characters.' <<<"$reply" || die "count reply: $reply"
echo "count on TCP $PORT: $(tail -n 1 <<<"$reply")"
reply=$("$BIN" client echo "127.0.0.1:$PORT" ping --udp) || die "client echo --udp: $reply"
[ "$reply" = ping ] || die "UDP echo reply: $reply"
echo "echo on UDP $PORT: $reply"

echo "== podman stop (SIGTERM)"
pm stop "$NAME" >/dev/null
code=$(pm inspect --format '{{.State.ExitCode}}' "$NAME")
logs=$(pm logs "$NAME" 2>&1)
[ "$code" = 0 ] || die "exit status $code after podman stop:"$'\n'"$logs"
summary='connections served 1, refused 0, timed out 0, denied 0, limited 0; datagrams answered 1'
grep -q "$summary" <<<"$logs" || die "no summary line in podman logs:"$'\n'"$logs"
grep -q "sandbox: .* system calls allowed" <<<"$logs" || die "not sandboxed:"$'\n'"$logs"
sed 's/^/  /' <<<"$logs"
echo "container-check.sh: exit status 0 after podman stop, in $((SECONDS - started)) s"
