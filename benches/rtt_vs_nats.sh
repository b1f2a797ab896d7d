#!/usr/bin/env bash
# Round trip through the router against nats-server request/reply, same cores, same hour
# (docs/BENCHMARKS.md, "Round trip"). Server/router on core 0, clients on core 1.
#   RUNS=3 bash benches/rtt_vs_nats.sh          (needs nats-server and python3)
# Extra a2a-bench flags go in A2A_FLAGS (e.g. A2A_FLAGS=--poll).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
N=${N:-20000}
BIN=${BIN:-target/release/a2a-bench}
command -v nats-server >/dev/null || { echo "nats-server is not installed (apt-get install nats-server)"; exit 2; }
[ -x "$BIN" ] || cargo build --release
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
taskset -c 0 nats-server -a 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
NATS=$!
trap 'kill $NATS $RESP 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.05; done

# One raw NATS connection per side, blocking sockets: the responder echoes each request to its
# reply subject; the requester sends one request at a time and times the answer.
cat >/tmp/a2a_nats_rtt.py <<'PY'
import socket, sys, time
port, role, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
f.readline()  # INFO
s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n')
while f.readline().strip() != b"PONG": pass
payload = b"x" * 64
def msg():
    while True:
        line = f.readline()
        if line.startswith(b"MSG"):
            parts = line.split(); size = int(parts[-1]); body = f.read(size + 2)[:-2]
            return parts, body
        if line.startswith(b"PING"): s.sendall(b"PONG\r\n")
if role == "resp":
    s.sendall(b"SUB rr 1\r\nPING\r\n")
    while f.readline().strip() != b"PONG": pass
    print("ready", flush=True)
    while True:
        parts, body = msg()
        s.sendall(b"PUB %s %d\r\n%s\r\n" % (parts[3], len(body), body))
else:
    s.sendall(b"SUB inbox 2\r\nPING\r\n")
    while f.readline().strip() != b"PONG": pass
    lat = []
    for i in range(n + n // 10):
        t = time.perf_counter_ns()
        s.sendall(b"PUB rr inbox 64\r\n" + payload + b"\r\n")
        msg()
        if i >= n // 10: lat.append(time.perf_counter_ns() - t)  # the first tenth is warm-up
    lat.sort()
    print("nats-server request/reply: p50 %.1f us  p99 %.1f us  (%d round trips)" % (lat[len(lat)//2]/1e3, lat[len(lat)*99//100]/1e3, len(lat)))
PY
taskset -c 1 python3 /tmp/a2a_nats_rtt.py "$PORT" resp 0 > /tmp/a2a_nats_resp.txt &
RESP=$!
for _ in $(seq 100); do grep -q ready /tmp/a2a_nats_resp.txt 2>/dev/null && break; sleep 0.05; done
for r in $(seq "$RUNS"); do
  taskset -c 1 python3 /tmp/a2a_nats_rtt.py "$PORT" req "$N"
  # shellcheck disable=SC2086
  "$BIN" --cores 0-1 --agents 2 --window 1 --topologies ring --duration 2 --warmup 0.5 --repeat 1 \
     --output /tmp/a2a_rtt.json ${A2A_FLAGS:-} 2>&1 | grep -E '^ +1 ' | sed 's/^/a2a-bench (p50 ms in col 6): /'
done
