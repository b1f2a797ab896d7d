#!/usr/bin/env bash
# A2A's three bindings side by side: JSON-RPC (over HTTP/1.1 and h2c), HTTP+JSON and gRPC (both
# over h2c), one request and a three-event stream each, against the reference echo agent
# (`a2a-bench serve a2a-echo --threads 1`) pinned to core 0, SECS-second runs of 16 clients on
# the last core after 1 s of warm-up, the settings alternating ROUNDS (3) times. Prints each
# run, then the medians of answers/s and p50 per setting. Needs a release build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
OUT=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 "$BIN" serve a2a-echo --listen "127.0.0.1:$PORT" --threads 1 >"$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$OUT"' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
SETTINGS=("a2a:message" "a2a:message --http2" "a2a-rest:message --http2" "a2a-grpc:message"
    "a2a:stream --http2" "a2a-rest:stream --http2" "a2a-grpc:stream")
for round in $(seq "$ROUNDS"); do
    for i in "${!SETTINGS[@]}"; do
        # shellcheck disable=SC2086
        "$BIN" http --url "http://127.0.0.1:$PORT/" --pattern ${SETTINGS[$i]} --agents 16 \
            --duration "$SECS" --warmup 1 --repeat 1 --agent-cores "$(( $(nproc) - 1 ))" \
            --stall-probe 0 --output "$OUT/$i-$round.json" >/dev/null 2>&1 || true
    done
done
python3 - "$OUT" "$ROUNDS" "${SETTINGS[@]}" <<'PY'
import json, statistics, sys
out, rounds, settings = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print(f"{'setting':28} {'answers/s (rounds)':>40} {'p50 ms':>8} errors")
for i, name in enumerate(settings):
    runs = [json.load(open(f"{out}/{i}-{r}.json"))["results"][0] for r in range(1, rounds + 1)]
    thr = [r["throughput_msg_per_sec"] for r in runs]
    p50 = statistics.median(r["p50_latency_ms"] for r in runs)
    errors = sum(sum(r["errors"].values()) for r in runs)
    each = ", ".join(f"{t / 1e3:.1f}" for t in thr)
    print(f"{name:28} {statistics.median(thr) / 1e3:9.1f} k ({each} k) {p50:8.3f} {errors}")
PY
