package archiver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/chtest"
)

// The archive benchmark's baseline is the fastest insert of the benchmark's
// rows a clickhouse-go user could write: TestInsertBaseline, run by
// TestArchiveThroughput (runBaseline) as a process of its own, so that it
// shares nothing with the process holding the JetStream backlog. It parses
// every record and builds the columns before the clock starts, then times
// only PrepareBatch, a typed-slice append per column (batch.Column(i).
// Append) and Send, trying batch sizes, connections in flight and
// compression, each into a fresh database with the archiver's schema (its
// views included).
const (
	// envBaseline names the row shape TestInsertBaseline inserts; it runs
	// only when set.
	envBaseline = "CALLFLOW_BENCH_BASELINE"
	// envBaselineOut is the file it writes its results to (JSON).
	envBaselineOut = "CALLFLOW_BENCH_BASELINE_OUT"
	// envBaselineGrid set to "full" tries every combination of
	// baselineBatches, baselineConns and baselineCompressions; otherwise
	// one knob at a time, each from the best of the one before
	// (compression, then batch size, then connections).
	envBaselineGrid = "CALLFLOW_BENCH_GRID"
)

var (
	baselineBatches      = []int{10000, 20000, 50000, 100000}
	baselineConns        = []int{1, 2, 4}
	baselineCompressions = []string{"none", "lz4"}
)

// insertResult is one timed insert of a whole backlog.
type insertResult struct {
	Batch       int     `json:"batch"`
	Conns       int     `json:"conns"`
	Compression string  `json:"compression"`
	Rows        int     `json:"rows"`
	Seconds     float64 `json:"seconds"`
	RowsPerS    float64 `json:"rows_per_s"`
	// MBPerS is the records' bytes (the messages as the stream holds
	// them) per second.
	MBPerS float64 `json:"mb_per_s"`
	// ServerCPUPerM is the ClickHouse server's CPU seconds (user and
	// system) per million rows over the insert: -1 when its process is
	// unknown.
	ServerCPUPerM float64 `json:"server_cpu_s_per_m_rows"`
	// ClientCPUPerM is the inserting process's CPU seconds per million
	// rows (for the replay, with the NATS server it embeds).
	ClientCPUPerM float64 `json:"client_cpu_s_per_m_rows"`
	// ClientFaultsPerRow is the inserting process's minor page faults per
	// row: fresh memory the kernel had to map (and zero).
	ClientFaultsPerRow float64 `json:"client_faults_per_row"`
}

func (r insertResult) String() string {
	return fmt.Sprintf("batch %d, %d conns, compression %s: %.0f rows/s, %.1f MB/s, server CPU %.2f s/M rows, client CPU %.2f s/M rows, %.2f page faults/row",
		r.Batch, r.Conns, r.Compression, r.RowsPerS, r.MBPerS, r.ServerCPUPerM, r.ClientCPUPerM, r.ClientFaultsPerRow)
}

// meter measures the time and CPU of one insert.
type meter struct {
	start          time.Time
	server, client time.Duration
	faults         int64
}

func startMeter() meter {
	client, faults := clientCPU()
	return meter{start: time.Now(), server: serverCPU(), client: client, faults: faults}
}

func (m meter) stop(rows, bytes int) insertResult {
	took := time.Since(m.start)
	server := serverCPU()
	client, faults := clientCPU()
	r := insertResult{Rows: rows, Seconds: took.Seconds(), RowsPerS: float64(rows) / took.Seconds(),
		MBPerS:             float64(bytes) / 1e6 / took.Seconds(),
		ClientCPUPerM:      (client - m.client).Seconds() / (float64(rows) / 1e6),
		ClientFaultsPerRow: float64(faults-m.faults) / float64(rows), ServerCPUPerM: -1}
	if m.server >= 0 && server >= 0 {
		r.ServerCPUPerM = (server - m.server).Seconds() / (float64(rows) / 1e6)
	}
	return r
}

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's times (100
// on every architecture Go supports there).
const clockTick = 10 * time.Millisecond

// serverCPU is the CPU time (user and system) the ClickHouse server has
// used, read from /proc/<pid>/stat of the process scripts/clickhouse.sh
// started (its pid file is in CALLFLOW_TEST_CLICKHOUSE_DIR); -1 when
// unknown.
func serverCPU() time.Duration {
	pid, err := os.ReadFile(filepath.Join(os.Getenv("CALLFLOW_TEST_CLICKHOUSE_DIR"), "pid"))
	if err != nil || os.Getenv("CALLFLOW_TEST_CLICKHOUSE_DIR") == "" {
		return -1
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing one. utime and stime are fields 14
	// and 15.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * clockTick
}

// clientCPU is this process's CPU time (user and system) and its minor
// page faults.
func clientCPU() (time.Duration, int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt
}

// runBaseline runs TestInsertBaseline for n records of shape in a process
// of its own (this test binary again) and returns its best result and
// every result.
func runBaseline(t *testing.T, shape string, n int) (insertResult, []insertResult) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "baseline.json")
	cmd := exec.Command(os.Args[0], "-test.run=^TestInsertBaseline$", "-test.count=1", "-test.v", "-test.timeout=30m")
	cmd.Env = append(os.Environ(), envBaseline+"="+shape, envBaselineOut+"="+out, "CALLFLOW_BENCH_RECORDS="+strconv.Itoa(n))
	logs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("baseline process: %v\n%s", err, logs)
	}
	for _, l := range strings.Split(string(logs), "\n") {
		if strings.Contains(l, "baseline_test.go") {
			t.Log(strings.TrimSpace(l))
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var runs []insertResult
	if err := json.Unmarshal(b, &runs); err != nil {
		t.Fatal(err)
	}
	return fastest(runs), runs
}

func fastest(runs []insertResult) insertResult {
	var best insertResult
	for _, r := range runs {
		if r.RowsPerS > best.RowsPerS {
			best = r
		}
	}
	return best
}

// TestInsertBaseline is the baseline process (see envBaseline).
func TestInsertBaseline(t *testing.T) {
	shape := os.Getenv(envBaseline)
	if shape == "" {
		t.Skip(envBaseline + " is not set: the archive benchmark's baseline, run by TestArchiveThroughput in a process of its own")
	}
	n, _ := strconv.Atoi(os.Getenv("CALLFLOW_BENCH_RECORDS"))
	addr := chtest.Addr(t)
	rows := make([]row, n)
	bytes := 0
	for i := range n {
		_, _, data := benchRecord(shape, i)
		var err error
		if rows[i], err = newRow(data, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		bytes += len(data)
	}
	var runs []insertResult
	run := func(batch, conns int, compression string) {
		for _, r := range runs {
			if r.Batch == batch && r.Conns == conns && r.Compression == compression {
				return // measured already
			}
		}
		r := baselineInsert(t, addr, rows, bytes, batch, conns, compression)
		t.Logf("%s: %s", shape, r)
		runs = append(runs, r)
	}
	if os.Getenv(envBaselineGrid) == "full" {
		for _, c := range baselineCompressions {
			for _, b := range baselineBatches {
				for _, k := range baselineConns {
					run(b, k, c)
				}
			}
		}
	} else {
		for _, c := range baselineCompressions {
			run(50000, 2, c)
		}
		c := fastest(runs).Compression
		for _, b := range baselineBatches {
			run(b, 2, c)
		}
		b := fastest(runs).Batch
		for _, k := range baselineConns {
			run(b, k, c)
		}
	}
	t.Logf("%s: best: %s", shape, fastest(runs))
	out, _ := json.MarshalIndent(runs, "", "  ")
	if err := os.WriteFile(os.Getenv(envBaselineOut), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// baselineInsert inserts rows into a fresh database in batches of batch
// rows, conns at once, and times it.
func baselineInsert(t *testing.T, addr string, rows []row, bytes, batch, conns int, compression string) insertResult {
	t.Helper()
	ctx := context.Background()
	var id [6]byte
	_, _ = rand.Read(id[:])
	db := "callflow_baseline_" + hex.EncodeToString(id[:])
	conn, err := connect(ClickHouseConfig{Addrs: []string{addr}, Database: db, Compression: compression,
		DialTimeout: 5 * time.Second, QueryTimeout: 5 * time.Minute}, conns)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := applySchema(ctx, conn, db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db) }()
	// Every connection open before the clock starts.
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() { defer wg.Done(); _ = conn.Ping(ctx) }()
	}
	wg.Wait()
	var prepared []eventBlock
	for lo := 0; lo < len(rows); lo += batch {
		prepared = append(prepared, newEventBlock(rows[lo:min(lo+batch, len(rows))]))
	}
	defer func() {
		for _, b := range prepared {
			b.release()
		}
	}()
	insert := insertEvents(db)
	work := make(chan eventBlock)
	errs := make(chan error, conns)
	m := startMeter()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				batch, err := conn.PrepareBatch(ctx, insert)
				if err == nil {
					if err = b.appendTo(batch); err == nil {
						err = batch.Send()
					}
					_ = batch.Close()
				}
				if err != nil {
					errs <- err
					for range work {
					}
					return
				}
			}
		}()
	}
	for _, b := range prepared {
		work <- b
	}
	close(work)
	wg.Wait()
	r := m.stop(len(rows), bytes)
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	r.Batch, r.Conns, r.Compression = batch, conns, compression
	var got uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".call_events").Scan(&got); err != nil || got != uint64(len(rows)) {
		t.Fatalf("baseline stored %d rows of %d: %v", got, len(rows), err)
	}
	return r
}
