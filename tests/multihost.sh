#!/usr/bin/env bash
# make test-multihost: a multi-host run on one machine. The router in one network namespace,
# three workers in three others, joined by veth pairs on a bridge (10.78.0.0/24): every byte
# between them crosses a real (virtual) network stack. Checks: the merged accounting closes;
# the merged histogram is the sum of the parts (counts add; min and max are the parts'
# extremes; the loopback test in tests/it/multihost.rs checks the sum exactly against the
# HdrHistogram logs); one worker killed mid-run makes the merged run fail with that worker
# named and what the others sent its agents counted as errors; two `a2a-bench http` workers
# against a registry meet through the router and merge per pattern; three workers search the
# highest rate together and agree. Needs root and iproute2; skips
# with one line otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v python3 >/dev/null; then
  echo "test-multihost: skipped (needs root, ip and python3)"
  exit 0
fi
BIN=$(realpath "${BIN:-./target/release/a2a-bench}")
BR=a2a-mh-br
NSES=(a2a-mh-r a2a-mh-w0 a2a-mh-w1 a2a-mh-w2)
ADDRS=(10.78.0.1 10.78.0.10 10.78.0.11 10.78.0.12)
ROUTER=tcp://10.78.0.1:7100
WORK=$(mktemp -d)
ROUTER_PID=

cleanup() {
  if [ -n "$ROUTER_PID" ]; then kill -9 "$ROUTER_PID" 2>/dev/null || true; wait "$ROUTER_PID" 2>/dev/null || true; fi
  for i in "${!NSES[@]}"; do
    ip netns del "${NSES[$i]}" 2>/dev/null || true
    ip link del "a2a-mh-$i" 2>/dev/null || true
  done
  ip link del "$BR" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_quiet() { cleanup >/dev/null 2>&1 || true; }
cleanup_quiet
WORK=$(mktemp -d)

ip link add "$BR" type bridge
ip link set "$BR" up
for i in "${!NSES[@]}"; do
  ns=${NSES[$i]}
  ip netns add "$ns"
  ip link add "a2a-mh-$i" type veth peer name eth0 netns "$ns"
  ip link set "a2a-mh-$i" master "$BR" up
  ip netns exec "$ns" ip addr add "${ADDRS[$i]}/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip link set lo up
done

fail() { echo "test-multihost: FAILED: $*"; exit 1; }

# The router, alone in its namespace; its first line is the readiness signal.
ip netns exec a2a-mh-r "$BIN" router --cores 0 --listen 10.78.0.1:7100 > "$WORK/router.txt" 2>&1 &
ROUTER_PID=$!
for _ in $(seq 1 500); do grep -q listening "$WORK/router.txt" 2>/dev/null && break; sleep 0.01; done
grep -q listening "$WORK/router.txt" || fail "the router did not start: $(cat "$WORK/router.txt")"

CORES=$(nproc)
AGENT_CORE=$((CORES - 1))
# worker I RUN_ID SECONDS: one worker in namespace a2a-mh-wI, in the background.
worker() {
  ip netns exec "a2a-mh-w$1" "$BIN" worker --index "$1" --workers 3 --run-id "$2" \
    --router "$ROUTER" --agent-cores "$AGENT_CORE" --agents 30 --topologies ring,mesh \
    --repeat 1 --warmup 0.5 --duration "$3" --interval 0.5 --drain-timeout 2 \
    --hlog "$WORK/$2-hl-$1" --output "$WORK/$2-part-$1.json" > "$WORK/$2-w$1.txt" 2>&1 &
}

echo "test-multihost: three workers, one router, four namespaces"
worker 0 mh1 2; P0=$!
worker 1 mh1 2; P1=$!
worker 2 mh1 2; P2=$!
for p in $P0 $P1 $P2; do wait "$p" || fail "a worker failed: $(tail -n 3 "$WORK"/mh1-w*.txt)"; done
"$BIN" merge "$WORK"/mh1-part-{0,1,2}.json --output "$WORK/mh1.json" --html "$WORK/mh1.html" \
  > "$WORK/mh1-merge.txt" || fail "merge failed: $(cat "$WORK/mh1-merge.txt")"
cat "$WORK/mh1-merge.txt"
python3 - "$WORK" <<'PY' || fail "merged figures"
import json, sys
w = sys.argv[1]
m = json.load(open(f"{w}/mh1.json"))
parts = [json.load(open(f"{w}/mh1-part-{i}.json")) for i in range(3)]
assert m["merged"]["missing"] == [], m["merged"]
for i, r in enumerate(m["results"]):
    assert r["accounting"]["closed"], ("accounting", i, r["accounting"])
    rtts = [p["results"][i]["latency"]["rtt"] for p in parts]
    assert r["latency"]["rtt"]["count"] == sum(x["count"] for x in rtts), "counts add"
    assert r["latency"]["rtt"]["max_ms"] == max(x["max_ms"] for x in rtts), "max"
    assert r["latency"]["rtt"]["min_ms"] == min(x["min_ms"] for x in rtts), "min"
    sent = sum(p["results"][i]["accounting"]["requests_sent"] for p in parts)
    assert r["accounting"]["requests_sent"] == sent, "sent adds"
    assert r["status"] in ("ok", "too_short"), r["status"]
print(f"test-multihost: merged {len(m['results'])} runs: accounting closes, histograms add")
PY

echo "test-multihost: two HTTP workers against a registry, meeting through the router"
ip netns exec a2a-mh-r "$BIN" serve registry --listen 10.78.0.1:7200 > "$WORK/serve.txt" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 500); do grep -q serving "$WORK/serve.txt" 2>/dev/null && break; sleep 0.01; done
grep -q serving "$WORK/serve.txt" || fail "the registry did not start: $(cat "$WORK/serve.txt")"
for i in 0 1; do
  ip netns exec "a2a-mh-w$i" "$BIN" http --url http://10.78.0.1:7200/ \
    --pattern registry:get,registry:search --preload 20 --agents 8 --index "$i" --workers 2 \
    --run-id mh3 --meet "$ROUTER" --agent-cores "$AGENT_CORE" --repeat 2 --warmup 0.3 \
    --duration 1 --output "$WORK/mh3-part-$i.json" > "$WORK/mh3-w$i.txt" 2>&1 &
  eval "H$i=\$!"
done
for p in $H0 $H1; do wait "$p" || fail "an HTTP worker failed: $(tail -n 3 "$WORK"/mh3-w*.txt)"; done
kill "$SERVE_PID" 2>/dev/null || true
"$BIN" merge "$WORK"/mh3-part-{0,1}.json --output "$WORK/mh3.json" > "$WORK/mh3-merge.txt" \
  || fail "HTTP merge failed: $(cat "$WORK/mh3-merge.txt")"
python3 - "$WORK" <<'PY' || fail "merged HTTP figures"
import json, sys
w = sys.argv[1]
m = json.load(open(f"{w}/mh3.json"))
parts = [json.load(open(f"{w}/mh3-part-{i}.json")) for i in range(2)]
for i, r in enumerate(m["results"]):
    assert r["accounting"]["closed"], ("accounting", i, r["accounting"])
    assert r["errors"] == {}, r["errors"]
    for k, p in enumerate(r["patterns"]):
        assert p["ok"] == sum(x["results"][i]["patterns"][k]["ok"] for x in parts), p["pattern"]
    assert r["status"] in ("ok", "too_short"), r["status"]
ok = sum(p["ok"] for r in m["results"] for p in r["patterns"])
print(f"test-multihost: HTTP: merged {len(m['results'])} runs, {ok} answers, per pattern the sum of the parts")
PY

echo "test-multihost: three workers searching the highest rate together"
for i in 0 1 2; do
  ip netns exec "a2a-mh-w$i" "$BIN" worker --index "$i" --workers 3 --run-id mh4 \
    --router "$ROUTER" --agent-cores "$AGENT_CORE" --agents 30 --topologies ring \
    --warmup 0.2 --duration 0.5 --drain-timeout 2 --stall-probe 0 \
    --find-max-rate --slo 'p99<50ms,errors==0' --output "$WORK/mh4-part-$i.json" \
    > "$WORK/mh4-w$i.txt" 2>&1 &
  eval "S$i=\$!"
done
for p in $S0 $S1 $S2; do wait "$p" || fail "a searching worker failed: $(tail -n 3 "$WORK"/mh4-w*.txt)"; done
"$BIN" merge "$WORK"/mh4-part-{0,1,2}.json --output "$WORK/mh4.json" > "$WORK/mh4-merge.txt" \
  || fail "the search's merge failed: $(cat "$WORK/mh4-merge.txt")"
python3 - "$WORK" <<'PY' || fail "the workers' search"
import json, sys
w = sys.argv[1]
m = json.load(open(f"{w}/mh4.json"))
parts = [json.load(open(f"{w}/mh4-part-{i}.json")) for i in range(3)]
s = parts[0]["rate_search"]
assert len(s) == 1 and s[0]["max_rate_per_sec"], s
assert all(p["rate_search"] == s for p in parts), "the workers searched apart"
assert m["rate_search"] == s, "the merge carries the search"
runs = sum(st["runs"] for st in s[0]["steps"]) + 1
assert len(m["results"]) == runs, (len(m["results"]), runs)
print(f"test-multihost: search: every worker held up to {s[0]['max_rate_per_sec']:.0f} req/s in {len(s[0]['steps'])} steps, {runs} merged runs")
PY

echo "test-multihost: worker 1 killed mid-run"
msgs_in() { ip netns exec a2a-mh-w0 "$BIN" stats --router "$ROUTER" 2>/dev/null | awk '$1 ~ /^[0-9]+$/ && NF >= 10 {s += $5} END {print s + 0}'; }
BEFORE=$(msgs_in)
worker 0 mh2 3; P0=$!
worker 1 mh2 3; P1=$!
worker 2 mh2 3; P2=$!
# The router's counters moving is the signal that the run started on every worker.
for _ in $(seq 1 600); do [ "$(msgs_in)" -gt $((BEFORE + 20000)) ] && break; sleep 0.05; done
[ "$(msgs_in)" -gt $((BEFORE + 20000)) ] || fail "the run never started"
kill -9 "$P1"
wait "$P1" 2>/dev/null || true
for p in $P0 $P2; do
  if wait "$p"; then fail "a surviving worker reported success"; fi
done
if "$BIN" merge "$WORK"/mh2-part-{0,2}.json --output "$WORK/mh2.json" > "$WORK/mh2-merge.txt" 2>&1; then
  fail "the merge of a run with a dead worker succeeded"
fi
python3 - "$WORK" <<'PY' || fail "killed worker"
import json, sys
m = json.load(open(f"{sys.argv[1]}/mh2.json"))
assert m["merged"]["missing"] == [1], m["merged"]["missing"]
r = m["results"][0]
assert r["status"] == "failed", r["status"]
assert "worker 1 of 3 wrote no part" in r["failure"], r["failure"]
errors = sum(r["errors"].values())
assert errors > 0, r["errors"]
print(f"test-multihost: worker 1 named as missing; {errors} messages to its agents counted as errors: {r['errors']}")
PY
echo "test-multihost: ok"
