#!/usr/bin/env bash
# make soak: the router as its own process, driven for SOAK_SECS (default 600) in open loop at
# SOAK_SHARE (default 0.5) of its closed-loop peak. Passes when the accounting closes with no
# error and the router's RSS at the end is within ±5 % of its RSS after warm-up. Whether the run
# kept its schedule is printed, not hidden: open loop sends one request at a time where closed
# loop keeps 16 in flight per agent, so half the closed-loop peak can saturate a small machine.
# Prints the figures for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-./target/release/a2a-bench}
SECS=${SOAK_SECS:-600}
SHARE=${SOAK_SHARE:-0.5}
AGENTS=${SOAK_AGENTS:-100}
WARMUP=30
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
ADDR=127.0.0.1:$PORT
"$BIN" router --listen "$ADDR" --cores 0 >"$WORK/router.out" 2>"$WORK/router.err" &
ROUTER=$!
trap 'kill $ROUTER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do "$BIN" stats --router "tcp://$ADDR" >/dev/null 2>&1 && break; sleep 0.1; done

common=(--router "tcp://$ADDR" --agents "$AGENTS" --topologies ring --repeat 1 --agent-cores 1)
"$BIN" "${common[@]}" --duration 5 --warmup 1 --output "$WORK/peak.json" >/dev/null
peak=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["round_trips_per_sec"])' "$WORK/peak.json")
rate=$(python3 -c "print(int($peak * $SHARE))")
echo "soak: closed-loop peak $peak round trips/s; soaking at $rate/s ($SHARE of it) for $SECS s after $WARMUP s of warm-up"

rss() { awk '/VmRSS/ {print $2}' "/proc/$ROUTER/status"; }
( while kill -0 $ROUTER 2>/dev/null; do echo "$(date +%s) $(rss)"; sleep 10; done ) >"$WORK/rss.log" 2>/dev/null &
SAMPLER=$!
start=$(date +%s)
"$BIN" "${common[@]}" --rate "$rate" --duration "$SECS" --warmup "$WARMUP" \
  --output "${SOAK_OUTPUT:-$WORK/soak.json}" >"$WORK/soak.out" 2>&1 || true
end_rss=$(rss)
kill $SAMPLER 2>/dev/null || true
warm_rss=$(awk -v t=$((start + WARMUP + 10)) '$1 >= t {print $2; exit}' "$WORK/rss.log")
python3 - "${SOAK_OUTPUT:-$WORK/soak.json}" "$warm_rss" "$end_rss" <<'PY'
import json, sys
path, warm, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = json.load(open(path))["results"][0]
drift = (end - warm) / warm * 100
print(f"soak: status {r['status']}, achieved {r['pacing']['achieved_rate_per_sec']:.0f}/s, "
      f"{r['accounting']}, errors {dict(r['errors'])}, p50 {r['p50_latency_ms']:.3f} ms, "
      f"p99 {r['p99_latency_ms']:.3f} ms, p99.9 {r['p999_latency_ms']:.3f} ms, max {r['max_latency_ms']:.1f} ms")
print(f"soak: router RSS {warm} KiB after warm-up, {end} KiB at the end: {drift:+.2f} %")
p, cpu = r["pacing"], r["cpu"]
if r["status"] != "ok":
    late = p["late_sends"] / max(1, r["accounting"]["requests_sent"]) * 100
    print(f"soak: note: the run did not keep its schedule (status {r['status']}: {late:.1f} % of "
          f"sends late, sustained {p['sustained']}; busy: agents {cpu['agent_cores']}, router "
          f"{cpu['router_cores']}); a lower SOAK_SHARE soaks at a rate this machine sustains")
ok = not r["errors"] and r["accounting"]["closed"] and abs(drift) <= 5
print("soak: ok" if ok else "soak: FAILED")
sys.exit(0 if ok else 1)
PY
