#!/usr/bin/env bash
# A2A v0.3's three bindings side by side: JSON-RPC (`message/send`, `message/stream`),
# HTTP+JSON (`POST /v1/message:send`, `/v1/message:stream`) and gRPC (`a2a.v1.A2AService`'s
# `SendMessage`, `SendStreamingMessage`), one pattern per run, against `serve a2a-echo
# --threads 1` (64 clients, all three) and, with `make test-targets`' virtual environments,
# a2a-sdk 0.3's echo agent (its gRPC server beside the HTTP one, on the same core) and
# a2a-sdk 1.x's with its v0.3 layer (16 clients; 1.x's own HTTP+JSON `a2a-rest:message`
# beside them; it has no v0.3 gRPC). Server on core 0, clients on core 1,
# 3 s runs after 1 s of warm-up, the patterns alternating, medians of 3: answered/s, p50, p99,
# the server's cores, errors. Needs a release build.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/http_medians.sh
. "$ROOT/benches/http_medians.sh"
PATTERNS="a2a-v03:message a2a-v03-rest:message a2a-v03:stream a2a-v03-rest:stream"
GRPC="a2a-v03-grpc:message a2a-v03-grpc:stream"
against echo 64 "$PATTERNS $GRPC" "$B" serve a2a-echo --listen 127.0.0.1:PORT --threads 1
[ -x "$ENVS/a2a03/bin/python" ] || { echo "(no make test-targets environments: a2a-sdk left out)"; exit 0; }
GP=$(free_port)
taskset -c 0 "$ENVS/a2a03/bin/python" "$ROOT/tests/targets/a2a_v03_grpc_echo.py" "$GP" >/dev/null 2>&1 &
GPID=$!
wait_up "$GP"
against a2a-sdk-0.3 16 "$PATTERNS ${GRPC// /@$GP }@$GP" "$ENVS/a2a03/bin/python" "$ROOT/tests/targets/a2a_v03_echo.py" PORT
kill "$GPID"; wait "$GPID" 2>/dev/null
against a2a-sdk-1 16 "$PATTERNS a2a-rest:message" "$ENVS/a2a/bin/python" "$ROOT/tests/targets/a2a_echo.py" PORT
