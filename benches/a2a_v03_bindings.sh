#!/usr/bin/env bash
# A2A v0.3's two bindings side by side: JSON-RPC (`message/send`, `message/stream`) and
# HTTP+JSON (`POST /v1/message:send`, `/v1/message:stream`), one pattern per run, against
# `serve a2a-echo --threads 1` (64 clients) and, with `make test-targets`' virtual
# environments, a2a-sdk 0.3's echo agent and a2a-sdk 1.x's with its v0.3 layer (16 clients;
# 1.x's own HTTP+JSON `a2a-rest:message` beside them). Server on core 0, clients on core 1,
# 3 s runs after 1 s of warm-up, the patterns alternating, medians of 3: answered/s, p50, p99,
# the server's cores, errors. Needs a release build.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/http_medians.sh
. "$ROOT/benches/http_medians.sh"
PATTERNS="a2a-v03:message a2a-v03-rest:message a2a-v03:stream a2a-v03-rest:stream"
against echo 64 "$PATTERNS" "$B" serve a2a-echo --listen 127.0.0.1:PORT --threads 1
[ -x "$ENVS/a2a03/bin/python" ] || { echo "(no make test-targets environments: a2a-sdk left out)"; exit 0; }
against a2a-sdk-0.3 16 "$PATTERNS" "$ENVS/a2a03/bin/python" "$ROOT/tests/targets/a2a_v03_echo.py" PORT
against a2a-sdk-1 16 "$PATTERNS a2a-rest:message" "$ENVS/a2a/bin/python" "$ROOT/tests/targets/a2a_echo.py" PORT
