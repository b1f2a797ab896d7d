#!/usr/bin/env bash
# System calls, context switches, IPIs and CPU per routed message, for each router, with `perf stat`.
#
# Each router runs in its own process on ROUTER_CORES (default core 0; `a2a-bench router`,
# `a2a-bench baseline-router --mode shared|per-core`, a thread per core); a2a-bench's agents
# drive it from AGENT_CORES (default the last core), ring topology (TOPOLOGY). For 3 s in the
# middle of each run, `perf stat` counts on the router's process (system calls, context
# switches, task clock) and on the whole machine (the same, and the reschedule and
# call-function IPIs that wake-ups across cores cost). Divided by the messages the router
# delivered in that run (its report's throughput), per 1,000 messages.
#
# SHAPES: space-separated AGENTS/PER_CONN[/RATE] (default: 100 agents on 10 connections, closed
# loop; 10 on one connection, closed loop; the same at 9,000 requests/s). ROUNDS (2): the routers
# alternate within each round. WINDOW: the agents' --window (default theirs). PROFILE=DIR: also
# `perf record` each router for 2 s after the counts and write where its cores went (top
# symbols, and by kind: the kernel, the binary, libc) to DIR/profile-ROUTER-SHAPE.txt. PERF: the
# perf binary (default `perf`; `benches/device.sh` passes the one `make device-bundle` carries).
# Needs perf (Debian `linux-perf`) and root (or a permissive perf_event_paranoid) for the
# machine-wide counts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
SHAPES=${SHAPES:-"100/10 10/10 10/10/9000"}
ROUNDS=${ROUNDS:-2}
ROUTER_CORES=${ROUTER_CORES:-0}
AGENT_CORES=${AGENT_CORES:-$(( $(nproc) - 1 ))}
TOPOLOGY=${TOPOLOGY:-ring}
PERF=${PERF:-perf}
# A router thread per core of ROUTER_CORES (a list such as 0-7 or 0,2).
THREADS=0
IFS=, read -ra parts <<<"$ROUTER_CORES"
for part in "${parts[@]}"; do
    THREADS=$((THREADS + ${part#*-} - ${part%-*} + 1))
done
command -v "$PERF" >/dev/null || { echo "perf_per_msg: needs perf (apt-get install -y linux-perf)"; exit 1; }
perf() { command "$PERF" "$@"; }
HAVE_PYTHON=1
python3 -c '' 2>/dev/null || HAVE_PYTHON=0
[ -x "$BIN" ] || { echo "perf_per_msg: no binary at $BIN (cargo build --release)"; exit 1; }
OUT=$(mktemp -d)
ROUTER=""
trap 'kill $ROUTER 2>/dev/null || true; rm -rf "$OUT"' EXIT

# Starts router $1 on core 0 and sets ROUTER (its pid) and URL.
start() {
    case $1 in
        glommio) "$BIN" router --cores "$ROUTER_CORES" --listen 127.0.0.1:0 >"$OUT/router.out" 2>&1 & ;;
        tokio-shared) "$BIN" baseline-router --threads "$THREADS" --cores "$ROUTER_CORES" --mode shared --listen 127.0.0.1:0 >"$OUT/router.out" 2>&1 & ;;
        tokio-per-core) "$BIN" baseline-router --threads "$THREADS" --cores "$ROUTER_CORES" --mode per-core --listen 127.0.0.1:0 >"$OUT/router.out" 2>&1 & ;;
    esac
    ROUTER=$!
    URL=""
    for _ in $(seq 100); do
        URL=$(grep -o 'tcp://[0-9.:]*' "$OUT/router.out" 2>/dev/null | head -1 || true)
        [ -n "$URL" ] && return
        sleep 0.05
    done
    echo "perf_per_msg: router $1 did not start: $(cat "$OUT/router.out")"; exit 1
}

# With PROFILE the run lasts 2 s longer, for the record after the counts.
SECS=5
[ -n "${PROFILE:-}" ] && SECS=7 && mkdir -p "$PROFILE"
echo "router on cores $ROUTER_CORES ($THREADS threads), agents on cores $AGENT_CORES, $TOPOLOGY${WINDOW:+, window $WINDOW}; per 1,000 routed messages, perf stat over 3 s of each run"
for round in $(seq "$ROUNDS"); do
    for shape in $SHAPES; do
        IFS=/ read -r agents per_conn rate <<<"$shape"
        pacing="closed loop"
        [ -n "${rate:-}" ] && pacing="$rate requests/s"
        echo "round $round: $TOPOLOGY x $agents agents, $per_conn per connection, $pacing"
        for kind in glommio tokio-shared tokio-per-core; do
            start "$kind"
            "$BIN" --router "$URL" --agent-cores "$AGENT_CORES" --agents "$agents" --agents-per-conn "$per_conn" \
                --topologies "$TOPOLOGY" ${rate:+--rate "$rate"} ${WINDOW:+--window "$WINDOW"} --duration "$SECS" \
                --warmup 0.5 --repeat 1 --stall-probe 0 --interval 0 --output "$OUT/run.json" >"$OUT/run.out" 2>&1 &
            agents_pid=$!
            sleep 2
            perf stat -x, -a -e raw_syscalls:sys_enter,context-switches,irq_vectors:reschedule_entry,irq_vectors:call_function_single_entry,irq_vectors:call_function_entry \
                -- sleep 3 2>"$OUT/machine.stat" &
            machine_pid=$!
            perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -p "$ROUTER" -- sleep 3 2>"$OUT/router.stat"
            wait "$machine_pid" || true
            if [ -n "${PROFILE:-}" ]; then
                perf record -F 499 -g -o "$OUT/perf.data" -p "$ROUTER" -- sleep 2 >/dev/null 2>&1 || true
            fi
            wait "$agents_pid" || true
            kill "$ROUTER" 2>/dev/null || true
            wait "$ROUTER" 2>/dev/null || true
            ROUTER=""
            if [ -n "${PROFILE:-}" ] && [ -s "$OUT/perf.data" ]; then
                f="$PROFILE/profile-$kind-$TOPOLOGY-${shape//\//-}.txt"
                {
                    echo "$kind, $TOPOLOGY x $agents agents, $per_conn per connection, $pacing${WINDOW:+, window $WINDOW}: the router's cores for 2 s (perf record -F 499 -g)"
                    perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -8 || true
                    perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep '%' | head -60 || true
                } >"$f"
                rm -f "$OUT/perf.data"
            fi
            if [ "$HAVE_PYTHON" = 0 ]; then
                # A lent machine may have no python: the raw counts and the run's own summary.
                echo "  $kind: $(grep -m 1 'Throughput' "$OUT/run.out")"
                sed 's/^/    router: /' "$OUT/router.stat"; sed 's/^/    machine: /' "$OUT/machine.stat"
                continue
            fi
            python3 - "$kind" "$OUT" <<'PY' || cat "$OUT/run.out"
import json, sys
kind, out = sys.argv[1], sys.argv[2]
run = json.load(open(f"{out}/run.json"))["results"][0]
msgs = run["throughput_msg_per_sec"] * 3 / 1000  # thousands of messages in the 3 s counted

def counts(path):
    d = {}
    for line in open(path):
        p = line.strip().split(",")
        if len(p) > 3 and p[0][:1].isdigit():
            d[p[2]] = float(p[0])
    return d

m, r = counts(f"{out}/machine.stat"), counts(f"{out}/router.stat")
ipis = m.get("irq_vectors:call_function_single_entry", 0) + m.get("irq_vectors:call_function_entry", 0)
print(f"  {kind:15s} {run['throughput_msg_per_sec'] / 1e6:6.2f} M msgs/s ({run['status']})"
      f" | router: {r.get('raw_syscalls:sys_enter', 0) / msgs:7.1f} syscalls, {r.get('context-switches', 0) / msgs:7.2f} switches,"
      f" {r.get('task-clock', 0) * 1e6 / (msgs * 1000):7.0f} ns CPU per msg"
      f" | machine: {m.get('raw_syscalls:sys_enter', 0) / msgs:7.1f} syscalls, {m.get('context-switches', 0) / msgs:7.2f} switches,"
      f" {m.get('irq_vectors:reschedule_entry', 0) / msgs:6.3f} reschedule IPIs, {ipis / msgs:7.3f} call-function IPIs")
PY
        done
    done
done
