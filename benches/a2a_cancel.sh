#!/usr/bin/env bash
# What cancelling a task costs: the cancel patterns (SendMessage with returnImmediately, then
# CancelTask as soon as the task is accepted, answered when it is canceled) beside plain
# messages, against `serve a2a-echo --threads 1 --task-ms 1000` (64 clients) and, with
# `make test-targets`' virtual environments, a2a-sdk 1.x and 0.3 echo agents (16 clients,
# tasks of a second so that no cancel finds its task ended). Server on core 0, clients on core
# 1, 3 s runs after 1 s of warm-up, medians of 3: answered/s, p50, p99, acceptance p50 (the
# SendMessage), the server's cores, errors. Needs a release build.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
ENVS=${A2A_BENCH_PYENVS:-$ROOT/target/pyenvs}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# shellcheck source=benches/http_medians.sh
. "$ROOT/benches/http_medians.sh"
FLAGS="--task-poll 0.02"
PORT=$(free_port)
taskset -c 0 "$B" serve a2a-echo --listen "127.0.0.1:$PORT" --threads 1 --task-ms 1000 >/dev/null 2>&1 & E=$!
wait_up "$PORT"
run echo "$PORT" 64 a2a:message a2a:cancel a2a-rest:cancel a2a-v03:cancel
kill $E
[ -x "$ENVS/a2a/bin/python" ] && [ -x "$ENVS/a2a03/bin/python" ] || { echo "(no make test-targets environments: the Python agents left out)"; exit 0; }
for v in a2a:1.x a2a03:0.3; do PORT=$(free_port); env=${v%%:*}; ver=${v##*:}; f=a2a_echo.py; [ $env = a2a03 ] && f=a2a_v03_echo.py
  A2A_ECHO_TASK_MS=1000 taskset -c 0 "$ENVS/$env/bin/python" "$ROOT/tests/targets/$f" $PORT >/dev/null 2>&1 & P=$!
  wait_up "$PORT"
  if [ $env = a2a ]; then run sdk-$ver $PORT 16 a2a:cancel a2a-v03:cancel; else run sdk-$ver $PORT 16 a2a-v03:cancel; fi
  kill $P; sleep 1
  taskset -c 0 "$ENVS/$env/bin/python" "$ROOT/tests/targets/$f" $PORT >/dev/null 2>&1 & P=$!
  wait_up "$PORT"
  if [ $env = a2a ]; then run sdk-$ver-msg $PORT 16 a2a:message; else run sdk-$ver-msg $PORT 16 a2a-v03:message; fi
  kill $P; sleep 1
done
