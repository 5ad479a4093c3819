#!/usr/bin/env bash
# The comparison bench against tiny external servers (benches/compare/testservers/count.py):
# one that serves correctly, one that answers wrongly, one that dies during a run and one that
# is slow to start. Checks the verdicts and figures in results.json, and that an unknown design
# is a usage error. About 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."

srv=benches/compare/testservers/count.py
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# An unknown design is a usage error (exit 2) that lists the valid ones.
set +e
cargo bench -q --bench compare -- --quick --only oneloop,nosuch >"$out/usage.out" 2>"$out/usage.err"
code=$?
set -e
if [ "$code" != 2 ] || ! grep -q 'unknown design "nosuch"' "$out/usage.err" \
    || ! grep -q '"tokio-mt"' "$out/usage.err"; then
    echo "compare-check: --only nosuch gave exit $code:" >&2
    cat "$out/usage.err" >&2
    exit 1
fi

target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
rm -f "$target/compare/results.json"
cargo bench -q --bench compare -- --quick --scenarios concurrency \
    --only good,wrong,dies,slow \
    --server "good=python3 $srv good {tcp}" \
    --server "wrong=python3 $srv wrong {tcp}" \
    --server "dies=python3 $srv dies {tcp}" \
    --server "slow=python3 $srv slow \$ONELOOP_TCP_PORT" \
    --tcp-only good --tcp-only wrong --tcp-only dies --tcp-only slow >"$out/bench.out"

python3 - "$target/compare/results.json" <<'PY'
import json, sys

r = json.load(open(sys.argv[1]))
problems = []
def want(ok, what):
    if not ok:
        problems.append(what)

want(r.get("schema") == "oneloop-compare/1", "schema is oneloop-compare/1")
verdict = {(v["scenario"], v["design"]): v for v in r["verdicts"]}
medians = [m for m in r["medians"] if m["scenario"] == "concurrency"]
runs = [x for x in r["runs"] if x["scenario"] == "concurrency"]
def rows(design):
    return [m for m in medians if m["design"] == design]

for design in ["good", "slow"]:
    v = verdict.get(("concurrency", design), {})
    want(v.get("verdict") == "ok", f"{design}: verdict ok, got {v}")
    for m in rows(design):
        rate = m["metrics"].get("rate_per_s", 0)
        want(rate > 0 and m["metrics"].get("errors") == 0,
             f"{design} {m['param']}: a rate and no errors, got {m['metrics']}")
        want(m["ok_runs"] == m["runs"] == 1, f"{design} {m['param']}: one ok run")
    want(len(rows(design)) == 2, f"{design}: a row per concurrency")

v = verdict.get(("concurrency", "wrong"), {})
want(v.get("verdict") == "wrong reply" and "want" in v.get("detail", ""),
     f"wrong: a wrong reply verdict naming the answer wanted, got {v}")
for m in rows("wrong"):
    want(m["metrics"] == {} and m["ok_runs"] == 0, f"wrong: no figures, got {m}")

v = verdict.get(("concurrency", "dies"), {})
want(v.get("verdict") == "died" and "exit status: 3" in v.get("detail", ""),
     f"dies: a died verdict with its exit status, got {v}")
for m in rows("dies"):
    want(m["metrics"] == {} and m["ok_runs"] == 0, f"dies: no figures in the medians, got {m}")
died_runs = [x for x in runs if x["design"] == "dies"]
want(died_runs and all(x["verdict"] == "died" for x in died_runs), "dies: every run died")

for x in runs:
    want("load_bound" in x and "load_cpu_s" in x["metrics"] or x["verdict"] != "ok",
         f"{x['design']} {x['param']}: the load's CPU is recorded")
want({d["name"]: d["tcp_only"] for d in r["designs"]}
     == {"good": True, "wrong": True, "dies": True, "slow": True}, "the designs, TCP only")

if problems:
    print("compare-check: results.json is not as expected:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("compare-check: good and slow measured, wrong and dies reported and left out")
PY
