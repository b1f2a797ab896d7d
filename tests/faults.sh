#!/usr/bin/env bash
# make test-faults: the router as its own process in its own network namespace, behind a veth
# pair, with real faults injected while load generators run against it: packet delay, loss and a
# partition, SIGSTOP/SIGCONT, a load-generator process killed, and SIGKILL of the router.
# Checks: the router never crashes (until it is killed), its memory stays bounded, every run's
# accounting closes, and each report names what happened. Needs root and iproute2 (netns, veth);
# skips otherwise. Delay needs tc netem (sch_netem); loss and the partition use netem when the
# kernel has it and nftables (`nft`, numgen random) otherwise; a fault with neither is skipped
# with one line.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
  echo "test-faults: skipped (needs root, ip and tc)"
  exit 0
fi
BIN=${BIN:-./target/release/a2a-bench}
NS=a2a-faults
HOST_IF=a2a-fh
NS_IF=a2a-fr
ROUTER=10.77.0.2:7000
WORK=$(mktemp -d)
ROUTER_PID=
MAX_RSS_KIB=$((512 * 1024))

cleanup() {
  [ -n "$ROUTER_PID" ] && kill -CONT "$ROUTER_PID" 2>/dev/null && kill -9 "$ROUTER_PID" 2>/dev/null
  net_clear
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$HOST_IF" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Network faults on the veth pair, both directions.
NETEM=no
NFT=no
net_clear() {
  tc qdisc del dev "$HOST_IF" root 2>/dev/null || true
  ip netns exec "$NS" tc qdisc del dev "$NS_IF" root 2>/dev/null || true
  nft delete table inet a2a_faults 2>/dev/null || true
}
netem() { tc qdisc add dev "$HOST_IF" root netem "$@" && ip netns exec "$NS" tc qdisc add dev "$NS_IF" root netem "$@"; }
# nft_drop EXPR: drop packets on the host side of the pair, both directions, where EXPR holds.
nft_drop() {
  nft add table inet a2a_faults
  nft add chain inet a2a_faults out '{ type filter hook output priority 0; }'
  nft add chain inet a2a_faults in '{ type filter hook input priority 0; }'
  nft add rule inet a2a_faults out oifname "$HOST_IF" "$@" drop
  nft add rule inet a2a_faults in iifname "$HOST_IF" "$@" drop
}
net_loss() { # PERCENT
  if [ $NETEM = yes ]; then netem loss "$1%"; else nft_drop numgen random mod 100 '<' "$1"; fi
}
net_partition() {
  if [ $NETEM = yes ]; then netem loss 100%; else nft_drop meta l4proto tcp; fi
}

ip netns del "$NS" 2>/dev/null || true
ip link del "$HOST_IF" 2>/dev/null || true
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$NS_IF"
ip link set "$NS_IF" netns "$NS"
ip addr add 10.77.0.1/24 dev "$HOST_IF"
ip link set "$HOST_IF" up
ip netns exec "$NS" ip addr add 10.77.0.2/24 dev "$NS_IF"
ip netns exec "$NS" ip link set "$NS_IF" up
ip netns exec "$NS" ip link set lo up
if tc qdisc add dev "$HOST_IF" root netem delay 0ms 2>/dev/null; then NETEM=yes; net_clear; fi
if command -v nft >/dev/null && nft list tables >/dev/null 2>&1; then NFT=yes; fi

ip netns exec "$NS" "$BIN" router --listen "$ROUTER" --cores 0 >"$WORK/router.out" 2>"$WORK/router.err" &
ROUTER_PID=$!
for _ in $(seq 100); do "$BIN" stats --router "tcp://$ROUTER" >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN" stats --router "tcp://$ROUTER" >/dev/null

fail() { echo "test-faults: FAILED: $*"; echo "--- router stderr"; cat "$WORK/router.err"; exit 1; }
router_alive() { kill -0 "$ROUTER_PID" 2>/dev/null || fail "the router died ($1)"; }
router_rss() { awk '/VmRSS/ {print $2}' "/proc/$ROUTER_PID/status"; }

# run NAME ARGS...: one load generator run (2 s window) against the router; its report is
# $WORK/NAME.json. It may fail (its status is checked by check).
run() {
  local name=$1; shift
  "$BIN" --router "tcp://$ROUTER" --agents 10 --topologies ring --duration 2 --warmup 0.3 \
    --repeat 1 --output "$WORK/$name.json" "$@" >"$WORK/$name.out" 2>&1 || true
}

# check NAME STATUSES [PYTHON-EXPRESSION]: the report exists, every run's accounting closed, the
# run's status is one of STATUSES (|-separated), and the expression (over `r`, the run) holds.
check() {
  python3 - "$WORK/$1.json" "$2" "${3:-True}" "$1" <<'PY' || { cat "$WORK/$1.out"; fail "$1"; }
import json, sys
path, status, expr, name = sys.argv[1:5]
report = json.load(open(path))
for r in report["results"]:
    a = r["accounting"]
    assert a["closed"], f"{name}: accounting open: {a}"
    assert r["status"] in status.split("|"), f"{name}: status {r['status']} (failure: {r.get('failure')})"
    assert eval(expr), f"{name}: {expr} does not hold: p50 {r['p50_latency_ms']} ms, max {r['max_latency_ms']} ms, errors {r['errors']}, failure {r.get('failure')}"
    print(f"  {name}: {r['status']}, {r['round_trips_per_sec']:.0f} round trips/s, p50 {r['p50_latency_ms']:.1f} ms, max {r['max_latency_ms']:.0f} ms, errors {dict(r['errors'])}" + (f", failure: {r['failure']}" if r.get('failure') else ""))
PY
}

echo "test-faults: router pid $ROUTER_PID in netns $NS at $ROUTER"

run clean
check clean ok 'not r["errors"]'

FAULTS=0
if [ $NETEM = yes ]; then
  netem delay 10ms
  run delay
  net_clear
  # A round trip crosses the veth pair four times (agent → router → agent and back).
  check delay ok 'r["p50_latency_ms"] >= 38 and not r["errors"]'
  FAULTS=$((FAULTS + 1))
else
  echo "  delay: skipped (this kernel has no tc netem)"
fi

if [ $NETEM = yes ] || [ $NFT = yes ]; then
  net_loss 5
  run loss
  net_clear
  # TCP retransmits what is lost: slower, nothing lost. (A lost segment waits ≥ 200 ms, so a
  # 2 s window is under 10× p99: the run is honestly `too_short`.)
  check loss 'ok|too_short' 'not r["errors"] and r["max_latency_ms"] >= 150'
  # A partition longer than the stall timeout (3 s here): the run fails, saying the router
  # stalled, and what was in flight is counted.
  ( sleep 1.2; net_partition; sleep 4; net_clear ) &
  fault=$!
  run partition --drain-timeout 3
  wait $fault
  check partition failed '"stalled" in r["failure"] and r["accounting"]["unanswered"] > 0'
  router_alive partition
  FAULTS=$((FAULTS + 2))
else
  echo "  loss, partition: skipped (neither tc netem nor nft)"
fi

( sleep 1.2; kill -STOP "$ROUTER_PID"; sleep 1; kill -CONT "$ROUTER_PID" ) &
fault=$!
run sigstop
wait $fault
check sigstop ok 'r["max_latency_ms"] >= 900 and not r["errors"]'
router_alive sigstop
FAULTS=$((FAULTS + 1))

# Two load generators; one is killed mid-run. The other's run is unharmed.
"$BIN" --router "tcp://$ROUTER" --agents 10 --topologies ring --duration 6 --warmup 0.3 \
  --repeat 1 --output "$WORK/victim.json" >"$WORK/victim.out" 2>&1 &
VICTIM=$!
( sleep 1.5; kill -9 "$VICTIM" ) &
fault=$!
run survivor
wait $fault
wait $VICTIM 2>/dev/null || true
check survivor ok 'not r["errors"]'
router_alive "a load generator killed"
for _ in $(seq 50); do
  conns=$("$BIN" stats --router "tcp://$ROUTER" | awk 'NR==2 {print $3}')
  [ "$conns" = 1 ] && break   # only the stats connection itself
  sleep 0.1
done
[ "$conns" = 1 ] || fail "the killed load generator's connections are still open ($conns)"
echo "  victim: its connections were closed and its agents removed"
FAULTS=$((FAULTS + 1))

rss=$(router_rss)
[ "$rss" -lt "$MAX_RSS_KIB" ] || fail "router RSS $rss KiB after the faults"
echo "  router RSS after the faults: $rss KiB"

( sleep 1.2; kill -9 "$ROUTER_PID" ) &
fault=$!
run sigkill
wait $fault
ROUTER_PID=
check sigkill failed '"closed" in r["failure"] and r["errors"].get("connection_lost", 0) > 0'
FAULTS=$((FAULTS + 1))

echo "test-faults: ok ($FAULTS faults injected)"
