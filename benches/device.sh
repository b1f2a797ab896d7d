#!/usr/bin/env bash
# The many-core runs in one command, for a machine that is lent for minutes and starts bare
# (no Rust, no package registry): `make device-bundle` here builds a stripped binary and the
# two libraries it needs into target/device/; there, from the repository root,
# `bash benches/device.sh` runs
#   0. the sysctl profile (`make tune`'s script), when run as root (TUNE=0 skips it);
#   1. `a2a-bench sysinfo` (cores, NUMA nodes, io_uring, limits);
#   2. the product's own command on every core (`a2a-bench --cores 0-N`, router on half);
#   3. the comparison at 1, 2, 4 and 8 router cores (`make bench-scaling`, shorter windows),
#      skipping counts the machine cannot hold;
#   4. the round trip (2 agents, window 1, router and agents on a core each), by default and
#      in the latency mode (`--poll`);
#   5. CONNS agents (default 100,000) each on its own connection to a router of 8 shards on 4
#      cores, driven by worker processes (`benches/many_conns.sh`): the router's RSS growth per
#      connection while all are open, its descriptors, and the merged run;
#   6. with perf (the packed copy `make device-bundle` carries, or one installed there): each
#      router in its own process on half the cores, agents on the rest, mesh x 1000 agents at 10
#      per connection, by default and with one request in flight (window 1, small frames):
#      system calls, switches, IPIs and CPU per routed message (`benches/perf_per_msg.sh`) and
#      where each router's cores went (a profile per router and shape);
# and writes each one's text (and the JSON reports of 2 and 3) into $OUT (default
# ./device_out): 8 files, and with perf perf.txt and six profile-*.txt. QUICK=1 shortens every
# window and CONNS (a check of the script itself on a small machine). On 16 cores stages 1-5
# took 158 s on 2026-12-04 (each stage has its own time limit: 120 + 300 + 60 + 150 s, and 6
# 150 s); on a 2-core machine QUICK=1 takes 20 s, and 80 s with stage 6.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/device_out}
mkdir -p "$OUT"
BIN=${A2A_BENCH:-$ROOT/target/device/a2a-bench}
[ -x "$BIN" ] || BIN=$ROOT/target/release/a2a-bench
export LD_LIBRARY_PATH="$ROOT/target/device/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
LOG=$OUT/device.txt
say() { echo "$@" | tee -a "$LOG"; }

say "device.sh: $(date -u +%FT%TZ) on $(uname -srm), $(nproc) cores online"
if ! "$BIN" --version >>"$LOG" 2>&1; then
    say "the binary does not start here ($BIN): run 'make device-bundle' before the call, carry target/device"
    exit 2
fi
if [ "$(id -u)" = 0 ] && [ "${TUNE:-1}" = 1 ]; then
    say "== sysctl profile"
    bash "$ROOT/sysctl/tune.sh" apply >>"$LOG" 2>&1
fi
"$BIN" sysinfo >"$OUT/sysinfo.txt" 2>&1 || say "sysinfo failed (exit $?): see sysinfo.txt"

CORES=$(nproc)
LAST=$((CORES - 1))
if [ "${QUICK:-0}" = 1 ]; then
    DUR=0.5 WARM=0.2 REPEAT=1 AGENTS=100 SCALING_AGENTS=100
else
    # Scaling runs 1,000 agents only: 100 spread over 8 shards and 8 agent cores is thin.
    DUR=2 WARM=0.5 REPEAT=3 AGENTS=100,1000 SCALING_AGENTS=1000
fi

# 2. The whole machine, as a user runs it: router on half the cores, agents on the rest.
say "== a2a-bench --cores 0-$LAST"
timeout 120 "$BIN" --cores "0-$LAST" --agents "$AGENTS" --agents-per-conn 10 --topologies ring,mesh,star \
    --duration "$DUR" --warmup "$WARM" --repeat "$REPEAT" --interval 0 \
    --output "$OUT/cores.json" >"$OUT/cores.txt" 2>&1
say "exit $? ($(tail -n 4 "$OUT/cores.txt" | head -n 1))"

# 3. Scaling: N router cores and N agent cores for each N the machine holds.
STEPS=""
for n in 1 2 4 8; do
    [ $((2 * n)) -le "$CORES" ] && STEPS="$STEPS${STEPS:+,}$n"
done
[ "${QUICK:-0}" = 1 ] && DUR=0.5 WARM=0.2 REPEAT=1
[ "${QUICK:-0}" = 1 ] || DUR=1 WARM=0.3
say "== a2a-bench compare --scaling $STEPS"
timeout 300 "$BIN" compare --cores "0-$LAST" --scaling "$STEPS" --agents "$SCALING_AGENTS" --agents-per-conn 10 \
    --topologies ring,mesh --duration "$DUR" --warmup "$WARM" --repeat "$REPEAT" \
    --output "$OUT/scaling.json" >"$OUT/scaling.txt" 2>&1
say "exit $?"

# 4. Round trip: one agent's request answered by the other, through the router.
say "== round trip (--agents 2 --window 1), by default and with --poll"
for mode in "" --poll; do
    timeout 30 "$BIN" --cores 0-1 --agents 2 --window 1 --topologies ring --duration "$DUR" \
        --warmup "$WARM" --repeat "$REPEAT" --interval 0 $mode --output /tmp/rtt.json >>"$OUT/rtt.txt" 2>&1
    say "exit $? ${mode:-(default)}"
done

# 5. Agents each on its own connection: what an idle connection costs the router. A socket
# ring's connection holds no descriptor (its socket lives in the ring's table, as large as the
# open-file limit), so a router of 8 shards holds 8 tables' worth, and WORKERS processes share
# the agents' sockets (`benches/many_conns.sh`): 100,000 fit in a limit of 20,000.
if [ "${QUICK:-0}" = 1 ]; then CONNS=${CONNS:-2000}; else CONNS=${CONNS:-100000}; fi
if [ "$CORES" -ge 8 ]; then RC=0-3; else RC=0; fi
WORKERS=$(( CONNS / 15000 + 1 ))
say "== $CONNS agents on their own connections (router: 8 shards on $RC; $WORKERS workers on core $LAST; open files $(ulimit -Hn) per process)"
timeout 150 env A2A_BENCH="$BIN" SIZES="$CONNS" ROUTER_CORES="$RC" SHARDS=8 WORKERS="$WORKERS" \
    bash "$ROOT/benches/many_conns.sh" >"$OUT/conns.txt" 2>&1
say "exit $?: $(grep -E '^connections=|merged:|worker [0-9]+: exit' "$OUT/conns.txt" | tr '\n' ' ')"

# 6. Where each router's cores go (perf: counts per message and a profile).
PERF=""
if [ -f "$ROOT/target/device/perf.tgz" ]; then
    mkdir -p /tmp/device-perf && tar xzf "$ROOT/target/device/perf.tgz" -C /tmp/device-perf &&
        printf '#!/bin/sh\nLD_LIBRARY_PATH=/tmp/device-perf/perf exec /tmp/device-perf/perf/perf "$@"\n' \
            >/tmp/device-perf/perf.sh && chmod +x /tmp/device-perf/perf.sh && PERF=/tmp/device-perf/perf.sh
fi
[ -z "$PERF" ] && command -v perf >/dev/null && PERF=perf
if [ -z "$PERF" ] || ! "$PERF" stat -e task-clock -- true >/dev/null 2>&1; then
    say "== no perf that runs here: no counts per message, no profiles"
else
    # The counts use tracepoints (system calls, IPIs): tracefs, where it is not mounted yet.
    [ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
    H=$((CORES / 2))
    say "== perf: each router on cores 0-$((H - 1)), agents on $H-$LAST, mesh x 1000, 10 per connection"
    for window in "" 1; do
        timeout 75 env A2A_BENCH="$BIN" PERF="$PERF" ROUTER_CORES="0-$((H - 1))" AGENT_CORES="$H-$LAST" \
            TOPOLOGY=mesh SHAPES=1000/10 ROUNDS=1 WINDOW="$window" PROFILE="$OUT" \
            bash "$ROOT/benches/perf_per_msg.sh" >>"$OUT/perf.txt" 2>&1
        say "exit $? (window ${window:-default})"
        suffix=${window:+w$window}
        for f in "$OUT"/profile-*-mesh-1000-10.txt; do
            [ -f "$f" ] && mv "$f" "${f%.txt}-${suffix:-default}.txt"
        done
    done
fi
say "device.sh: done $(date -u +%FT%TZ); files: $(cd "$OUT" && ls | tr '\n' ' ')"
