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
# shellcheck source=benches/http_medians.sh
. "$ROOT/benches/http_medians.sh"
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
