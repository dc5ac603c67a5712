#!/usr/bin/env bash
# The reliability soak of RELIABILITY.md: a steady open-loop load through
# separate roles (a NATS server with JetStream, ingest, deciders, archiver,
# a throwaway ClickHouse), with the NATS server stopped for a few seconds
# and started again a third of the way in, and the archiver killed with
# SIGKILL and restarted two thirds of the way in. `callflow bench --soak`
# then audits that every answered event is in the stream and in ClickHouse
# (FINAL) exactly once and reports the peak memory of each role (the
# archiver's until it is killed).
#
#   scripts/soak.sh                         # 10 minutes at 500 calls/s
#   SOAK_DURATION=2m SOAK_RATE=300 scripts/soak.sh
#
# Output (report JSON, role logs) goes to ${SOAK_OUT:-bench-results/soak}/.
# Load goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
duration=${SOAK_DURATION:-10m}
rate=${SOAK_RATE:-500}
outage=${SOAK_NATS_OUTAGE:-5}
out=${SOAK_OUT:-bench-results/soak}
mkdir -p "$out"
out=$(cd "$out" && pwd)

secs=$(python3 -c "import re,sys; d='$duration'; m=re.fullmatch(r'(\d+)(s|m|h)', d) or sys.exit('SOAK_DURATION: like 90s, 10m or 1h'); print(int(m[1])*{'s':1,'m':60,'h':3600}[m[2]])")

tmp=$(mktemp -d)
bin=$tmp/callflow
natsbin=$tmp/nats-server
go build -o "$bin" ./cmd/callflow
# The NATS server of the module graph, as a separate process that can be
# stopped and started again.
go build -o "$natsbin" github.com/nats-io/nats-server/v2

source scripts/clickhouse.sh
cleanup() {
  # Every process of the soak runs a binary under $tmp, restarted ones too;
  # ClickHouse is stopped before waiting, as it is a job of this shell too.
  pkill -f "$tmp/" 2>/dev/null || true
  clickhouse_stop
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
clickhouse_start

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
nats_port=$(free_port); http=$(free_port); admin=$(free_port)
nats_url=nats://127.0.0.1:$nats_port

start_nats() {
  "$natsbin" -a 127.0.0.1 -p "$nats_port" -js -sd "$tmp/jetstream" >>"$out/nats.log" 2>&1 &
  nats_pid=$!
  for _ in $(seq 1 100); do
    (echo > "/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nats-server did not start"; tail "$out/nats.log"; exit 1
}
start_archiver() {
  "$bin" archiver --nats-url "$nats_url" --clickhouse-addr "$CALLFLOW_TEST_CLICKHOUSE" \
    --admin-addr "127.0.0.1:$(free_port)" --archiver-ack-wait 10s --log-format json >>"$out/archiver.log" 2>&1 &
  arch_pid=$!
}
wait_ready() {
  for _ in $(seq 1 300); do
    curl -fs "http://$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "not ready: $1"; exit 1
}

: > "$out/nats.log"
start_nats
"$bin" ingest --nats-url "$nats_url" --http-addr "127.0.0.1:$http" --admin-addr "127.0.0.1:$admin" \
  --data-dir "$tmp/ingest" --log-format json >"$out/ingest.log" 2>&1 &
ingest_pid=$!
dadmin=127.0.0.1:$(free_port)
"$bin" decider --nats-url "$nats_url" --admin-addr "$dadmin" --deciders 2 --log-format json >"$out/decider.log" 2>&1 &
decider_pid=$!
: > "$out/archiver.log"
start_archiver
wait_ready "127.0.0.1:$admin"
wait_ready "$dadmin"

echo "== soak: $rate calls/s for $duration; NATS stopped for ${outage}s at $((secs / 3))s, archiver killed at $((2 * secs / 3))s"
(
  sleep $((secs / 3))
  echo "== $(date +%T) stopping NATS for ${outage}s"
  kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
  sleep "$outage"
  start_nats
  echo "== $(date +%T) NATS started again"
  sleep $((secs / 3))
  echo "== $(date +%T) killing the archiver (SIGKILL) and starting it again"
  kill -9 "$arch_pid"; wait "$arch_pid" 2>/dev/null || true
  start_archiver
) &
faults=$!

set +e
"$bin" bench --soak --url "http://127.0.0.1:$http/vca" --admin-url "http://127.0.0.1:$admin" \
  --rate "$rate" --duration "$duration" --sessions 200 --nats-url "$nats_url" \
  --clickhouse-addr "$CALLFLOW_TEST_CLICKHOUSE" --audit-wait 3m \
  --pids "$ingest_pid,$decider_pid,$arch_pid" --json >"$out/report.json" 2>"$out/bench.log"
status=$?
set -e
wait "$faults" 2>/dev/null || true
tail -5 "$out/bench.log"
python3 - "$out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["system"]
print(f"answered {s['answered']} of {s['requests']} requests; errors {s['errors']}; answers {s['answers']}")
print(f"latency ms: p50 {s['latency_ms'].get('p50')} p99 {s['latency_ms'].get('p99')} p99.9 {s['latency_ms'].get('p99_9')} max {s['latency_ms'].get('max')}")
a = r.get("audit") or {}
for k in ("stream", "clickhouse"):
    v = a.get(k)
    if v:
        print(f"{k}: records {v['records']} found {v['found']} missing {v['missing']} duplicates {v['duplicates']} extra {v['extra']} {v.get('error', '')}")
for p in r.get("processes") or []:
    print(f"process {p}")
PY
echo "== logs and report in $out"
exit $status
