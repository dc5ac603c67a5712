#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: every target of the performance issue measured
# beside its baseline from the same run, on this machine.
#
#   scripts/bench.sh                 # the full table (about 25 minutes)
#   BENCH_QUICK=1 scripts/bench.sh   # shorter runs, for a smoke test
#   BENCH_SOAK=10m scripts/bench.sh  # also 5000/s for 10 minutes: does serve's
#                                    # memory stay flat? (BENCH_SOAK_DUPLICATES
#                                    # sets the duplicate window, default the
#                                    # stream's, 2 minutes)
#
# Results (JSON, profiles) go to ${BENCH_OUT:-bench-results}/; the summary
# table is printed at the end. Load goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
out=${BENCH_OUT:-bench-results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
quick=${BENCH_QUICK:-}
open_secs=60s; closed_secs=20s; fallback_secs=30s; records=1000000
if [ -n "$quick" ]; then open_secs=10s; closed_secs=5s; fallback_secs=5s; records=100000; fi

bin=$(mktemp -d)/callflow
go build -o "$bin" ./cmd/callflow
source scripts/clickhouse.sh
data=$(mktemp -d)
serve_pid=""
sep_pids=()
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null
  for p in "${sep_pids[@]}"; do kill "$p" 2>/dev/null; done
  clickhouse_stop; rm -rf "$data"
}
trap cleanup EXIT
clickhouse_start

gc_memlimit=${BENCH_MEMORY_LIMIT:-300MiB}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
http=$(free_port); admin=$(free_port); nats=$(free_port); pprof=$(free_port)

# start_serve [flags]: a fresh serve (new data directory), with the
# environment assignments in $serve_env (Go runtime settings). Without flags it
# runs no archiver: ClickHouse on the same two cores as the load generator
# and serve would measure their fight for CPU, not the call path; the
# archive has runs of its own below.
start_serve() {
  [ -n "$serve_pid" ] && { kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; }
  rm -rf "${data:?}"/*
  env ${serve_env:-} "$bin" serve --data-dir "$data" --http-addr "127.0.0.1:$http" --admin-addr "127.0.0.1:$admin" \
    --nats-listen "127.0.0.1:$nats" --clickhouse-addr "" --pprof "127.0.0.1:$pprof" --log-format json "$@" > "$out/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 1 100); do "$bin" probe "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "serve did not become ready"; tail "$out/serve.log"; exit 1
}
bench() { "$bin" bench --url "http://127.0.0.1:$http/vca" --admin-url "http://127.0.0.1:$admin" --json "$@"; }

echo "== go benchmarks: parser, encoder, decision"
go test -run XXX -bench 'ParseEvent$|EncodeResponse$|Decide' -benchmem ./wire/ ./decider/ | tee "$out/gobench.txt"

echo "== serve (embedded NATS, 2 deciders)"
start_serve

echo "== handler allocations in the ingest process alone (NATS and deciders in serve)"
CALLFLOW_BENCH_NATS_URL="nats://127.0.0.1:$nats" go test -run XXX -bench 'HandlerRemote' -benchmem -benchtime 20000x ./ingest/ | tee "$out/handler.txt"

echo "== closed loop, full path, beside the bare fasthttp baseline and the straightforward chain"
start_serve
bench --rate 0 --connections 32 --duration "$closed_secs" --warmup 3s --baseline --chain > "$out/closed.json"

echo "== open loop 5000/s, every answered id audited in the stream, memory of serve"
start_serve
# The profile starts once the baseline and both warm-ups are done.
(sleep $(( ${open_secs%s} + 8 )); curl -s -o "$out/cpu.prof" "http://127.0.0.1:$pprof/debug/pprof/profile?seconds=10") &
profile_pid=$!
bench --rate 5000 --duration "$open_secs" --warmup 3s --baseline --audit --nats-url "nats://127.0.0.1:$nats" \
  --pids "$serve_pid" > "$out/open.json"
wait "$profile_pid"

echo "== open loop 5000/s again, with --memory-limit $gc_memlimit (GC percent 400 under a limit: what a container's limit gives by default)"
start_serve --memory-limit "$gc_memlimit"
bench --rate 5000 --duration "$open_secs" --warmup 3s --baseline --pids "$serve_pid" > "$out/open_gc.json"

# Overload: offered 1.5x what the closed loop answered, on 1024 connections,
# so that the queue forms in serve, not in the generator's connections: does
# serve keep answering at its capacity, and is every answered call recorded?
overload_rate=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["system"]["throughput"] * 1.5))' "$out/closed.json")
echo "== overload: open loop at $overload_rate/s (1.5x the closed loop), 1024 connections, audited in the stream"
start_serve
bench --rate "$overload_rate" --connections 1024 --duration "$closed_secs" --warmup 2s --audit --nats-url "nats://127.0.0.1:$nats" \
  --pids "$serve_pid" > "$out/overload.json"

# Latency by offered rate, one serve, rising: at what rate does the p99 target
# still hold on this machine (generator, serve and NATS on the same cores)?
sweep_rates=${BENCH_SWEEP_RATES:-1000 2000 3000 5000 10000 15000}
sweep_secs=15s; [ -n "$quick" ] && sweep_secs=5s
echo "== latency by offered rate: $sweep_rates calls/s, $sweep_secs each"
start_serve
warm=10s # a fresh serve's first seconds (a small heap collected often) are not the steady state
for r in $sweep_rates; do
  bench --rate "$r" --duration "$sweep_secs" --warmup "$warm" --pids "$serve_pid" > "$out/sweep_$r.json"
  warm=2s
done

echo "== breaker open: no deciders, fallback at 5000/s (default collector, then with --memory-limit $gc_memlimit)"
start_serve --deciders 0 --breaker-open-for 1h
bench --rate 5000 --duration "$fallback_secs" --warmup 3s --baseline --sessions 0 > "$out/fallback.json"
start_serve --deciders 0 --breaker-open-for 1h --memory-limit "$gc_memlimit"
bench --rate 5000 --duration "$fallback_secs" --warmup 3s --baseline --sessions 0 > "$out/fallback_gc.json"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=""

echo "== separate processes: nats-server, ingest and decider each a process of their own (closed loop, then 5000/s)"
natsbin=$(dirname "$bin")/nats-server
go build -o "$natsbin" github.com/nats-io/nats-server/v2
sep=$(mktemp -d)
sep_pids=()
sep_stop() { for p in "${sep_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; sep_pids=(); rm -rf "${sep:?}"/*; }
sep_start() {
  "$natsbin" -a 127.0.0.1 -p "$nats" -js -sd "$sep/js" > "$out/sep-nats.log" 2>&1 & sep_pids+=($!)
  sleep 1
  "$bin" decider --nats-url "nats://127.0.0.1:$nats" --admin-addr "127.0.0.1:$(free_port)" --log-format json > "$out/sep-decider.log" 2>&1 & sep_pids+=($!)
  "$bin" ingest --nats-url "nats://127.0.0.1:$nats" --data-dir "$sep/ingest" --http-addr "127.0.0.1:$http" --admin-addr "127.0.0.1:$admin" --log-format json > "$out/sep-ingest.log" 2>&1 & sep_pids+=($!)
  for _ in $(seq 1 100); do "$bin" probe "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "ingest did not become ready"; tail "$out/sep-ingest.log"; exit 1
}
sep_start
bench --rate 0 --connections 32 --duration "$closed_secs" --warmup 3s --baseline --pids "$(IFS=,; echo "${sep_pids[*]}")" > "$out/sep_closed.json"
sep_stop; sep_start
bench --rate 5000 --duration "$open_secs" --warmup 3s --baseline --pids "$(IFS=,; echo "${sep_pids[*]}")" > "$out/sep_open.json"
sep_stop; rmdir "$sep"

echo "== archive at 5000/s: serve with its archiver into ClickHouse (same machine), audited in ClickHouse"
start_serve --clickhouse-addr "$CALLFLOW_TEST_CLICKHOUSE"
bench --rate 5000 --duration "$open_secs" --warmup 3s --audit --nats-url "nats://127.0.0.1:$nats" \
  --clickhouse-addr "$CALLFLOW_TEST_CLICKHOUSE" --pids "$serve_pid" > "$out/archive_live.json"
curl -s "http://127.0.0.1:$admin/metrics" > "$out/metrics.txt"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; serve_pid=""

# Both row shapes (the benchmark's own, and realistic ones: UUID ids, bodies of
# 600-730 bytes, callflows of about 200), each beside the fastest clickhouse-go
# insert of the same rows in a process of its own (TestInsertBaseline: batch
# size, connections and compression tried); rows/s, MB/s and the server's CPU
# per million rows, CPU profiles of the replays in $out. The replay uses the
# archiver's defaults (2 inserts in flight, 20000-row batches, lz4: on this
# loopback, no compression cost the client more CPU than lz4, in the
# baseline's runs too).
archive_realistic=300000; [ -n "$quick" ] && archive_realistic=50000
echo "== archive: replay of $records records and $archive_realistic realistic ones, each beside its own-process baseline"
CALLFLOW_BENCH_RECORDS=$records CALLFLOW_BENCH_REALISTIC_RECORDS=$archive_realistic CALLFLOW_BENCH_OUT="$out/archive.json" \
  CALLFLOW_BENCH_PROFILE="$out" go test -count=1 -run TestArchiveThroughput -v -timeout 60m ./archiver/ > "$out/archive.txt"

if [ -n "${BENCH_SOAK:-}" ]; then
  window=${BENCH_SOAK_DUPLICATES:-2m}
  echo "== memory soak: 5000/s for $BENCH_SOAK, duplicate window $window, audited in the stream"
  start_serve --stream-duplicates "$window"
  bench --soak --rate 5000 --duration "$BENCH_SOAK" --nats-url "nats://127.0.0.1:$nats" --pids "$serve_pid" > "$out/soak.json"
fi

BENCH_GC_MEMLIMIT=$gc_memlimit python3 scripts/bench_table.py "$out"
