#!/usr/bin/env bash
# `make bench-http`: a2a-bench http against wrk on the same target, connections and core.
#
# The reference A2A agent (`a2a-bench serve a2a-echo`, one worker thread) runs pinned to core 0;
# each client runs pinned to the last core, closed loop, one request in flight per connection,
# GET /health. Alternating, RUNS times each; prints the medians of throughput, p50 and the
# client's CPU per request, and the ratios a2a-bench / wrk (of the medians, and paired run by run).
#
# wrk's CPU is its whole process (user + sys); a2a-bench's is its agent core's busy share over
# the measured window (its coordinating thread sleeps), and that share less the time the core
# spent watching for answers (`cpu.agent_watch`: CPU used without work, where wrk sleeps). Needs wrk (Debian package `wrk`).
# The server's busy cores under each client are printed too (from /proc for wrk, the report's
# `cpu.target_cores` for a2a-bench): a server near one core was the limit for both clients.
# TLS=1: the same over https (a self-signed certificate made with openssl; a2a-bench --insecure,
# wrk does not check certificates).
# TARGET=fast: the server is `benches/fast_responder.c` (built with cc), cheaper per request
# than either client, so that one client core is the limit without a budget, as on a machine
# with cores to spare for the server.
# PCAP=1: also the round trips as the wire saw them, under each client: a packet capture
# (tcpdump, pinned to the server's core) over each client's whole run (a2a-bench's warm-up
# too), read by `benches/wire_rtt.py`. Each tool's p50 against the wire's under it tells how
# much of it was the tool's own queueing. The capture costs CPU: a PCAP run's figures are for
# that run.
# AT_RATE=1: then a2a-bench again, RUNS times, in open loop at wrk's median throughput (as
# wrk2 would be run): the p50 of the same load when a2a-bench sets the pace, from the intended
# send time and raw, against wrk's closed-loop p50 at that throughput.
# BUDGET=0.5: each client runs in a cpu cgroup held to that many cores (CFS quota, 10 ms period;
# root, cgroup v1 or v2). With the server faster than the budgeted client, the client is the
# limit, and the throughput ratio is the ratio of throughput per client core, the run's real
# comparison; unbudgeted, one server thread on a 2-core machine is the limit for both.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
CONNS=${CONNS:-16}
SECS=${SECS:-5}
RUNS=${RUNS:-5}
CLIENT_CORE=${CLIENT_CORE:-$(( $(nproc) - 1 ))}
command -v wrk >/dev/null || { echo "bench-http needs wrk: apt-get install -y wrk"; exit 1; }
if [ "${PCAP:-0}" = 1 ]; then
    command -v tcpdump >/dev/null || { echo "PCAP=1 needs tcpdump: apt-get install -y tcpdump"; exit 1; }
fi
OUT=$(mktemp -d)
CG=""
trap 'kill ${SERVER:-} ${CAPTURE:-} 2>/dev/null || true; rm -rf "$OUT"; [ -z "$CG" ] || rmdir "$CG" 2>/dev/null || true' EXIT

# BUDGET: a cpu cgroup with a CFS quota; `budgeted CMD...` runs CMD in it.
if [ -n "${BUDGET:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "BUDGET needs root (a cpu cgroup is made for the clients)"; exit 1; }
    quota=$(python3 -c "import sys; b = float(sys.argv[1]); assert 0 < b <= 64; print(int(b * 10000))" "$BUDGET" 2>/dev/null) \
        || { echo "BUDGET must be a share of a core, e.g. 0.5 (got $BUDGET)"; exit 1; }
    if grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
        CG=/sys/fs/cgroup/a2a-bench-http.$$
        mkdir "$CG"
        [ -f "$CG/cpu.max" ] || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control
        echo "$quota 10000" >"$CG/cpu.max"
    elif [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        CG=/sys/fs/cgroup/cpu/a2a-bench-http.$$
        mkdir "$CG" && echo 10000 >"$CG/cpu.cfs_period_us" && echo "$quota" >"$CG/cpu.cfs_quota_us"
    else
        echo "BUDGET needs a cpu cgroup (cgroup v1 or v2, as root)"; exit 1
    fi
fi
budgeted() {
    if [ -n "$CG" ]; then
        sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"
    else
        "$@"
    fi
}

SERVE_TLS=() A2A_TLS=()
if [ "${TLS:-0}" = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
        -keyout "$OUT/key.pem" -out "$OUT/cert.pem" 2>/dev/null
    SERVE_TLS=(--tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem") A2A_TLS=(--insecure)
fi
if [ "${TARGET:-a2a-echo}" = fast ]; then
    # A server cheaper per request than either client (`benches/fast_responder.c`): the client
    # is the limit without a budget.
    [ "${TLS:-0}" = 1 ] && { echo "TARGET=fast speaks plain HTTP only"; exit 1; }
    cc -O2 -o "$OUT/fast_responder" "$ROOT/benches/fast_responder.c" || { echo "TARGET=fast needs a C compiler (cc)"; exit 1; }
    taskset -c 0 "$OUT/fast_responder" >"$OUT/serve.log" 2>&1 &
else
    taskset -c 0 "$BIN" serve a2a-echo --listen 127.0.0.1:0 --threads 1 "${SERVE_TLS[@]}" >"$OUT/serve.log" 2>&1 &
fi
SERVER=$!
for _ in $(seq 100); do grep -q "^serving" "$OUT/serve.log" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/^serving.* on \(https*:[^ ]*\).*/\1/p' "$OUT/serve.log")/health"
echo "target: $URL (core 0); clients on core $CLIENT_CORE${BUDGET:+ held to $BUDGET of a core each}, $CONNS connections, ${SECS} s, $RUNS runs each"

# The server's CPU time in ticks (100 a second): how busy it was under each client.
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
# PCAP=1: `capture` starts capturing the server's port (once tcpdump says it listens); `wire
# FILE` stops it and appends the wire's p50 (µs) to FILE.
PORT=${URL##*:}; PORT=${PORT%%/*}
capture() {
    [ "${PCAP:-0}" = 1 ] || return 0
    taskset -c 0 tcpdump -i lo -s 96 -B 65536 --time-stamp-precision=nano -w "$OUT/cap.pcap" \
        "tcp port $PORT" 2>"$OUT/tcpdump.log" &
    CAPTURE=$!
    for _ in $(seq 100); do grep -q "listening on" "$OUT/tcpdump.log" && break; sleep 0.05; done
}
wire() {
    [ "${PCAP:-0}" = 1 ] || return 0
    kill -INT "$CAPTURE" && wait "$CAPTURE" || true
    python3 "$ROOT/benches/wire_rtt.py" "$OUT/cap.pcap" "$PORT" | sed -n 's/.*p50_us=//p' >>"$1"
}
for i in $(seq "$RUNS"); do
    # wrk: requests/s, p50 (ms), CPU seconds of the process.
    TIMEFORMAT="%U %S"
    s0=$(server_ticks) w0=$(date +%s.%N)
    capture
    { time budgeted taskset -c "$CLIENT_CORE" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$URL" >"$OUT/wrk.txt"; } 2>"$OUT/wrk.time"
    wire "$OUT/wrk.wire"
    wrk_server=$(awk -v a="$s0" -v b="$(server_ticks)" -v t0="$w0" -v t1="$(date +%s.%N)" 'BEGIN { print (b - a) / 100 / (t1 - t0) }')
    python3 - "$OUT/wrk.txt" "$OUT/wrk.time" "$SECS" >>"$OUT/wrk.rows" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", text)
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
p50 = float(m.group(1)) * unit[m.group(2)]
m = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", text)
mean = float(m.group(1)) * unit[m.group(2)]
user, sys_ = map(float, open(sys.argv[2]).read().split())
busy = (user + sys_) / float(sys.argv[3])
print(rps, p50, busy, mean)
PY
    capture
    budgeted "$BIN" http --url "$URL" --pattern health --agents "$CONNS" --duration "$SECS" --warmup 1 \
        --repeat 1 --interval 0 --agent-cores "$CLIENT_CORE" --agent-io "${AGENT_IO:-uring}" "${A2A_TLS[@]}" \
        --output "$OUT/a2a.json" >/dev/null 2>&1 || true
    wire "$OUT/a2a.wire"
    python3 - "$OUT/a2a.json" >>"$OUT/a2a.rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
busy = max(r["cpu"]["agent_cores"])
watch = max(r["cpu"].get("agent_watch") or [0.0])
print(r["throughput_msg_per_sec"], r["latency"]["rtt_raw"]["p50_ms"], busy, busy - watch,
      r["latency"]["rtt"]["p50_ms"], r["latency"]["rtt_raw"]["avg_ms"])
PY
    # The server's cores under a2a-bench: the report's own figure (cpu.target_cores).
    a2a_server=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["results"][0]["cpu"].get("target_cores", 0))' "$OUT/a2a.json")
    echo "$wrk_server $a2a_server" >>"$OUT/server.rows"
    echo "run $i: wrk $(tail -1 "$OUT/wrk.rows") | a2a-bench $(tail -1 "$OUT/a2a.rows")  (wrk: req/s, p50 ms, client busy share, mean ms; a2a-bench: req/s, raw p50 ms, busy share, less watch, p50 from the intended time, raw mean ms); server cores: wrk $wrk_server, a2a-bench $a2a_server"
done
python3 - "$OUT/wrk.rows" "$OUT/a2a.rows" "$OUT/server.rows" "${BUDGET:-}" "$CONNS" <<'PY'
import statistics, sys
conns = int(sys.argv[5])
def load(p):
    rows = [list(map(float, l.split())) for l in open(p) if l.strip()]
    return [statistics.median(c) for c in zip(*rows)], [r[0] / r[2] for r in rows]
(w_rps, w_p50, w_busy, w_mean), w_eff = load(sys.argv[1])
(a_rps, a_p50, a_busy, a_work, a_rtt50, a_mean), a_eff = load(sys.argv[2])
w_e, a_e = statistics.median(w_eff), statistics.median(a_eff)
print(f"wrk:       {w_rps:10.0f} req/s  p50 {w_p50:.3f} ms  client busy {w_busy*100:.0f} %  {w_e:10.0f} req per client CPU-second")
print(f"a2a-bench: {a_rps:10.0f} req/s  p50 {a_p50:.3f} ms  client busy {a_busy*100:.0f} % "
      f"(less its watch {a_work*100:.0f} %)  {a_e:10.0f} req per client CPU-second")
print(f"           p50 from the intended send time (closed loop: the previous answer handled) "
      f"{a_rtt50:.3f} ms; the p50 above is the raw one, on the wire as the client's ring saw it")
print(f"a2a-bench / wrk: throughput {a_rps/w_rps:.2f}x, p50 {a_p50/w_p50:.2f}x, per client CPU {a_e/w_e:.2f}x (medians)")
# The p50s of two distributions of different shapes: the means say what Little's law does (with
# every connection busy, mean latency = connections / throughput, less each client's own turn).
print(f"mean latency: wrk {w_mean:.3f} ms, a2a-bench {a_mean:.3f} ms raw: {a_mean/w_mean:.2f}x "
      f"(connections / throughput: {conns/w_rps*1e3:.3f} and {conns/a_rps*1e3:.3f} ms)")
# This machine drifts between runs: each a2a-bench run is also set against the wrk run just
# before it, and the median of those paired ratios is the steadier figure.
rows = lambda p: [list(map(float, l.split())) for l in open(p) if l.strip()]
pairs = list(zip(rows(sys.argv[1]), rows(sys.argv[2])))
r = lambda f: statistics.median(f(w, a) for w, a in pairs)
print(f"paired (median of {len(pairs)}): throughput {r(lambda w, a: a[0] / w[0]):.2f}x, "
      f"p50 {r(lambda w, a: a[1] / w[1]):.2f}x, mean {r(lambda w, a: a[5] / w[3]):.2f}x, "
      f"per client CPU {r(lambda w, a: (a[0] / a[2]) / (w[0] / w[2])):.2f}x, "
      f"per client CPU less a2a-bench's watch {r(lambda w, a: (a[0] / a[3]) / (w[0] / w[2])):.2f}x")
# A server near one core under both clients was the limit, and the throughputs say little about
# the clients; then the client CPU per request is the comparison.
budget = sys.argv[4]
if budget:
    print(f"each client held to {budget} of a core: throughput per client core, a2a-bench / wrk "
          f"{a_rps/w_rps:.2f}x (medians), {r(lambda w, a: a[0] / w[0]):.2f}x (paired)")
import os
wire = lambda p: [float(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
ww, aw = wire(sys.argv[2].replace(".rows", ".wire").replace("a2a", "wrk")), wire(sys.argv[2].replace(".rows", ".wire"))
if ww and aw:
    print(f"the wire's p50 (packet capture, medians of {len(ww)}): under wrk {statistics.median(ww):.1f} us "
          f"(wrk says {w_p50*1000:.1f}), under a2a-bench {statistics.median(aw):.1f} us "
          f"(a2a-bench says {a_p50*1000:.1f} raw, {a_rtt50*1000:.1f} from the intended time)")
srv = [list(map(float, l.split())) for l in open(sys.argv[3]) if l.strip()]
print(f"server (one worker thread) busy, in cores (medians): under wrk {statistics.median(s[0] for s in srv):.2f}, "
      f"under a2a-bench {statistics.median(s[1] for s in srv):.2f}")
PY

if [ "${AT_RATE:-0}" = 1 ]; then
    rate=$(python3 -c 'import statistics, sys; print(round(statistics.median(float(l.split()[0]) for l in open(sys.argv[1]) if l.strip())))' "$OUT/wrk.rows")
    for i in $(seq "$RUNS"); do
        budgeted "$BIN" http --url "$URL" --pattern health --agents "$CONNS" --rate "$rate" --duration "$SECS" \
            --warmup 1 --repeat 1 --interval 0 --agent-cores "$CLIENT_CORE" --agent-io "${AGENT_IO:-uring}" \
            "${A2A_TLS[@]}" --output "$OUT/rate.json" >/dev/null 2>&1 || true
        python3 - "$OUT/rate.json" >>"$OUT/rate.rows" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(r["throughput_msg_per_sec"], r["latency"]["rtt"]["p50_ms"], r["latency"]["rtt_raw"]["p50_ms"],
      r["latency"]["rtt"]["p99_ms"], max(r["cpu"]["agent_cores"]), r["status"])
PY
        echo "at wrk's rate, run $i: $(tail -1 "$OUT/rate.rows")  (req/s, p50 from the intended time ms, raw p50 ms, p99 ms, client busy share, status)"
    done
    python3 - "$OUT/rate.rows" "$OUT/wrk.rows" "$rate" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
w_p50 = statistics.median(float(l.split()[1]) for l in open(sys.argv[2]) if l.strip())
m = lambda i: statistics.median(float(r[i]) for r in rows)
held = sum(r[5] == "ok" for r in rows)
print(f"a2a-bench at wrk's {float(sys.argv[3]):.0f} req/s (open loop, medians of {len(rows)}, {held} held it): "
      f"{m(0):.0f} req/s, p50 {m(1):.3f} ms from the intended send time ({m(1)/w_p50:.2f}x wrk's closed-loop p50), "
      f"raw {m(2):.3f} ms ({m(2)/w_p50:.2f}x), p99 {m(3):.3f} ms, client busy {m(4)*100:.0f} %")
PY
fi
