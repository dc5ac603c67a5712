package archiver

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// TestArchiveThroughput measures replaying a backlog into ClickHouse beside
// the machine's ceiling measured in the same run: a direct clickhouse-go
// insert of the same rows, already built, into the same server. It is a
// measurement, not a check (no timing is asserted), and runs only when
// CALLFLOW_BENCH_RECORDS is set (scripts/bench.sh sets it to 1000000);
// CALLFLOW_BENCH_OUT names a JSON file for the results.
func TestArchiveThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CALLFLOW_BENCH_RECORDS"))
	if n <= 0 {
		t.Skip("CALLFLOW_BENCH_RECORDS is not set: a measurement, run by scripts/bench.sh")
	}
	e := newEnv(t, chtest.Addr(t))
	ctx := context.Background()

	// The backlog: n records as the ingestor writes them.
	datas := make([][]byte, n)
	for i := range n {
		_, _, datas[i] = record(i, wire.EventCallAction)
	}
	start := time.Now()
	for i, data := range datas {
		subject, id, _ := record(i, wire.EventCallAction)
		if _, err := e.js.PublishAsync(subject, data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		if i%10000 == 9999 {
			select {
			case <-e.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatal("publishing the backlog stalled")
			}
		}
	}
	<-e.js.PublishAsyncComplete()
	t.Logf("backlog of %d records published in %s", n, time.Since(start).Round(time.Millisecond))

	cfg := e.config(t)
	cfg.Batch.MaxRows, cfg.Batch.MaxBytes = DefaultMaxRows, DefaultMaxBytes
	cfg.ClickHouse.Compression = os.Getenv("CALLFLOW_BENCH_COMPRESSION") // empty: the default, lz4
	a, err := Open(e.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := applySchema(ctx, a.conn, e.db, a.log); err != nil {
		t.Fatal(err)
	}

	// Ceiling: the same rows, built beforehand, inserted directly.
	rows := make([]row, n)
	for i, data := range datas {
		if rows[i], err = newRow(data, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	start = time.Now()
	for i := 0; i < n; i += cfg.Batch.MaxRows {
		if err := a.w.insert(ctx, rows[i:min(i+cfg.Batch.MaxRows, n)]); err != nil {
			t.Fatal(err)
		}
	}
	direct := time.Since(start)
	if err := a.conn.Exec(ctx, "TRUNCATE TABLE "+e.db+".call_events"); err != nil {
		t.Fatal(err)
	}
	rows = nil

	// The archiver: read from JetStream, parse, batch, insert.
	start = time.Now()
	done, err := a.Replay(ctx, ReplayConfig{StartSeq: 1})
	if err != nil || done != uint64(n) {
		t.Fatalf("replay: %d of %d, %v", done, n, err)
	}
	replay := time.Since(start)
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", uint64(n))

	res := map[string]any{
		"records":               n,
		"direct_seconds":        direct.Seconds(),
		"direct_records_per_s":  float64(n) / direct.Seconds(),
		"archive_seconds":       replay.Seconds(),
		"archive_records_per_s": float64(n) / replay.Seconds(),
		"ratio_to_direct":       direct.Seconds() / replay.Seconds(),
	}
	t.Logf("direct insert: %.0f records/s; archiver replay: %.0f records/s; ratio %.2f",
		res["direct_records_per_s"], res["archive_records_per_s"], res["ratio_to_direct"])
	if out := os.Getenv("CALLFLOW_BENCH_OUT"); out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
