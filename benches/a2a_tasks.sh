#!/usr/bin/env bash
# What following long-running tasks costs: `a2a:task` (SendMessage with returnImmediately, then
# GetTask every --task-poll until the task ends) against an agent whose tasks work TASK_MS (50)
# ms, at several poll intervals, `a2a-grpc:task` at one of them, and `a2a:subscribe` and
# `a2a-grpc:subscribe` (SubscribeToTask: the task's end streamed as it happens), and `a2a:push`
# (the server POSTs the task's end to a2a-bench's receiver). The reference echo agent
# (`serve a2a-echo --threads 1 --task-ms TASK_MS`) on core 0, CLIENTS (64) clients on the last
# core, SECS-second runs after 1 s of warm-up, the settings alternating ROUNDS (3) times. With
# PY=1 (and `make test-targets`' virtual environment), the same against a2a-sdk's own agent
# (one Python process on core 0, 16 clients). Prints each setting's medians: tasks answered/s,
# time to the end p50/p99, acceptance p50, GetTasks per task and per second, the server's
# CPU (cores), errors. Needs a release build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
TASK_MS=${TASK_MS:-50}
CLIENTS=${CLIENTS:-64}
ENVS=${A2A_BENCH_PYENVS:-$ROOT/target/pyenvs}
OUT=$(mktemp -d)
SERVERS=()
trap 'for s in "${SERVERS[@]}"; do kill "$s" 2>/dev/null; done; rm -rf "$OUT"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; return 1; }

# name, port, clients, then the settings (pattern and flags) to alternate.
measure() {
    local name=$1 port=$2 clients=$3; shift 3
    local settings=("$@")
    for round in $(seq "$ROUNDS"); do
        for i in "${!settings[@]}"; do
            # shellcheck disable=SC2086
            "$BIN" http --url "http://127.0.0.1:$port/" --pattern ${settings[$i]} --agents "$clients" \
                --duration "$SECS" --warmup 1 --repeat 1 --agent-cores "$(( $(nproc) - 1 ))" \
                --stall-probe 0 --output "$OUT/$name-$i-$round.json" >/dev/null 2>&1 || true
        done
    done
    python3 - "$OUT" "$name" "$ROUNDS" "${settings[@]}" <<'PY'
import json, statistics, sys
out, name, rounds, settings = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
print(f"== {name}")
print(f"{'setting':36} {'tasks/s':>8} {'end p50':>8} {'p99 ms':>8} {'accepted':>9} {'polls':>6} {'follow/s':>9} {'server':>6} errors")
med = statistics.median
for i, setting in enumerate(settings):
    runs = [json.load(open(f"{out}/{name}-{i}-{r}.json"))["results"][0] for r in range(1, rounds + 1)]
    pats = [r["patterns"][0] for r in runs]
    tasks = med(p["ok_per_sec"] for p in pats)
    polls = med(p.get("polls_per_answer") or 0 for p in pats)
    server = med(r["cpu"].get("target_cores") or float("nan") for r in runs)
    errors = sum(sum(r["errors"].values()) for r in runs)
    print(f"{setting:36} {tasks:8.0f} {med(p['latency']['p50_ms'] for p in pats):8.2f} "
          f"{med(p['latency']['p99_ms'] for p in pats):8.2f} {med(p['accepted']['p50_ms'] for p in pats):9.3f} "
          f"{polls:6.1f} {tasks * polls:9.0f} {server:6.2f} {errors}")
PY
}

PORT=$(free_port)
taskset -c 0 "$BIN" serve a2a-echo --listen "127.0.0.1:$PORT" --threads 1 --task-ms "$TASK_MS" >"$OUT/echo.log" 2>&1 &
SERVERS+=($!)
wait_up "$PORT"
measure "a2a-bench serve a2a-echo --task-ms $TASK_MS" "$PORT" "$CLIENTS" \
    "a2a:task --task-poll 0" "a2a:task --task-poll 0.005" "a2a:task --task-poll 0.02" \
    "a2a:task --task-poll 0.1" "a2a-grpc:task --task-poll 0.02" "a2a:subscribe" "a2a-grpc:subscribe" \
    "a2a:push"

if [ "${PY:-0}" = 1 ] && [ -x "$ENVS/a2a/bin/python" ]; then
    PORT=$(free_port)
    A2A_ECHO_TASK_MS=$TASK_MS taskset -c 0 "$ENVS/a2a/bin/python" "$ROOT/tests/targets/a2a_echo.py" "$PORT" \
        >"$OUT/py.log" 2>&1 &
    SERVERS+=($!)
    wait_up "$PORT"
    measure "a2a-sdk $("$ENVS/a2a/bin/pip" show a2a-sdk | sed -n 's/^Version: //p'), tasks of $TASK_MS ms" \
        "$PORT" 16 "a2a:task --task-poll 0.005" "a2a:task --task-poll 0.02" "a2a:task --task-poll 0.1" \
        "a2a:subscribe" "a2a:push"
fi
