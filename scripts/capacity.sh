#!/usr/bin/env bash
# Measures what each role costs per call (SCALING.md): every role as its
# own process (nats-server built from the module, one ingest, one decider
# process with two deciders, one archiver into a throwaway ClickHouse),
# open-loop load from `callflow bench` at each rate of $CAPACITY_RATES for
# $CAPACITY_SECS, and the CPU seconds each process (ClickHouse and the
# load generator included) used per 1,000 calls, read from /proc. A role's
# calls per second per core is 1,000 / its CPU seconds per 1,000 calls.
#
#   scripts/capacity.sh                        # rates 1000 2000 4000, 30 s each
#   CAPACITY_RATES="500 3000" CAPACITY_SECS=20 scripts/capacity.sh
#
# Load goes to 127.0.0.1 only. Prints one table row per rate.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
rates=${CAPACITY_RATES:-1000 2000 4000}
secs=${CAPACITY_SECS:-30}

dir=$(mktemp -d)
go build -o "$dir/callflow" ./cmd/callflow
go build -o "$dir/nats-server" github.com/nats-io/nats-server/v2
source scripts/clickhouse.sh
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; clickhouse_stop; rm -rf "$dir"; }
trap cleanup EXIT
clickhouse_start >/dev/null
ch_pid=$(pgrep -f "clickhouse-server.*$CALLFLOW_TEST_CLICKHOUSE_DIR" | head -1 || true)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
nats_port=$(free_port); http=$(free_port); admin=$(free_port)
nats="nats://127.0.0.1:$nats_port"
"$dir/nats-server" -js -a 127.0.0.1 -p "$nats_port" -sd "$dir/js" > "$dir/nats.log" 2>&1 &
nats_pid=$!; pids+=("$nats_pid")
sleep 1
# ready ADMIN_ADDR: waits for a role's /readyz.
ready() { for _ in $(seq 1 300); do "$dir/callflow" probe "http://$1/readyz" >/dev/null 2>&1 && return; sleep 0.1; done; echo "not ready: $1"; exit 1; }
"$dir/callflow" ingest --nats-url "$nats" --http-addr "127.0.0.1:$http" --admin-addr "127.0.0.1:$admin" \
  --data-dir "$dir/ingest" --log-format json > "$dir/ingest.log" 2>&1 &
ingest_pid=$!; pids+=("$ingest_pid")
dadmin=$(free_port)
"$dir/callflow" decider --nats-url "$nats" --deciders 2 --admin-addr "127.0.0.1:$dadmin" --log-format json > "$dir/decider.log" 2>&1 &
decider_pid=$!; pids+=("$decider_pid")
aadmin=$(free_port)
"$dir/callflow" archiver --nats-url "$nats" --admin-addr "127.0.0.1:$aadmin" --clickhouse-addr "$CALLFLOW_TEST_CLICKHOUSE" \
  --clickhouse-database capacity --log-format json > "$dir/archiver.log" 2>&1 &
archiver_pid=$!; pids+=("$archiver_pid")
ready "127.0.0.1:$admin"; ready "127.0.0.1:$dadmin"; ready "127.0.0.1:$aadmin"

# cpu PID: the process's user+system CPU time in clock ticks.
cpu() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
tck=$(getconf CLK_TCK)
names=(nats-server ingest decider archiver clickhouse)
procs=("$nats_pid" "$ingest_pid" "$decider_pid" "$archiver_pid" "${ch_pid:-$$}")
echo "CPU seconds per 1,000 calls, by process (open loop, ${secs}s a rate; bench = the load generator)"
printf '| rate/s | answered | p99 ms | %s | bench |\n' "$(IFS='|'; echo "${names[*]}" | sed 's/|/ | /g')"
for rate in $rates; do
  before=(); for p in "${procs[@]}"; do before+=("$(cpu "$p")"); done
  "$dir/callflow" bench --url "http://127.0.0.1:$http/vca" --admin-url "http://127.0.0.1:$admin" --rate "$rate" \
    --duration "${secs}s" --sessions 100 --json > "$dir/bench-$rate.json" 2> "$dir/bench-$rate.err"
  sleep 2 # the archiver's last batch
  row="| $rate"
  answered=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['system']['answered'])" "$dir/bench-$rate.json")
  p99=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['system']['latency_ms']['p99'],2))" "$dir/bench-$rate.json" 2>/dev/null || echo "?")
  row+=" | $answered | $p99"
  for i in "${!procs[@]}"; do
    used=$(( $(cpu "${procs[$i]}") - ${before[$i]} ))
    row+=" | $(python3 -c "print(round($used/$tck/$answered*1000, 3))")"
  done
  benchcpu=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(round(r['system']['bench_cpu_cores']*$secs/$answered*1000,3))" "$dir/bench-$rate.json" 2>/dev/null || echo "?")
  echo "$row | $benchcpu |"
done
