#!/usr/bin/env bash
# make test-stress: the test suite (`make test`'s binaries), COPIES copies at once, ROUNDS rounds.
# On a small machine the copies contend for the cores, and races that one copy never meets show:
# this found a router stop that hung (its acceptor missed the wake-up connection) and a peer
# outbox past its bound by a second frame. Each copy's binary runs under TIMEOUT seconds, so a
# hang is a failure with its log, not a wait. Prints the tail of every failing log; exits 1 if
# any copy failed.
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES=${COPIES:-3}
ROUNDS=${ROUNDS:-2}
TIMEOUT=${TIMEOUT:-900}
CARGO=${CARGO:-cargo}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The test binaries `cargo test --profile ci` runs, as cargo names them.
mapfile -t BINS < <($CARGO test --profile ci --no-run 2>&1 | sed -n 's/.*Executable .* (\(.*\))$/\1/p')
[ "${#BINS[@]}" -gt 0 ] || { echo "test-stress: no test binary built"; exit 1; }
echo "test-stress: ${#BINS[@]} test binaries, $COPIES copies at once, $ROUNDS rounds, ${TIMEOUT} s each"
failed=0
for r in $(seq "$ROUNDS"); do
    for c in $(seq "$COPIES"); do
        (
            for b in "${BINS[@]}"; do
                log="$WORK/r${r}c${c}-$(basename "$b").log"
                timeout "$TIMEOUT" "$b" >"$log" 2>&1 || echo "$log $?" >>"$WORK/failed"
            done
        ) &
    done
    wait
    n=$( [ -f "$WORK/failed" ] && wc -l <"$WORK/failed" || echo 0)
    echo "round $r: $((COPIES * ${#BINS[@]})) binary runs, $((n - failed)) failed"
    failed=$n
done
if [ "$failed" -gt 0 ]; then
    while read -r log rc; do
        echo "=== $(basename "$log"): exit status $rc$([ "$rc" = 124 ] && echo ', timed out')"
        grep -E -A2 "running for over|panicked|FAILED|^failures:|test result" "$log" | head -30 || true
        tail -5 "$log"
    done <"$WORK/failed"
    exit 1
fi
echo "test-stress: every copy passed"
