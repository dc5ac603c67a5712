package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"github.com/valyala/fasthttp"
)

// TestRunWithBaseline runs the whole command against a baseline standing
// in for the system (no sessions): both reports, the ratio, and one JSON
// object on stdout.
func TestRunWithBaseline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cfg := Config{
		URL: baseline(t), Rate: 200, Duration: 500 * time.Millisecond, Connections: 8, Timeout: time.Second, Drain: time.Second,
		Mix: DefaultMix, Baseline: true, JSON: true, RunID: "runtest", ReportEvery: 200 * time.Millisecond,
		PIDs: []int{os.Getpid()}, Warmup: 200 * time.Millisecond,
	}
	rep, err := Run(ctx, cfg, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var got Report
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
	}
	if got.RunID != "runtest" || got.System == nil || got.Baseline == nil || got.Ratio == nil || got.Sessions != nil {
		t.Fatalf("report: %s", stdout.String())
	}
	for _, r := range []*Result{got.System, got.Baseline} {
		if r.Requests != 100 || r.Answered != 100 || r.Latency.Count != 100 || r.Latency.P99 <= 0 || r.Mode != "open" {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	if got.Ratio.Throughput < 0.8 || got.Ratio.Throughput > 1.2 {
		t.Errorf("same load, same server: throughput ratio %v, want about 1", got.Ratio.Throughput)
	}
	if got.Ratio.P99.System != got.System.Latency.P99 || got.Ratio.P99.Baseline != got.Baseline.Latency.P99 {
		t.Errorf("ratio p99 %+v", got.Ratio.P99)
	}
	if len(got.Processes) != 1 || got.Processes[0].PeakRSS == 0 || got.Processes[0].PID != os.Getpid() {
		t.Errorf("processes %+v", got.Processes)
	}
	if got.Machine.CPUs == 0 || got.Config.Mode != "open" {
		t.Errorf("machine %+v config %+v", got.Machine, got.Config)
	}
	if rep.System.Answered != got.System.Answered {
		t.Errorf("returned and printed reports differ")
	}
	if !strings.Contains(stderr.String(), "sent ") {
		t.Errorf("no progress lines on stderr:\n%s", stderr.String())
	}
	// A warm-up on each target, its requests not counted.
	if n := strings.Count(stderr.String(), "warm-up of 200ms"); n != 2 {
		t.Errorf("%d warm-ups, want 2:\n%s", n, stderr.String())
	}
	if got.System.BenchCPU <= 0 {
		t.Errorf("bench cpu %v", got.System.BenchCPU)
	}

	// Text for people.
	stdout.Reset()
	cfg.JSON, cfg.RunID = false, "runtest2"
	if _, err := Run(ctx, cfg, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"baseline http://127.0.0.1:", "system http://127.0.0.1:", "p99.9", "system / baseline", "throughput", "answers     connect", "peak RSS", "warm-up     200ms"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestRunRefusesRemote(t *testing.T) {
	cfg := validConfig()
	cfg.URL = "http://192.0.2.10:8080/vca"
	var out bytes.Buffer
	if _, err := Run(context.Background(), cfg, &out, &out); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("remote URL: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("something was done before refusing: %s", out.String())
	}
}

// TestRunSessions: sessions are created through the admin API with the
// run's numbers and a TTL before any load; an API that refuses stops the
// run before any load, saying why.
func TestRunSessions(t *testing.T) {
	var mu sync.Mutex
	var created []map[string]any
	refuse := false
	var deleted atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && r.URL.Path == "/v1/sessions/x" && r.Header.Get("Authorization") == "Bearer tok" {
			deleted.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/sessions" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			http.Error(w, `{"error":"participant already has an open session on this virtual number"}`, http.StatusConflict)
			return
		}
		created = append(created, req)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"x"}`))
	}))
	defer admin.Close()
	var webhooks atomic.Int64
	url := testServer(t, func(ctx *fasthttp.RequestCtx) {
		webhooks.Add(1)
		ctx.SetBodyString(BaselineCallflow) // connects every probe
	})
	cfg := Config{
		URL: url, Rate: 100, Duration: 200 * time.Millisecond, Connections: 2, Timeout: time.Second, Drain: time.Second,
		Mix: DefaultMix, Sessions: 20, SessionTTL: time.Hour, AdminURL: admin.URL, AdminToken: "tok", RunID: "sess1",
	}
	var out bytes.Buffer
	rep, err := Run(context.Background(), cfg, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sessions == nil || rep.Sessions.Created != 20 || !rep.Sessions.Visible || len(created) != 20 {
		t.Fatalf("sessions %+v, %d created", rep.Sessions, len(created))
	}
	// Removed when the run ended (the fake API names every session x).
	if rep.Sessions.Removed != 20 || deleted.Load() != 20 {
		t.Errorf("sessions %+v, %d deleted; want the 20 removed", rep.Sessions, deleted.Load())
	}
	want := MakeSessions("sess1", 20)
	seen := map[string]bool{}
	for _, s := range want {
		seen[s.VirtualNumber] = true
	}
	for _, req := range created {
		if !seen[req["virtualNumber"].(string)] || req["ttlSeconds"].(float64) != 3600 || len(req["participants"].([]any)) != 2 {
			t.Errorf("session request %v", req)
		}
	}

	mu.Lock()
	refuse = true
	mu.Unlock()
	before := webhooks.Load()
	cfg.RunID = "sess2"
	_, err = Run(context.Background(), cfg, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "open session") {
		t.Fatalf("refused sessions: %v", err)
	}
	if webhooks.Load() != before {
		t.Errorf("load was sent although the sessions could not be created")
	}
	cfg.AdminToken = "wrong"
	if _, err = Run(context.Background(), cfg, &out, &out); err == nil || !strings.Contains(err.Error(), "--admin-token") {
		t.Fatalf("unauthorized: %v", err)
	}
}

// TestProcStatus reads memory from a proc filesystem laid out in a
// temporary directory (a process, one without a resident set, and one
// that does not exist), then from the real one (this process).
func TestProcStatus(t *testing.T) {
	dir := t.TempDir()
	writeStatus := func(pid, status string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, pid, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeStatus("100", "Name:\tcallflow\nVmPeak:\t 9000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n")
	writeStatus("2", "Name:\tkthreadd\n")
	w := newProcWatch(dir, []int{100, 2, 1 << 30})
	p := w.snapshot()
	if want := (ProcMem{PID: 100, Name: "callflow", PeakRSS: 200 << 20, RSSStart: 100 << 20, RSSEnd: 100 << 20, RSSMax: 100 << 20}); p[0] != want {
		t.Errorf("parsed %+v, want %+v", p[0], want)
	}
	if p[1].Error == "" {
		t.Errorf("a status without VmHWM was accepted: %+v", p[1])
	}
	if p[2].Error == "" {
		t.Errorf("a process that does not exist: %+v", p[2])
	}
	// Later samples move the end and the maximum, not the start.
	writeStatus("100", "Name:\tcallflow\nVmHWM:\t  409600 kB\nVmRSS:\t  307200 kB\n")
	w.sample(false)
	writeStatus("100", "Name:\tcallflow\nVmHWM:\t  409600 kB\nVmRSS:\t  153600 kB\n")
	w.sample(false)
	if want := (ProcMem{PID: 100, Name: "callflow", PeakRSS: 400 << 20, RSSStart: 100 << 20, RSSEnd: 150 << 20, RSSMax: 300 << 20}); w.snapshot()[0] != want {
		t.Errorf("after two samples %+v, want %+v", w.snapshot()[0], want)
	}

	own := newProcWatch(procfs.DefaultMountPoint, []int{os.Getpid()}).snapshot()[0]
	if own.Error != "" || own.PeakRSS == 0 || own.RSSStart == 0 || own.RSSMax < own.RSSStart {
		t.Errorf("own process: %+v", own)
	}
}

func TestVerdict(t *testing.T) {
	ok := &Report{System: &Result{Answered: 10}, Audit: &AuditResult{Expected: 10, Stream: &StoreAudit{Found: 10}}}
	if err := ok.verdict(); err != nil {
		t.Errorf("clean run: %v", err)
	}
	for name, rep := range map[string]*Report{
		"missing":    {System: &Result{Answered: 10}, Audit: &AuditResult{Stream: &StoreAudit{Found: 9, Missing: 1}}},
		"duplicate":  {System: &Result{Answered: 10}, Audit: &AuditResult{Stream: &StoreAudit{Found: 10}, ClickHouse: &StoreAudit{Found: 10, Duplicates: 1}}},
		"unreadable": {System: &Result{Answered: 10}, Audit: &AuditResult{Stream: &StoreAudit{Error: "no stream"}}},
		"no answers": {System: &Result{}},
	} {
		if err := rep.verdict(); !errors.Is(err, ErrFailed) {
			t.Errorf("%s: %v, want ErrFailed", name, err)
		}
	}
}

func TestSessionTTLOutlastsTheRun(t *testing.T) {
	cfg := Config{SessionTTL: time.Hour, Duration: 10 * time.Second}
	if got := sessionTTL(cfg); got != time.Hour {
		t.Errorf("short run: ttl %v, want 1h", got)
	}
	cfg.Duration = 2 * time.Hour
	if got := sessionTTL(cfg); got < 2*time.Hour {
		t.Errorf("2h soak: ttl %v", got)
	}
	cfg.SessionTTL = 0
	if got := sessionTTL(cfg); got != 0 {
		t.Errorf("no expiry asked: ttl %v", got)
	}
}
