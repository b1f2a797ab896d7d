#!/usr/bin/env bash
# The many-core runs in one command, for a machine that is lent for minutes and starts bare
# (no Rust, no package registry): `make device-bundle` here builds a stripped binary and the
# two libraries it needs into target/device/; there, from the repository root,
# `bash benches/device.sh` runs
#   1. `a2a-bench sysinfo` (cores, NUMA nodes, io_uring, limits);
#   2. the product's own command on every core (`a2a-bench --cores 0-N`, router on half);
#   3. the comparison at 1, 2, 4 and 8 router cores (`make bench-scaling`, shorter windows),
#      skipping counts the machine cannot hold;
# and writes each one's text and JSON report into $OUT (default ./device_out): at most 8 files.
# QUICK=1 shortens every window (a check of the script itself on a small machine). On 16
# cores the whole script takes about 5 minutes (each stage has its own time limit, 150 + 380
# s); on this 2-core machine 1.5 minutes.
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
timeout 150 "$BIN" --cores "0-$LAST" --agents "$AGENTS" --agents-per-conn 10 --topologies ring,mesh,star \
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
timeout 380 "$BIN" compare --cores "0-$LAST" --scaling "$STEPS" --agents "$SCALING_AGENTS" --agents-per-conn 10 \
    --topologies ring,mesh --duration "$DUR" --warmup "$WARM" --repeat "$REPEAT" \
    --output "$OUT/scaling.json" >"$OUT/scaling.txt" 2>&1
say "exit $?"
say "device.sh: done $(date -u +%FT%TZ); files: $(cd "$OUT" && ls | tr '\n' ' ')"
