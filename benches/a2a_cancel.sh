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
# shellcheck source=benches/http_medians.sh
. "$ROOT/benches/http_medians.sh"
FLAGS="--task-poll 0.02"
against echo 64 "a2a:message a2a:cancel a2a-rest:cancel a2a-v03:cancel" \
    "$B" serve a2a-echo --listen 127.0.0.1:PORT --threads 1 --task-ms 1000
[ -x "$ENVS/a2a/bin/python" ] && [ -x "$ENVS/a2a03/bin/python" ] || { echo "(no make test-targets environments: the Python agents left out)"; exit 0; }
V1=("$ENVS/a2a/bin/python" "$ROOT/tests/targets/a2a_echo.py" PORT)
V03=("$ENVS/a2a03/bin/python" "$ROOT/tests/targets/a2a_v03_echo.py" PORT)
against sdk-1.x 16 "a2a:cancel a2a-v03:cancel" env A2A_ECHO_TASK_MS=1000 "${V1[@]}"
against sdk-1.x-msg 16 "a2a:message" "${V1[@]}"
against sdk-0.3 16 "a2a-v03:cancel" env A2A_ECHO_TASK_MS=1000 "${V03[@]}"
against sdk-0.3-msg 16 "a2a-v03:message" "${V03[@]}"
