#!/usr/bin/env bash
# `make test-targets`: every `a2a-bench http` pattern against the real Python servers from PyPI
# — an a2a-sdk 1.x echo agent (its JSON-RPC, HTTP+JSON and gRPC bindings), one on a2a-sdk 0.3
# (A2A v0.3, what most deployed agents speak; its three bindings too), MCP servers on mcp
# 1.x (sessions) and 2.x (sessions, and the sessionless 2026-07-28 protocol), and a2a-registry
# (without its heavy optional dependencies) — each run must succeed with 0 errors. Virtual
# environments are made once under target/pyenvs (A2A_BENCH_PYENVS to move them), and again when
# what they hold changes. Needs python3 with venv and PyPI access.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
ENVS=${A2A_BENCH_PYENVS:-$ROOT/target/pyenvs}
HERE=$ROOT/tests/targets
OUT=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$OUT"; }
trap cleanup EXIT

mkenv() { # name, pip arguments... (made again when the arguments change)
    local name=$1; shift
    if [ ! -x "$ENVS/$name/bin/python" ] || [ "$(cat "$ENVS/$name/.done" 2>/dev/null)" != "$*" ]; then
        echo "== making $ENVS/$name: pip install $*"
        rm -rf "${ENVS:?}/$name"
        python3 -m venv "$ENVS/$name"
        "$ENVS/$name/bin/pip" install -q --disable-pip-version-check "$@"
        echo "$*" > "$ENVS/$name/.done"
    fi
}
mkenv a2a 'a2a-sdk[http-server,grpc]>=1,<2' uvicorn
mkenv a2a03 'a2a-sdk[http-server,grpc]>=0.3,<0.4' uvicorn
mkenv mcp1 'mcp>=1.20,<2'
mkenv mcp2 'mcp>=2,<3'
mkenv registry fastapi uvicorn fasta2a jsonrpcserver pydantic httpx httpx-sse sse-starlette click pyjwt
[ -f "$ENVS/registry/.registry" ] || {
    "$ENVS/registry/bin/pip" install -q --disable-pip-version-check --no-deps 'a2a-registry==0.1.5'
    touch "$ENVS/registry/.registry"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts "$@" in the background and waits (up to 60 s) until http://127.0.0.1:$port answers.
start() {
    local port=$1; shift
    "$@" >"$OUT/server-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 600); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null; then return 0; fi
        if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then cat "$OUT/server-$port.log"; return 1; fi
        sleep 0.1
    done
    echo "server on $port did not start"; cat "$OUT/server-$port.log"; return 1
}

FAILED=0
check() { # label, a2a-bench http arguments... (RUN="--duration 2 --agents 4" by default;
           # MIN_RECONNECTS: connections the server must have closed and a2a-bench replaced)
    local label=$1; shift
    local report="$OUT/$(echo "$label" | tr -c 'a-z0-9\n' '-').json"
    echo "== $label"
    # shellcheck disable=SC2086
    if "$BIN" http ${RUN:---duration 2 --agents 4} --warmup 0.5 --repeat 1 --interval 0 --output "$report" \
        --agent-cores "$(( $(nproc) - 1 ))" "$@" \
        | grep -E '^ +[0-9]+ +client|^       [a-z]'; then :; fi
    python3 - "$report" "$label" "${MIN_RECONNECTS:-0}" <<'PY' || FAILED=1
import json, sys
report, label, min_reconnects = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = json.load(open(report))["results"][0]
errors = sum(r["errors"].values())
ok = r["success"] and errors == 0 and r["accounting"]["closed"] and all(p["ok"] > 0 for p in r["patterns"])
ok = ok and r["reconnects"] >= min_reconnects
# MCP with sessions: every session ended by its DELETE (the SDK's servers allow it).
sessions = r.get("mcp_sessions")
ok = ok and (sessions is None or (sessions["failed"] == 0 and not sessions["refused"]))
ended = "" if sessions is None else f", sessions {sessions}"
target = (r.get("memory") or {}).get("target_bytes")
held = "" if target is None else f", server RSS {target / 1048576:.0f} MiB"
answered = sum(p["ok"] for p in r["patterns"])
print(f"   {label}: {'PASS' if ok else 'FAIL'}: {answered} answers, {errors} errors {r['errors']}, {r['reconnects']} reconnects, {r['throughput_msg_per_sec']:.0f} req/s, p50 {r['p50_latency_ms']:.2f} ms, p99 {r['p99_latency_ms']:.2f} ms{held}{ended}")
sys.exit(0 if ok else 1)
PY
}

P=$(free_port); start "$P" "$ENVS/a2a/bin/python" "$HERE/a2a_echo.py" "$P"
check "a2a-sdk $("$ENVS/a2a/bin/pip" show a2a-sdk | sed -n 's/^Version: //p')" --url "http://127.0.0.1:$P/" \
    --pattern a2a:message,a2a:stream,a2a:conversation,a2a:agent_card,a2a-v03:message,a2a-v03:stream,a2a-rest:message,a2a-rest:stream,a2a-rest:conversation,a2a:extended_card,a2a-rest:extended_card,a2a-v03:extended_card,a2a-v03-rest:message,a2a-v03-rest:stream,a2a-v03-rest:extended_card,a2a-v03:conversation,a2a-v03-rest:conversation

# The same agent sent real prompts (quotes, backslashes, tabs, CJK, emoji, 2 KiB of context:
# --text-file), then texts of sizes drawn by weight (--payload-mix).
check "a2a-sdk, real prompts" --url "http://127.0.0.1:$P/" --text-file "$ROOT/tests/fixtures/prompts.txt" \
    --pattern a2a:message,a2a:stream,a2a-rest:message,a2a-v03:message,a2a-v03-rest:message,a2a:conversation
check "a2a-sdk, a payload mix" --url "http://127.0.0.1:$P/" --payload-mix 64:8,16K:2 \
    --pattern a2a:message,a2a-rest:conversation,a2a-v03:message

# The same agent behind Starlette's GZipMiddleware: answers asked for gzipped (--compression
# answers; its requests it cannot read gzipped), 2 KiB texts so that they pass its 500 bytes.
P=$(free_port); A2A_ECHO_GZIP=1 start "$P" "$ENVS/a2a/bin/python" "$HERE/a2a_echo.py" "$P"
check "a2a-sdk behind GZipMiddleware, answers gzipped" --url "http://127.0.0.1:$P/" --compression answers \
    --payload-size 2048 --pattern a2a:message,a2a:stream,a2a-rest:message,a2a-v03:message

# The same agent working on tasks of 50 ms: SendMessage with returnImmediately answers the
# task at once, and GetTask (JSON-RPC, and HTTP+JSON's GET /tasks/{id}) or SubscribeToTask (a
# stream of its events) follows it to its end; v0.3's message/send with blocking false,
# tasks/get and tasks/resubscribe alike (and in v0.3's HTTP+JSON binding, under /v1); or
# a2a-sdk's push sender (httpx) notifies each task's events to a2a-bench's receiver.
P=$(free_port); A2A_ECHO_TASK_MS=50 start "$P" "$ENVS/a2a/bin/python" "$HERE/a2a_echo.py" "$P"
check "a2a-sdk, tasks of 50 ms followed by GetTask and SubscribeToTask, or pushed" --url "http://127.0.0.1:$P/" \
    --pattern a2a:task,a2a-rest:task,a2a:subscribe,a2a-rest:subscribe,a2a-v03:task,a2a-v03:subscribe,a2a:push,a2a-rest:push,a2a-v03:push,a2a:list_tasks,a2a-rest:list_tasks,a2a-v03-rest:task,a2a-v03-rest:subscribe,a2a-v03-rest:push \
    --task-poll 0.02

# The same agent's push sender authenticating its notifications as the configs ask
# (--push-auth: Authorization: Bearer <token>, which a2a-bench's receiver then requires).
check "a2a-sdk, tasks pushed with authentication" --url "http://127.0.0.1:$P/" \
    --pattern a2a:push,a2a-rest:push,a2a-v03-rest:push --push-auth

# The same store listed page after page: each client follows a2a-sdk's nextPageToken
# (--page-walk), five tasks a page, in JSON-RPC and HTTP+JSON; then the completed ones alone
# (--list-status, ListTasks' status filter).
check "a2a-sdk, tasks listed page after page" --url "http://127.0.0.1:$P/" \
    --pattern a2a:task=3,a2a:list_tasks,a2a-rest:list_tasks --page-size 5 --page-walk --task-poll 0.02
check "a2a-sdk, completed tasks listed with their artifacts" --url "http://127.0.0.1:$P/" \
    --pattern a2a:task=3,a2a:list_tasks,a2a-rest:list_tasks --list-status completed --list-artifacts --task-poll 0.02

# Tasks of a second, canceled as soon as they are accepted (CancelTask, HTTP+JSON's POST
# /tasks/{id}:cancel, v0.3's tasks/cancel): a second, so that no cancel finds its task ended.
P=$(free_port); A2A_ECHO_TASK_MS=1000 start "$P" "$ENVS/a2a/bin/python" "$HERE/a2a_echo.py" "$P"
check "a2a-sdk, tasks of 1 s canceled" --url "http://127.0.0.1:$P/" \
    --pattern a2a:cancel,a2a-rest:cancel,a2a-v03:cancel,a2a-v03-rest:cancel --task-poll 0.02

# An echo agent on a2a-sdk 0.3 (A2A v0.3 itself, not 1.x's compatibility layer), in JSON-RPC
# and in its HTTP+JSON binding: messages, the agent card, then tasks of 50 ms followed by
# tasks/get, tasks/resubscribe or a2a-sdk 0.3's push sender, whose notification is the task
# itself (v0.3's shape), one per event.
V03=$("$ENVS/a2a03/bin/pip" show a2a-sdk | sed -n 's/^Version: //p')
P=$(free_port); start "$P" "$ENVS/a2a03/bin/python" "$HERE/a2a_v03_echo.py" "$P"
check "a2a-sdk $V03 (A2A v0.3)" --url "http://127.0.0.1:$P/" --pattern a2a-v03:message,a2a-v03:stream,a2a:agent_card,a2a-v03:extended_card,a2a-v03-rest:message,a2a-v03-rest:stream,a2a-v03-rest:extended_card,a2a-v03:conversation,a2a-v03-rest:conversation
P=$(free_port); A2A_ECHO_TASK_MS=50 start "$P" "$ENVS/a2a03/bin/python" "$HERE/a2a_v03_echo.py" "$P"
check "a2a-sdk $V03 (A2A v0.3), tasks of 50 ms followed by tasks/get and tasks/resubscribe, or pushed" \
    --url "http://127.0.0.1:$P/" --pattern a2a-v03:task,a2a-v03:subscribe,a2a-v03:push,a2a-v03-rest:task,a2a-v03-rest:subscribe,a2a-v03-rest:push --task-poll 0.02
P=$(free_port); A2A_ECHO_TASK_MS=1000 start "$P" "$ENVS/a2a03/bin/python" "$HERE/a2a_v03_echo.py" "$P"
check "a2a-sdk $V03 (A2A v0.3), tasks of 1 s canceled" --url "http://127.0.0.1:$P/" \
    --pattern a2a-v03:cancel,a2a-v03-rest:cancel --task-poll 0.02

# The a2a-sdk 1.x agent in A2A's gRPC binding, on grpcio's asyncio server (HTTP/2 only: readiness
# is its port accepting).
start_grpc() { # port [environment script] (the server's environment as the caller's)
    "$ENVS/${3:-a2a}/bin/python" "$HERE/${2:-a2a_grpc_echo.py}" "$1" >"$OUT/server-$1.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    echo "gRPC server on $1 did not start"; cat "$OUT/server-$1.log"; return 1
}
P=$(free_port); start_grpc "$P"
GRPCIO=$("$ENVS/a2a/bin/pip" show grpcio | sed -n 's/^Version: //p')
check "a2a-sdk, gRPC (grpcio $GRPCIO)" \
    --url "http://127.0.0.1:$P" --pattern a2a-grpc:message,a2a-grpc:stream,a2a-grpc:conversation,a2a-grpc:extended_card
check "a2a-sdk, gRPC (grpcio $GRPCIO), real prompts" --text-file "$ROOT/tests/fixtures/prompts.txt" \
    --url "http://127.0.0.1:$P" --pattern a2a-grpc:message,a2a-grpc:stream
# Messages gzipped both ways (grpc-encoding: gzip; the server set to compress its answers).
P=$(free_port); A2A_ECHO_GZIP=1 start_grpc "$P"
check "a2a-sdk, gRPC (grpcio $GRPCIO), messages gzipped both ways" --compression gzip \
    --text-file "$ROOT/tests/fixtures/prompts.txt" --url "http://127.0.0.1:$P" \
    --pattern a2a-grpc:message,a2a-grpc:stream,a2a-grpc:conversation
P=$(free_port); A2A_ECHO_TASK_MS=50 start_grpc "$P"
check "a2a-sdk, gRPC (grpcio $GRPCIO), tasks of 50 ms followed by GetTask and SubscribeToTask, or pushed" \
    --url "http://127.0.0.1:$P" --pattern a2a-grpc:task,a2a-grpc:subscribe,a2a-grpc:push,a2a-grpc:list_tasks --task-poll 0.02
check "a2a-sdk, gRPC (grpcio $GRPCIO), tasks pushed with authentication" \
    --url "http://127.0.0.1:$P" --pattern a2a-grpc:push --push-auth
check "a2a-sdk, gRPC (grpcio $GRPCIO), tasks listed page after page" \
    --url "http://127.0.0.1:$P" --pattern a2a-grpc:task=3,a2a-grpc:list_tasks --page-size 5 --page-walk --task-poll 0.02 --list-status completed --list-artifacts
P=$(free_port); A2A_ECHO_TASK_MS=1000 start_grpc "$P"
check "a2a-sdk, gRPC (grpcio $GRPCIO), tasks of 1 s canceled" \
    --url "http://127.0.0.1:$P" --pattern a2a-grpc:cancel --task-poll 0.02

# The a2a-sdk 0.3 agent in v0.3's gRPC binding (a2a.v1.A2AService): messages, the card, tasks
# followed by GetTask and TaskSubscription (whose stream a2a-sdk 0.3 ends without the final
# status at times: subscribed again, refused as the task ended, GetTask tells) or pushed (its
# sender does not authenticate: no --push-auth), and canceled.
GRPCIO03=$("$ENVS/a2a03/bin/pip" show grpcio | sed -n 's/^Version: //p')
P=$(free_port); start_grpc "$P" a2a_v03_grpc_echo.py a2a03
check "a2a-sdk $V03, v0.3 gRPC (grpcio $GRPCIO03)" --url "http://127.0.0.1:$P" \
    --pattern a2a-v03-grpc:message,a2a-v03-grpc:stream,a2a-v03-grpc:conversation,a2a-v03-grpc:agent_card
P=$(free_port); A2A_ECHO_TASK_MS=50 start_grpc "$P" a2a_v03_grpc_echo.py a2a03
check "a2a-sdk $V03, v0.3 gRPC (grpcio $GRPCIO03), tasks of 50 ms followed by GetTask and TaskSubscription, or pushed" \
    --url "http://127.0.0.1:$P" --pattern a2a-v03-grpc:task,a2a-v03-grpc:subscribe,a2a-v03-grpc:push --task-poll 0.02
P=$(free_port); A2A_ECHO_TASK_MS=1000 start_grpc "$P" a2a_v03_grpc_echo.py a2a03
check "a2a-sdk $V03, v0.3 gRPC (grpcio $GRPCIO03), tasks of 1 s canceled" --url "http://127.0.0.1:$P" \
    --pattern a2a-v03-grpc:cancel --task-poll 0.02

# uvicorn closing connections idle for 1 s: each client sends every 1.5 s, so every request
# finds its connection closed by the server and replaced by a2a-bench, with no error.
P=$(free_port); start "$P" "$ENVS/a2a/bin/python" "$HERE/a2a_echo.py" "$P" 1
RUN="--duration 6 --agents 2 --rate 1.333" MIN_RECONNECTS=4 \
    check "a2a-sdk, idle connections closed after 1 s" --url "http://127.0.0.1:$P/" --pattern a2a:message

# The same agent over https (uvicorn with Python's ssl; a self-signed certificate, --insecure).
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
        -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
    P=$(free_port)
    "$ENVS/a2a/bin/python" "$HERE/a2a_echo.py" "$P" 5 "$OUT/cert.pem" "$OUT/key.pem" >"$OUT/server-$P.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 600); do curl -sk -o /dev/null "https://127.0.0.1:$P/" && break; sleep 0.1; done
    check "a2a-sdk over https" --url "https://127.0.0.1:$P/" --insecure \
        --pattern a2a:message,a2a:stream,a2a:agent_card
else
    echo "== a2a-sdk over https: skipped (no openssl to make a certificate)"
fi

for v in mcp1 mcp2; do
    P=$(free_port); start "$P" "$ENVS/$v/bin/python" "$HERE/mcp_echo.py" "$P"
    version=$("$ENVS/$v/bin/pip" show mcp | sed -n 's/^Version: //p')
    check "mcp $version, sessions" --url "http://127.0.0.1:$P/mcp" --pattern mcp:mixed
    check "mcp $version, tool arguments from a file" --url "http://127.0.0.1:$P/mcp" --pattern mcp:tools/call \
        --args-file "$ROOT/tests/fixtures/mcp_args.jsonl"
    if [ "$v" = mcp2 ]; then
        check "mcp $version, sessionless 2026-07-28" --url "http://127.0.0.1:$P/mcp" --pattern mcp:mixed --mcp-version 2026-07-28
    fi
done

P=$(free_port); start "$P" "$ENVS/registry/bin/a2a-registry" serve --port "$P"
check "a2a-registry 0.1.5" --url "http://127.0.0.1:$P/" --preload 100 \
    --pattern registry:register,registry:get,registry:list,registry:search,registry:health
check "a2a-registry 0.1.5, cards described by real prompts" --url "http://127.0.0.1:$P/" \
    --text-file "$ROOT/tests/fixtures/prompts.txt" --pattern registry:register,registry:list

# Python's own http.server in HTTP/1.0 mode: every body ends at the server's close, and every
# answer comes on a new connection.
P=$(free_port); start "$P" python3 "$HERE/http10.py" "$P"
MIN_RECONNECTS=100 check "Python $(python3 -c 'import platform; print(platform.python_version())') http.server, HTTP/1.0" \
    --url "http://127.0.0.1:$P/health" --pattern health

if [ "$FAILED" != 0 ]; then echo "test-targets: FAILED"; exit 1; fi
echo "test-targets: every pattern answered by every real server, 0 errors"
