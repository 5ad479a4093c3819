#!/usr/bin/env bash
# The declared minimum Rust version against the locked dependencies.
#
#   bash scripts/msrv-check.sh
#
# Cargo.toml's `rust-version` must be at least the highest `rust-version` any locked dependency
# declares, among those a user's build compiles: the normal and build dependencies of the
# package, followed through the dependency graph, with the default features (the load
# generator, hdrhistogram) and with --no-default-features (the embedded builds), for the
# targets the project builds (x86_64 Linux with glibc, the musl targets of the static builds,
# 32-bit ARM). Dev-dependencies (tests and benchmarks) do not count: users do not build them.
# `cargo metadata --locked` gives the graph as Cargo.lock has it; python3 walks it. Prints
# each feature set's highest dependency and fails when the declared version is lower. (clippy,
# whose `incompatible_msrv` lint reads the same field, checks the crate's own code against it.)
#
# Time: a second or two (the crates are fetched already).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

cd "$ROOT" || exit 1
platforms=(x86_64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl
    armv7-unknown-linux-gnueabihf armv7-unknown-linux-musleabihf)
filters=()
for triple in "${platforms[@]}"; do filters+=(--filter-platform "$triple"); done

status=0
for features in "" --no-default-features; do
    cargo metadata --locked --format-version 1 ${features:+"$features"} "${filters[@]}" |
        python3 -c '
import json, sys

meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]

def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

# Everything reached from the package through dependencies that are not dev-only.
seen, todo = set(), [root]
while todo:
    for dep in nodes[todo.pop()]["deps"]:
        if dep["pkg"] not in seen and any(k["kind"] != "dev" for k in dep["dep_kinds"]):
            seen.add(dep["pkg"])
            todo.append(dep["pkg"])
declared = packages[root]["rust_version"]
top = max((packages[i] for i in seen if packages[i]["rust_version"]),
          key=lambda p: version(p["rust_version"]))
need, name, at = top["rust_version"], top["name"], top["version"]
label = sys.argv[1] or "default features"
print(f"{label}: {len(seen)} dependencies; the highest rust-version is {need} "
      f"({name} {at}); Cargo.toml declares {declared}")
if declared is None or version(declared) < version(need):
    print(f"error: Cargo.toml: rust-version must be at least {need} ({name} {at} needs it)",
          file=sys.stderr)
    sys.exit(1)
' "$features" || status=1
done
exit "$status"
