#!/usr/bin/env bash
# Router memory per agent on its own connection, the router in its own process.
#
# For each N in SIZES (default "9500 19000": the descriptor limit here is 20,000 per process),
# starts `a2a-bench router` on ROUTER_CORES (default 0) with SHARDS_PER_CORE shards on each (1),
# then N agents in one `a2a-bench worker` process on the last core, each agent on its own
# connection, ring, N/10 requests/s for 4 s: `benches/many_conns.sh` with one worker, which
# samples the router's RSS (/proc/PID/status) every 0.25 s and its established connections every
# second (not its descriptors: on its socket rings a connection holds none). Prints, per
# connection, the RSS growth over the router's RSS before the run:
#   open=   the highest sample while all N connections were established;
#   peak=   the highest sample of the run (connections closing free less than they held a moment);
#   closed= 1 s after the run ended, every connection closed;
# the run's line, and, for two sizes or more, what one more connection costs:
# (open at the largest N − open at the smallest) / (the difference in N). That figure is not
# blurred by a shard's own memory, allocated as traffic first comes (its pools, its peers'
# queues), and projects to more connections than this machine can open. RUNS (1) repeats the
# set, a fresh router for each run. More shards than cores (SHARDS_PER_CORE > 1) measure a
# many-shard router's memory on a small machine: its shards take turns on the cores, which an
# idle connection does not notice.
set -euo pipefail
ROUTER_CORES=${ROUTER_CORES:-0}
cores=$(echo "$ROUTER_CORES" | tr ',' '\n' | awk -F- '{ n += ($2 == "" ? 1 : $2 - $1 + 1) } END { print n }')
exec env SIZES="${SIZES:-9500 19000}" ROUTER_CORES="$ROUTER_CORES" \
    SHARDS=$(( ${SHARDS_PER_CORE:-1} * cores )) WORKERS=1 DURATION=4 WARMUP=0.5 \
    bash "$(dirname "$0")/many_conns.sh"
