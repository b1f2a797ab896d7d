# Sourced by the A2A benches (a2a_cancel.sh, a2a_cards.sh, a2a_list_filter.sh,
# a2a_v03_bindings.sh), after they set $ROOT: $B (the a2a-bench binary), $ENVS (`make
# test-targets`' virtual environments), $OUT (a scratch directory, removed at exit); a free
# port, waiting for a server (its port accepting: gRPC servers answer no HTTP/1.1); `run NAME
# PORT CLIENTS PATTERN...`, which runs each pattern in turn (PATTERN@P: against the server on
# port P instead) for 3 s after 1 s of warm-up, three rounds, the clients on the last core (with $FLAGS),
# and prints each one's medians: answered/s, p50, p99, acceptance p50 (task patterns), the
# server's cores, errors; and `against NAME CLIENTS "PATTERN..." COMMAND...`, which starts the
# server COMMAND on core 0 (PORT in its arguments replaced by a free port), runs the patterns
# against it, and stops it.
B=${A2A_BENCH:-$ROOT/target/release/a2a-bench}
ENVS=${A2A_BENCH_PYENVS:-$ROOT/target/pyenvs}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; }
run() { local name=$1 port=$2 clients=$3; shift 3
  for r in 1 2 3; do for p in "$@"; do
    local at=$port; [[ $p == *@* ]] && at=${p#*@}
    # shellcheck disable=SC2086
    "$B" http --url "http://127.0.0.1:$at/" --pattern "${p%@*}" --agents "$clients" --duration 3 --warmup 1 --repeat 1 --agent-cores "$(( $(nproc) - 1 ))" --stall-probe 0 ${FLAGS:-} --output "$OUT/$name-$p-$r.json" >/dev/null 2>&1
  done; done
  python3 - "$OUT" "$name" "$@" <<'PY'
import json, statistics as st, sys
out, name, pats = sys.argv[1], sys.argv[2], sys.argv[3:]
for p in pats:
    rs=[json.load(open(f"{out}/{name}-{p}-{r}.json"))["results"][0] for r in (1,2,3)]
    pp=[r["patterns"][0] for r in rs]
    errs=sum(sum(r["errors"].values()) for r in rs)
    accepted=st.median((x.get('accepted') or {}).get('p50_ms') or 0 for x in pp)
    shown=f" accepted p50 {accepted:7.3f}" if accepted else ""
    print(f"{name:10} {p.split('@')[0]:24} {st.median(x['ok_per_sec'] for x in pp):8.0f}/s p50 {st.median(x['latency']['p50_ms'] for x in pp):7.3f} p99 {st.median(x['latency']['p99_ms'] for x in pp):7.3f}{shown} server {st.median(r['cpu'].get('target_cores') or 0 for r in rs):.2f} errors {errs}")
PY
}
against() { local name=$1 clients=$2 patterns=$3; shift 3
  local port; port=$(free_port)
  taskset -c 0 "${@//PORT/$port}" >/dev/null 2>&1 & local pid=$!
  wait_up "$port"
  # shellcheck disable=SC2086
  run "$name" "$port" "$clients" $patterns
  kill "$pid"; wait "$pid" 2>/dev/null; sleep 1
}
