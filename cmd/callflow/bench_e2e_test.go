package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/bench"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
)

// TestBenchAgainstServe runs `callflow bench` as a user would against a
// fresh `callflow serve`: sessions created through the admin API, a short
// open-loop run beside the baseline and the straightforward chain (its
// own process, started by bench), every answer the right kind, and the
// audit finding every answered event in the stream once (and in
// ClickHouse through FINAL when CALLFLOW_TEST_CLICKHOUSE is set).
func TestBenchAgainstServe(t *testing.T) {
	serveArgs := []string{"serve", "--data-dir", t.TempDir(), "--http-addr", anyPort, "--admin-addr", anyPort,
		"--nats-listen", anyPort, "--log-format", "json"}
	var benchCH []string
	if os.Getenv(chtest.EnvAddr) != "" {
		chAddr := chtest.Addr(t)
		db := chtest.Database(t, chAddr)
		serveArgs = append(serveArgs, "--clickhouse-addr", chAddr, "--clickhouse-database", db, "--batch-max-age", "100ms")
		benchCH = []string{"--clickhouse-addr", chAddr, "--clickhouse-database", db}
	} else {
		t.Logf("%s is not set: auditing the stream only", chtest.EnvAddr)
		serveArgs = append(serveArgs, "--clickhouse-addr", "")
	}
	p := start(t, nil, serveArgs...)
	ls := waitReady(t, p)
	httpAddr, adminAddr := ls.Webhook, ls.Admin

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := append([]string{"bench",
		"--url", "http://" + httpAddr + "/vca", "--admin-url", "http://" + adminAddr,
		"--rate", "200", "--duration", "1s", "--connections", "16", "--sessions", "20",
		"--baseline", "--chain", "--audit", "--audit-wait", "30s", "--nats-url", ls.NATS,
		"--pids", strconv.Itoa(p.cmd.Process.Pid), "--json"}, benchCH...)
	// The binary, not run(): bench starts the chain as a process of its
	// own from its executable.
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v:\n%s", err, stderr.String())
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("bench --json printed %v:\n%s", err, stdout.String())
	}
	t.Logf("system %+v\nbaseline %+v", rep.System.Latency, rep.Baseline.Latency)

	if rep.Sessions == nil || rep.Sessions.Created != 20 || !rep.Sessions.Visible {
		t.Errorf("sessions: %+v", rep.Sessions)
	}
	sys := rep.System
	if sys.Requests != 200 || sys.Answered != 200 || sys.ErrorCount() != 0 {
		t.Fatalf("system: %d sent, %d answered, errors %v %v", sys.Requests, sys.Answered, sys.Errors, sys.ErrorSamples)
	}
	// Every answer is what the request called for.
	calls := sys.SentByKind["in_session"]
	if sys.Answers["connect"] != calls || sys.Answers["out_of_session"] != sys.SentByKind["out_of_session"] ||
		sys.Answers["ack"] != sys.SentByKind["status"]+sys.SentByKind["summary"] ||
		sys.Answers["fallback"] != 0 || sys.Answers["bad"] != 0 || sys.Answers["other"] != 0 {
		t.Errorf("answers %v for sent %v", sys.Answers, sys.SentByKind)
	}
	if calls == 0 || sys.SentByKind["out_of_session"] == 0 {
		t.Errorf("the mix sent %v", sys.SentByKind)
	}
	if sys.Wrong["in_session_not_connected"] != 0 || sys.Wrong["out_of_session_connected"] != 0 {
		t.Errorf("wrong answers: %v", sys.Wrong)
	}
	if rep.Baseline == nil || rep.Baseline.Answered != 200 || rep.Ratio == nil || rep.Ratio.Throughput <= 0 {
		t.Errorf("baseline %+v ratio %+v", rep.Baseline, rep.Ratio)
	}
	if c := rep.Chain; c == nil || c.Answered != 200 || c.ErrorCount() != 0 || rep.RatioChain == nil || rep.RatioChain.Throughput <= 0 {
		t.Errorf("chain %+v ratio %+v", c, rep.RatioChain)
	}

	a := rep.Audit
	if a == nil || a.Expected != 200 || a.Stream == nil || !a.Stream.OK() || a.Stream.Found != 200 {
		t.Fatalf("stream audit: %+v %+v", a, a.Stream)
	}
	if benchCH != nil {
		if c := a.ClickHouse; c == nil || !c.OK() || c.Found != 200 {
			t.Errorf("clickhouse audit: %+v", c)
		}
	} else if a.ClickHouse != nil {
		t.Errorf("clickhouse audited without --clickhouse-addr: %+v", a.ClickHouse)
	}
	if len(rep.Processes) != 1 || rep.Processes[0].PeakRSS == 0 {
		t.Errorf("processes %+v", rep.Processes)
	}
	// The sessions it created are gone.
	if rep.Sessions != nil && (rep.Sessions.Removed != 20 || rep.Sessions.RemoveError != "") {
		t.Errorf("sessions removed: %+v", rep.Sessions)
	}
	if n := benchSessions(t, adminAddr); n != 0 {
		t.Errorf("%d sessions left after the bench, want none", n)
	}

	// A second run finds only its own events: ids do not collide.
	stdout.Reset()
	args = []string{"bench", "--url", "http://" + httpAddr + "/vca", "--admin-url", "http://" + adminAddr,
		"--rate", "100", "--duration", "500ms", "--sessions", "5", "--audit", "--nats-url", ls.NATS}
	if code := run(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("second bench exited %d:\n%s", code, stderr.String())
	}
	for _, want := range []string{"stream CALLS", "OK: 50 found, 0 missing, 0 duplicates", "wrong       in_session_not_connected 0, out_of_session_connected 0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("second run's report lacks %q:\n%s", want, stdout.String())
		}
	}
	if n := benchSessions(t, adminAddr); n != 0 {
		t.Errorf("%d sessions left after the second bench, want none", n)
	}

	// Interrupted once its sessions exist, it still removes them.
	ictx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	done := make(chan int, 1)
	var istdout, istderr bytes.Buffer
	go func() {
		done <- run(ictx, []string{"bench", "--url", "http://" + httpAddr + "/vca", "--admin-url", "http://" + adminAddr,
			"--rate", "50", "--duration", "60s", "--sessions", "5"}, &istdout, &istderr)
	}()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := benchSessions(t, adminAddr); n < 5 {
			return fmt.Errorf("%d sessions so far", n)
		}
		return nil
	})
	interrupt()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("interrupted bench did not end:\n%s", istderr.String())
	}
	if n := benchSessions(t, adminAddr); n != 0 {
		t.Errorf("%d sessions left after an interrupted bench, want none:\n%s", n, istderr.String())
	}
	if !strings.Contains(istdout.String(), "5 removed afterwards") {
		t.Errorf("the interrupted run's report does not say its sessions were removed:\n%s", istdout.String())
	}
	if err := p.stop(t); err != nil {
		t.Errorf("serve exit: %v", err)
	}
}

// benchSessions is how many sessions the admin API at adminAddr holds,
// open or closed.
func benchSessions(t *testing.T, adminAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/v1/sessions?status=all&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Sessions []json.RawMessage `json:"sessions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/sessions: %s %v", resp.Status, err)
	}
	return len(list.Sessions)
}

func TestBenchCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"help", []string{"bench", "--help"}, 0, "CALLFLOW_RATE"},
		{"remote url", []string{"bench", "--url", "http://192.0.2.1:8080/vca"}, 2, "not loopback"},
		{"remote admin", []string{"bench", "--admin-url", "http://192.0.2.1:8081"}, 2, "--admin-url"},
		{"negative rate", []string{"bench", "--rate", "-5"}, 2, "--rate"},
		{"soak needs a rate", []string{"bench", "--soak", "--rate", "0"}, 2, "--soak"},
		{"bad pid", []string{"bench", "--pids", "12,x"}, 2, "--pids"},
		{"fractional session ttl", []string{"bench", "--session-ttl", "90.5s"}, 2, "--session-ttl 1m30.5s: give whole seconds"},
		{"help says why remote is guarded", []string{"bench", "--help"}, 0, "never aimed at a production system by mistake"},
		// The report is printed, and the exit code says the run failed.
		{"nothing listening", []string{"bench", "--url", "http://127.0.0.1:1/vca", "--sessions", "0", "--rate", "20", "--duration", "100ms", "--timeout", "200ms"}, 1, "connection 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d:\n%s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String()+stdout.String(), tt.wantErr) {
				t.Errorf("output lacks %q:\n%s%s", tt.wantErr, stderr.String(), stdout.String())
			}
		})
	}
}
