#!/usr/bin/env bash
# What an agent's cards cost beside a message: the public card (GET
# /.well-known/agent-card.json), the extended card an authenticated client is shown
# (GetExtendedAgentCard in JSON-RPC, GET /extendedAgentCard in HTTP+JSON, v0.3's
# agent/getAuthenticatedExtendedCard) and a2a:message, one pattern per run, against
# `serve a2a-echo --threads 1` (64 clients) and, with `make test-targets`' virtual
# environments, a2a-sdk 1.x's echo agent (16 clients). Server on core 0, clients on core 1,
# 3 s runs after 1 s of warm-up, the patterns alternating, medians of 3: answered/s, p50, p99,
# the server's cores, errors. Needs a release build.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
ENVS=${A2A_BENCH_PYENVS:-$ROOT/target/pyenvs}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PATTERNS="a2a:message a2a:agent_card a2a:extended_card a2a-rest:extended_card a2a-v03:extended_card"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; }
run() { local name=$1 port=$2 clients=$3; shift 3
  for r in 1 2 3; do for p in "$@"; do
    "$B" http --url "http://127.0.0.1:$port/" --pattern "$p" --agents "$clients" --duration 3 --warmup 1 --repeat 1 --agent-cores "$(( $(nproc) - 1 ))" --stall-probe 0 --output "$OUT/$name-$p-$r.json" >/dev/null 2>&1
  done; done
  python3 - "$OUT" "$name" "$@" <<'PY'
import json, statistics as st, sys
out, name, pats = sys.argv[1], sys.argv[2], sys.argv[3:]
for p in pats:
    rs=[json.load(open(f"{out}/{name}-{p}-{r}.json"))["results"][0] for r in (1,2,3)]
    pp=[r["patterns"][0] for r in rs]
    errs=sum(sum(r["errors"].values()) for r in rs)
    print(f"{name:8} {p:24} {st.median(x['ok_per_sec'] for x in pp):8.0f}/s p50 {st.median(x['latency']['p50_ms'] for x in pp):7.3f} p99 {st.median(x['latency']['p99_ms'] for x in pp):7.3f} server {st.median(r['cpu'].get('target_cores') or 0 for r in rs):.2f} errors {errs}")
PY
}
PORT=$(free_port)
taskset -c 0 "$B" serve a2a-echo --listen "127.0.0.1:$PORT" --threads 1 >/dev/null 2>&1 & E=$!
wait_up "$PORT"
# shellcheck disable=SC2086
run echo "$PORT" 64 $PATTERNS
kill $E
[ -x "$ENVS/a2a/bin/python" ] || { echo "(no make test-targets environments: a2a-sdk left out)"; exit 0; }
PORT=$(free_port)
taskset -c 0 "$ENVS/a2a/bin/python" "$ROOT/tests/targets/a2a_echo.py" "$PORT" >/dev/null 2>&1 & P=$!
wait_up "$PORT"
# shellcheck disable=SC2086
run a2a-sdk "$PORT" 16 $PATTERNS
kill $P
