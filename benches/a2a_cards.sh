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
# shellcheck source=benches/http_medians.sh
. "$ROOT/benches/http_medians.sh"
PATTERNS="a2a:message a2a:agent_card a2a:extended_card a2a-rest:extended_card a2a-v03:extended_card"
against echo 64 "$PATTERNS" "$B" serve a2a-echo --listen 127.0.0.1:PORT --threads 1
[ -x "$ENVS/a2a/bin/python" ] || { echo "(no make test-targets environments: a2a-sdk left out)"; exit 0; }
against a2a-sdk 16 "$PATTERNS" "$ENVS/a2a/bin/python" "$ROOT/tests/targets/a2a_echo.py" PORT
