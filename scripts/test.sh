#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, vet, then every package's
# tests with the race detector against real servers: NATS in-process, a
# throwaway ClickHouse (Debian's clickhouse-server, installed when missing)
# and a throwaway ClickHouse cluster (four servers and Debian's zookeeper)
# started here on free loopback ports and removed on exit.
#
# Then every native fuzz test runs briefly (scripts/fuzz.sh, FUZZTIME=5s).
#
# Usage: scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

# shellcheck source=scripts/clickhouse.sh
source scripts/clickhouse.sh
# shellcheck source=scripts/clickhouse-cluster.sh
source scripts/clickhouse-cluster.sh
trap 'clickhouse_cluster_stop; clickhouse_stop' EXIT
clickhouse_start
# Two shards of two replicas and a ZooKeeper, for the cluster tests.
clickhouse_cluster_start

echo "== go test -race"
go test -race -count=1 -timeout 25m "$@" ./...

# Each fuzzer a few seconds on top of its seed corpus (testdata/fuzz/).
echo "== fuzz"
FUZZTIME=${FUZZTIME:-5s} scripts/fuzz.sh
