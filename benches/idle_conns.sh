#!/usr/bin/env bash
# Router memory per agent on its own connection, the router in its own process.
#
# For each N in SIZES (default "9500 19000": the descriptor limit here is 20,000 per process),
# starts `a2a-bench router` on ROUTER_CORES (default 0) with SHARDS_PER_CORE shards on each (1),
# then `a2a-bench --router … --agents N --agents-per-conn 1` on the last core, each agent on its
# own connection, ring, N/10 requests/s for 4 s. While it runs, the router's RSS
# (/proc/PID/status) is sampled every 0.25 s and its established connections (ss) every 0.5 s
# (not its descriptors: on its socket rings a connection holds none). Prints, per connection,
# the RSS growth over the router's RSS before the run:
#   open=   the highest sample while all N connections were established;
#   peak=   the highest sample of the run (connections closing free less than they held a moment);
#   closed= 1 s after the run ended, every connection closed;
# the run's verdict line, and, for two sizes or more, what one more connection costs:
# (open at the largest N − open at the smallest) / (the difference in N). That figure is not
# blurred by a shard's own memory, allocated as traffic first comes (its pools, its peers'
# queues), and projects to more connections than this machine can open. RUNS (1) repeats the
# set, a fresh router for each run. More shards than cores (SHARDS_PER_CORE > 1) measure a
# many-shard router's memory on a small machine: its shards take turns on the cores, which an
# idle connection does not notice.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
SIZES=${SIZES:-"9500 19000"}
ROUTER_CORES=${ROUTER_CORES:-0}
SHARDS_PER_CORE=${SHARDS_PER_CORE:-1}
RUNS=${RUNS:-1}
AGENT_CORE=$(( $(nproc) - 1 ))
[ -x "$BIN" ] || { echo "idle_conns: no binary at $BIN (cargo build --release)"; exit 1; }
OUT=$(mktemp -d)
ROUTER=""
trap 'kill $ROUTER 2>/dev/null || true; rm -rf "$OUT"' EXIT
ulimit -n "$(ulimit -Hn)"

cat >"$OUT/sample.py" <<'EOF'
import os, subprocess, sys, time
router, run, n, shards, record, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]

def established():
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return out.count("\n")

def rss_kib():
    with open(f"/proc/{router}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def running():
    try:
        with open(f"/proc/{run}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

before = rss_kib()
peak = opened = fds = tick = 0
while running():
    rss = rss_kib()
    peak = max(peak, rss)
    if tick % 2 == 0:
        fds = established()
    if fds >= n:
        opened = max(opened, rss)
    tick += 1
    time.sleep(0.25)
time.sleep(1)
closed = rss_kib()
per = lambda kib: round((kib - before) * 1024 / n) if kib else "-"
print(f"shards={shards} connections={n} before={before} KiB open={per(opened)} "
      f"peak={per(peak)} closed={per(closed)} bytes per connection")
if opened:
    with open(record, "a") as f:
        f.write(f"{n} {opened - before}\n")
EOF

for run in $(seq 1 "$RUNS"); do
    : >"$OUT/open"
    for N in $SIZES; do
        "$BIN" router --cores "$ROUTER_CORES" --shards-per-core "$SHARDS_PER_CORE" \
            --listen 127.0.0.1:0 >"$OUT/router.out" 2>&1 &
        ROUTER=$!
        URL=""
        for _ in $(seq 1 100); do
            URL=$(grep -o 'tcp://[0-9.:]*' "$OUT/router.out" | head -1 || true)
            [ -n "$URL" ] && break
            sleep 0.05
        done
        [ -n "$URL" ] || { echo "idle_conns: the router did not start:"; cat "$OUT/router.out"; exit 1; }
        shards=$(grep -o 'with [0-9]* shard' "$OUT/router.out" | grep -o '[0-9]*')
        "$BIN" --router "$URL" --agent-cores "$AGENT_CORE" --agents "$N" --agents-per-conn 1 \
            --topologies ring --rate $(( N / 10 )) --duration 4 --warmup 0.5 --repeat 1 \
            --output "$OUT/report.json" >"$OUT/run.out" 2>&1 &
        RUN=$!
        python3 "$OUT/sample.py" "$ROUTER" "$RUN" "$N" "$shards" "$OUT/open" "${URL##*:}"
        wait "$RUN" || true
        grep -E "^ *1 +ring|overloaded|generator-bound|error|heartbeats" "$OUT/run.out" | head -3 || true
        kill -INT "$ROUTER"; wait "$ROUTER" 2>/dev/null || true; ROUTER=""
    done
    sort -n "$OUT/open" | awk 'NR == 1 { n0 = $1; k0 = $2 } { n = $1; k = $2 }
        END { if (n > n0) printf "one more connection: %d bytes (%d to %d connections)\n",
                                 (k - k0) * 1024 / (n - n0), n0, n }'
done
