#!/usr/bin/env bash
# What ListTasks' status filter and artifacts cost a server: a2a-sdk 1.x's echo agent (`make
# test-targets`' virtual environment; tasks of 50 ms) on core 0 is filled with FILL_SECS (20) of
# `a2a:task` from 64 clients, then asked by 16 clients on the last core for pages of 50 tasks:
# unfiltered, `--list-status completed` (nearly every task), `--list-status working` (none)
# and `--list-artifacts` (unfiltered, each task's artifacts too), 3 s runs after 1 s of
# warm-up, the four alternating, 3 rounds. Prints each setting's medians:
# lists/s, p50, p99, the server's cores, errors. Needs a release build.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benches/http_medians.sh
. "$ROOT/benches/http_medians.sh"
trap 'kill $P 2>/dev/null; rm -rf "$OUT"' EXIT
[ -x "$ENVS/a2a/bin/python" ] || { echo "needs make test-targets' environments (target/pyenvs/a2a)"; exit 1; }
PORT=$(free_port)
A2A_ECHO_TASK_MS=50 taskset -c 0 "$ENVS/a2a/bin/python" "$ROOT/tests/targets/a2a_echo.py" "$PORT" >/dev/null 2>&1 & P=$!
wait_up "$PORT"
URL="http://127.0.0.1:$PORT/"
CORE=$(( $(nproc) - 1 ))
"$B" http --url "$URL" --pattern a2a:task --agents 64 --duration "${FILL_SECS:-20}" --warmup 0 --repeat 1 \
    --task-poll 0.05 --agent-cores "$CORE" --stall-probe 0 --output "$OUT/fill.json" >/dev/null 2>&1
python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]; print(f\"store filled: {r['patterns'][0]['ok']} tasks completed in the window\")" "$OUT/fill.json"
SETTINGS=("" "--list-status completed" "--list-status working" "--list-artifacts")
for r in 1 2 3; do for i in "${!SETTINGS[@]}"; do
    # shellcheck disable=SC2086
    "$B" http --url "$URL" --pattern a2a:list_tasks --agents 16 --duration 3 --warmup 1 --repeat 1 \
        --agent-cores "$CORE" --stall-probe 0 ${SETTINGS[$i]} --output "$OUT/$i-$r.json" >/dev/null 2>&1
done; done
python3 - "$OUT" "${SETTINGS[@]}" <<'PY'
import json, statistics as st, sys
out, settings = sys.argv[1], sys.argv[2:]
for i, s in enumerate(settings):
    rs = [json.load(open(f"{out}/{i}-{r}.json"))["results"][0] for r in (1, 2, 3)]
    pp = [x["patterns"][0] for x in rs]
    errs = sum(sum(x["errors"].values()) for x in rs)
    each = ", ".join(f"{x['ok_per_sec']:.0f}" for x in pp)
    print(f"{s or 'unfiltered':26} {st.median(x['ok_per_sec'] for x in pp):6.0f}/s ({each}) p50 {st.median(x['latency']['p50_ms'] for x in pp):7.2f} p99 {st.median(x['latency']['p99_ms'] for x in pp):7.2f} server {st.median(x['cpu'].get('target_cores') or 0 for x in rs):.2f} errors {errs}")
PY
