#!/usr/bin/env bash
# More agents on their own connections than one process may open descriptors: router memory per
# idle connection at 100,000 connections on a machine whose open-file limit is 20,000.
#
# The glommio router keeps each socket in its shard's ring table, with no descriptor
# (`transport::uring`, "direct descriptors"); a table holds up to the open-file limit, so a
# router of SHARDS shards (default 6, on ROUTER_CORES, default 0, via --shards-per-core) holds
# SHARDS × the limit. The agents need as many sockets: WORKERS (default 6) `a2a-bench worker`
# processes share them, each with its own ring table, all on the last core; past 10,000
# connections they spread over source addresses 127.0.0.2, .3, … (`loadgen::link`).
#
# For each N in SIZES (default "50000 100000"): a fresh router, then the workers' ring run of N
# agents, one per connection, N/10 requests/s in all for DURATION s (default 6, after WARMUP s,
# default 1). While it runs the
# router's RSS (/proc/PID/status) is sampled every 0.25 s and its established connections
# every second (ss, or /proc/net/tcp where ss is not installed; bash and awk only, so that it
# runs on a bare machine). Prints, per connection, the RSS growth over the router's RSS before the run:
#   open=   the highest sample while all N connections were established;
#   peak=   the highest sample of the run;
#   closed= 1 s after the run ended;
# with the router's descriptors at that moment (a socket in a ring's table is not one), the
# merged run's line (`a2a-bench merge` of the workers' parts; a failed worker's error instead),
# and, for two sizes or more, what one more connection costs ((open at the largest N − open at
# the smallest) / the difference in N: a shard's own memory drops out of it). RUNS
# (1) repeats the set.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
SIZES=${SIZES:-"50000 100000"}
# KEEP=1 keeps the outputs (the directory is printed).
ROUTER_CORES=${ROUTER_CORES:-0}
SHARDS=${SHARDS:-6}
WORKERS=${WORKERS:-6}
DURATION=${DURATION:-6}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-1}
AGENT_CORE=$(( $(nproc) - 1 ))
[ -x "$BIN" ] || { echo "many_conns: no binary at $BIN (cargo build --release)"; exit 1; }
OUT=$(mktemp -d)
PIDS=""
trap 'kill $PIDS 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$OUT"' EXIT
ulimit -n "$(ulimit -Hn)"
[ -n "${KEEP:-}" ] && echo "outputs in $OUT"
echo "open-file limit: $(ulimit -n) per process; router: $SHARDS shards on core(s) $ROUTER_CORES; agents: $WORKERS workers on core $AGENT_CORE"

# The router's RSS in KiB.
rss_of() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Whether any of the pids still runs (a zombie, not yet waited for, does not).
alive() {
    local p
    for p in "$@"; do
        grep -qs '^State:[[:space:]]*[^Z]' "/proc/$p/status" && return 0
    done
    return 1
}
# Established connections whose local port is $1: ss where it is installed, else /proc/net/tcp.
established() {
    if [ -n "$SS" ]; then
        ss -Htn state established "( sport = :$1 )" | wc -l
    else
        awk -v p="$(printf '%04X' "$1")" \
            'NR > 1 && $4 == "01" { split($2, a, ":"); if (a[2] == p) n++ } END { print n + 0 }' \
            /proc/net/tcp
    fi
}
SS=${SS-$(command -v ss || true)}  # SS= (empty) reads /proc/net/tcp instead
# Samples the router (pid $1, port $2) while the runs (pids from $5) go; N = $3; appends
# "N KiB-grown-with-all-open" to $4.
sample() {
    local router=$1 port=$2 n=$3 record=$4
    shift 4
    local before rss closed peak=0 opened=0 conns=0 most=0 fds=0 tick=0
    before=$(rss_of "$router")
    while alive "$@"; do
        rss=$(rss_of "$router")
        (( rss > peak )) && peak=$rss
        if (( tick % 4 == 0 )); then
            conns=$(established "$port")
            (( conns > most )) && most=$conns
        fi
        if (( conns >= n && rss > opened )); then
            opened=$rss
            fds=$(ls "/proc/$router/fd" | wc -l)
        fi
        tick=$((tick + 1))
        sleep 0.25
    done
    sleep 1
    closed=$(rss_of "$router")
    awk -v n="$n" -v b="$before" -v o="$opened" -v p="$peak" -v c="$closed" -v m="$most" -v f="$fds" 'BEGIN {
        printf "connections=%d (most established at once %d) before=%d KiB open=%s peak=%d closed=%d bytes per connection; router descriptors while all were open: %s\n",
            n, m, b, (o ? sprintf("%d", (o - b) * 1024 / n + 0.5) : "-"), (p - b) * 1024 / n + 0.5,
            (c - b) * 1024 / n + 0.5, (o ? f : "-") }'
    if (( opened > 0 )); then echo "$n $((opened - before))" >>"$record"; fi
}

# How many cores a list such as 0-3,6 names.
count_cores() {
    echo "$1" | tr ',' '\n' | awk -F- '{ n += ($2 == "" ? 1 : $2 - $1 + 1) } END { print n }'
}

for run in $(seq 1 "$RUNS"); do
    : >"$OUT/open"
    for N in $SIZES; do
        cores=$(count_cores "$ROUTER_CORES")
        per_core=$(( (SHARDS + cores - 1) / cores ))
        "$BIN" router --cores "$ROUTER_CORES" --shards-per-core "$per_core" \
            --listen 127.0.0.1:0 >"$OUT/router.out" 2>&1 &
        ROUTER=$!
        PIDS="$ROUTER"
        URL=""
        for _ in $(seq 1 100); do
            URL=$(grep -o 'tcp://[0-9.:]*' "$OUT/router.out" | head -1 || true)
            [ -n "$URL" ] && break
            sleep 0.05
        done
        [ -n "$URL" ] || { echo "many_conns: the router did not start:"; cat "$OUT/router.out"; exit 1; }
        RUNPIDS=""
        for i in $(seq 0 $(( WORKERS - 1 ))); do
            "$BIN" worker --index "$i" --workers "$WORKERS" --run-id "many-$N-$run" \
                --start-timeout 120 --router "$URL" --agent-cores "$AGENT_CORE" \
                --agents "$N" --agents-per-conn 1 --topologies ring --rate $(( N / 10 )) \
                --duration "$DURATION" --warmup "$WARMUP" --repeat 1 --stall-probe 0 \
                --output "$OUT/part-$i.json" >"$OUT/worker-$i.out" 2>&1 &
            RUNPIDS="$RUNPIDS $!"
        done
        PIDS="$ROUTER $RUNPIDS"
        # shellcheck disable=SC2086
        sample "$ROUTER" "${URL##*:}" "$N" "$OUT/open" $RUNPIDS
        failed=0
        for i in $(seq 0 $(( WORKERS - 1 ))); do
            pid=$(echo $RUNPIDS | cut -d' ' -f$(( i + 1 )))
            rc=0; wait "$pid" || rc=$?
            if [ "$rc" != 0 ]; then
                failed=1
                echo "  worker $i: exit $rc: $(grep -E "FAILED|rror" "$OUT/worker-$i.out" | head -2 | tr '\n' ' ')"
            fi
        done
        # Each worker judges only its share; the merged parts are the run.
        if [ "$failed" = 0 ]; then
            "$BIN" merge "$OUT"/part-*.json --output "$OUT/merged.json" >"$OUT/merge.out" 2>&1 || true
            grep -E "^ *1 +ring" "$OUT/merge.out" | sed 's/^/  merged: /' || cat "$OUT/merge.out"
        fi
        kill -INT "$ROUTER"; wait "$ROUTER" 2>/dev/null || true; PIDS=""
    done
    sort -n "$OUT/open" | awk 'NR == 1 { n0 = $1; k0 = $2 } { n = $1; k = $2 }
        END { if (n > n0) printf "one more connection: %d bytes (%d to %d connections)\n",
                                 (k - k0) * 1024 / (n - n0), n0, n }'
done
