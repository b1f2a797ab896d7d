#!/usr/bin/env bash
# The HTTP client against wrk where the client, not the server, is the limit: a many-core
# machine (`make device-bundle` here, with wrk installed, carries the binary, wrk and their
# libraries in target/device/). The reference A2A agent (`serve a2a-echo`) runs with THREADS
# worker threads on SRV (default 8 threads on cores 0-7); each client runs pinned to C1 (one
# core: 16 and 64 connections, 3 runs each, alternating), then to C2 (2 cores, 64 connections)
# and C4 (4 cores, 128 connections), 2 runs each (MULTI=0 skips these). GET /health, closed
# loop, SECS (default 3, whole seconds: wrk's -d) per run. Writes $OUT/summary.txt (each run's
# server CPU ticks and the client's user, system and wall seconds; wrk's Requests/sec, p50 and
# mean; a2a-bench's throughput, p50, status, agent cores' busy and watch shares, raw p50 and mean) and
# $OUT/raw.tgz (every output). No python needed there. PCAP=1, the default (tcpdump in target/device/tcpdump,
# or installed): one more round of each client on C1 with 16 connections, the server's port
# captured (tcpdump on the server's cores) over the run; the wire's own round trips, read by
# `benches/wire_rtt.py` where python3 is, else the first 200,000 packets kept in raw.tgz.
# On a 2-core machine:
# `SRV=0 C1=1 THREADS=1 MULTI=0 TUNE=0 OUT=/tmp/h bash benches/device_http.sh` checks it.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export LD_LIBRARY_PATH=$ROOT/target/device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B=${A2A_BENCH:-$ROOT/target/device/a2a-bench}
[ -x "$B" ] || B=$ROOT/target/release/a2a-bench
WL=$ROOT/target/device/wrk
WRK=$WL/wrk
[ -x "$WRK" ] || WRK=$(command -v wrk) || { echo "needs wrk (in target/device/wrk, or installed)"; exit 1; }
FINAL=${OUT:-$ROOT/device_out}
O=$(mktemp -d)
mkdir -p "$FINAL"
SRV=${SRV:-0-7} C1=${C1:-8} C2=${C2:-8-9} C4=${C4:-8-11} SECS=${SECS:-3} THREADS=${THREADS:-8}
[ "$(id -u)" = 0 ] && [ "${TUNE:-1}" = 1 ] && bash "$ROOT/sysctl/tune.sh" apply >"$O/tune.txt" 2>&1
taskset -c "$SRV" "$B" serve a2a-echo --listen 127.0.0.1:0 --threads "$THREADS" >"$O/serve.log" 2>&1 &
S=$!
trap 'kill $S 2>/dev/null; rm -rf "$O"' EXIT
for _ in $(seq 100); do grep -q "^serving" "$O/serve.log" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/^serving a2a-echo on \(https*:[^ ]*\).*/\1/p' "$O/serve.log")/health"
echo "url $URL, server: $THREADS threads on cores $SRV" >"$O/runs.txt"
ticks() { awk '{print $14 + $15}' "/proc/$S/stat"; }
TIMEFORMAT="cpu %U %S %R"
TL=$ROOT/target/device/tcpdump
TCPDUMP=$TL/tcpdump
[ -x "$TCPDUMP" ] || TCPDUMP=$(command -v tcpdump) || TCPDUMP=""
PORT=${URL##*:}; PORT=${PORT%%/*}
run() { # client cores connections threads round [capture]
    local name=$1 cores=$2 conns=$3 t=$4 i=$5 s0 f cap=""
    f=$O/$name-$cores-$conns-$i
    if [ -n "${6:-}" ]; then
        LD_LIBRARY_PATH=$TL:$LD_LIBRARY_PATH taskset -c "$SRV" "$TCPDUMP" -i lo -s 96 -B 131072 -c 200000 \
            --time-stamp-precision=nano -w "$f.pcap" "tcp port $PORT" 2>"$f.tcpdump" &
        cap=$!
        for _ in $(seq 100); do grep -q "listening on" "$f.tcpdump" && break; sleep 0.05; done
    fi
    s0=$(ticks)
    if [ "$name" = wrk ]; then
        { time LD_LIBRARY_PATH=$WL:$LD_LIBRARY_PATH taskset -c "$cores" "$WRK" -t"$t" -c"$conns" -d"${SECS}s" --latency "$URL" >"$f.txt" 2>&1; } 2>"$f.time"
    else
        { time taskset -c "$cores" "$B" http --url "$URL" --pattern health --agents "$conns" --duration "$SECS" \
            --warmup 0.5 --repeat 1 --interval 0 --agent-cores "$cores" --stall-probe 0 --output "$f.json" >"$f.txt" 2>&1; } 2>"$f.time"
    fi
    echo "$name $cores $conns $i server_ticks $(($(ticks) - s0)) $(cat "$f.time")" >>"$O/runs.txt"
    if [ -n "$cap" ]; then
        kill -INT "$cap" 2>/dev/null; wait "$cap"
        if command -v python3 >/dev/null; then
            echo "$name $cores $conns $i $(python3 "$ROOT/benches/wire_rtt.py" "$f.pcap" "$PORT" 2>&1)" >>"$O/wire.txt"
            rm -f "$f.pcap"
        fi
    fi
}
for i in 1 2 3; do for c in 16 64; do run wrk "$C1" "$c" 1 "$i"; run a2a "$C1" "$c" 1 "$i"; done; done
if [ "${MULTI:-1}" = 1 ]; then
    for i in 1 2; do
        run wrk "$C2" 64 2 "$i"; run a2a "$C2" 64 2 "$i"; run wrk "$C4" 128 4 "$i"; run a2a "$C4" 128 4 "$i"
    done
fi
if [ "${PCAP:-1}" = 1 ] && [ -n "$TCPDUMP" ]; then
    run wrk "$C1" 16 1 pcap yes; run a2a "$C1" 16 1 pcap yes
fi
cd "$O" && {
    cat runs.txt
    [ -f wire.txt ] && cat wire.txt
    for x in wrk-*.txt; do
        echo "$x $(grep Requests/sec "$x") p50 $(grep ' 50%' "$x") mean $(grep -m 1 ' Latency ' "$x" | awk '{print $2}')"
    done
    for x in a2a-*.json; do
        flat=$(tr -d ' \n' <"$x")
        echo "$x $(grep -o '"throughput_msg_per_sec": [0-9.]*' "$x" | head -1) $(grep -o '"p50_latency_ms": [0-9.]*' "$x" | head -1)" \
            "$(grep -o '"status": "[a-z_]*"' "$x" | head -1) $(echo "$flat" | grep -o '"agent_cores":\[[0-9.,]*\]' | head -1)" \
            "$(echo "$flat" | grep -o '"agent_watch":\[[0-9.,]*\]' | head -1)" \
            "raw $(echo "$flat" | grep -o '"rtt_raw":{[^}]*}' | grep -o '"p50_ms":[0-9.]*' | head -1)" \
            "$(echo "$flat" | grep -o '"rtt_raw":{[^}]*}' | grep -o '"avg_ms":[0-9.e-]*' | head -1)"
    done
} >"$FINAL/summary.txt" 2>&1
tar czf "$FINAL/raw.tgz" -C "$O" .
echo "written: $FINAL/summary.txt, $FINAL/raw.tgz"
