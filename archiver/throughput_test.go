package archiver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestArchiveThroughput measures replaying a backlog into ClickHouse beside
// the baseline measured in the same run: the fastest insert of the same
// rows a clickhouse-go user could write, in a process of its own
// (TestInsertBaseline). Both row shapes are measured (see benchRecord):
// CALLFLOW_BENCH_RECORDS of the benchmark's own and
// CALLFLOW_BENCH_REALISTIC_RECORDS (default the same, at most 300,000) of
// realistic ones. It is a measurement, not a check (no timing is asserted),
// and runs only when CALLFLOW_BENCH_RECORDS is set (scripts/bench.sh sets
// it).
//
// The replay's settings: CALLFLOW_BENCH_COMPRESSION (empty: the default,
// lz4), CALLFLOW_BENCH_INSERTS (inserts in flight, default DefaultInserts),
// CALLFLOW_BENCH_BATCH (rows per batch, default DefaultMaxRows),
// CALLFLOW_BENCH_BATCH_MB (MiB per batch, default DefaultMaxBytes).
// CALLFLOW_BENCH_OUT names a JSON file for the results;
// CALLFLOW_BENCH_PROFILE a directory for a CPU profile of each replay.
// While working on the archiver: CALLFLOW_BENCH_SHAPES (bench,realistic)
// picks shapes, CALLFLOW_BENCH_NO_BASELINE=1 skips the baseline.
func TestArchiveThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CALLFLOW_BENCH_RECORDS"))
	if n <= 0 {
		t.Skip("CALLFLOW_BENCH_RECORDS is not set: a measurement, run by scripts/bench.sh")
	}
	realistic, _ := strconv.Atoi(os.Getenv("CALLFLOW_BENCH_REALISTIC_RECORDS"))
	if realistic <= 0 {
		realistic = min(n, 300000)
	}
	res := map[string]any{}
	for _, s := range []struct {
		shape string
		n     int
	}{{shapeBench, n}, {shapeRealistic, realistic}} {
		if only := os.Getenv("CALLFLOW_BENCH_SHAPES"); only != "" && !slices.Contains(strings.Split(only, ","), s.shape) {
			continue
		}
		t.Run(s.shape, func(t *testing.T) { res[s.shape] = archiveThroughput(t, s.shape, s.n) })
	}
	if out := os.Getenv("CALLFLOW_BENCH_OUT"); out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// archiveThroughput publishes n records of shape, runs the baseline on
// them, then replays them.
func archiveThroughput(t *testing.T, shape string, n int) map[string]any {
	e := newEnv(t, chtest.Addr(t))
	ctx := context.Background()

	start := time.Now()
	bytes := 0
	for i := range n {
		subject, id, data := benchRecord(shape, i)
		bytes += len(data)
		if _, err := e.js.PublishAsync(subject, data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		// Below the client's limit of outstanding async publishes (4000),
		// beyond which a publish fails after a short stall.
		if i%2000 == 1999 {
			select {
			case <-e.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatal("publishing the backlog stalled")
			}
		}
	}
	<-e.js.PublishAsyncComplete()
	t.Logf("backlog of %d %s records (%.0f MB) published in %s", n, shape, float64(bytes)/1e6, time.Since(start).Round(time.Millisecond))

	var best insertResult
	var runs []insertResult
	if os.Getenv("CALLFLOW_BENCH_NO_BASELINE") == "" {
		best, runs = runBaseline(t, shape, n)
	}

	cfg := e.config(t)
	cfg.Batch.MaxRows, cfg.Batch.MaxBytes = DefaultMaxRows, DefaultMaxBytes
	if b, _ := strconv.Atoi(os.Getenv("CALLFLOW_BENCH_BATCH")); b > 0 {
		cfg.Batch.MaxRows = b
	}
	if mb, _ := strconv.Atoi(os.Getenv("CALLFLOW_BENCH_BATCH_MB")); mb > 0 {
		cfg.Batch.MaxBytes = mb << 20
	}
	cfg.Inserts, _ = strconv.Atoi(os.Getenv("CALLFLOW_BENCH_INSERTS"))
	cfg.ClickHouse.Compression = os.Getenv("CALLFLOW_BENCH_COMPRESSION")
	a, err := Open(e.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.applySchema(ctx); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("CALLFLOW_BENCH_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, "archive-"+shape+".prof"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	runtime.GC()
	m := startMeter()
	done, err := a.Replay(ctx, ReplayConfig{StartSeq: 1})
	if err != nil || done != uint64(n) {
		t.Fatalf("replay: %d of %d, %v", done, n, err)
	}
	replay := m.stop(n, bytes)
	replay.Batch, replay.Conns, replay.Compression = a.cfg.Batch.MaxRows, a.cfg.Inserts, a.cfg.ClickHouse.Compression
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", uint64(n))

	ratio := replay.RowsPerS / best.RowsPerS
	t.Logf("%s baseline (own process): %s", shape, best)
	t.Logf("%s archiver replay: %s", shape, replay)
	t.Logf("%s ratio to baseline: %.2f", shape, ratio)
	return map[string]any{"records": n, "bytes": bytes, "baseline": best, "baseline_runs": runs, "archive": replay, "ratio": ratio}
}
