package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAuditStream runs load against the baseline (which stores nothing),
// then plays the ingestor: it publishes every answered event to a stream
// except one, one twice, and one that was never answered, with noise
// from other runs around. The audit finds exactly that.
func TestAuditStream(t *testing.T) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CALLS", Subjects: []string{"calls.>"}, Duplicates: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTraffic("audit1", time.Now(), MakeSessions("audit1", 5), DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Second)
	res, answered := load(t, LoadSpec{URL: baseline(t), Rate: 200, Duration: 500 * time.Millisecond, Drain: time.Second, TrackAnswered: true}, tr)
	if res.Answered != 100 {
		t.Fatalf("%d answered, want 100", res.Answered)
	}
	// publish stores a record under id, once more if it is there already:
	// while the stream's duplicate window for id lasts, JetStream drops
	// the copy (the ack says so) and it is published again.
	publish := func(id string) {
		t.Helper()
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			m := nats.NewMsg("calls.X.bench")
			m.Header.Set(nats.MsgIdHdr, id)
			m.Data = []byte("{}")
			ack, err := js.PublishMsg(ctx, m)
			if err != nil {
				return err
			}
			if ack.Duplicate {
				return errors.New("dropped as a duplicate of " + id)
			}
			return nil
		})
	}
	// The record id of an answered event: the eventId, or for summaries
	// the ingestor's hash of the body.
	recordID := func(n uint64) string {
		body, _ := tr.Append(nil, n)
		ev, err := wire.ParseEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		return ev.RecordID(body)
	}
	var summary uint64 = 1 << 62
	publish("bench-otherrun-3")
	for n := range uint64(100) {
		if n == 7 {
			continue // lost
		}
		publish(recordID(n))
		if tr.Kind(n) == KindSummary && summary > n {
			summary = n
		}
	}
	if summary > 100 {
		t.Fatal("no summary among 100 requests")
	}
	publish("bench-audit1-probe-1")
	// Stored twice.
	publish(recordID(11))
	publish(recordID(summary))
	publish("bench-audit1-100") // beyond what was sent: not the run's

	spec := auditSpec{natsURL: ns.ClientURL(), stream: "CALLS", wait: time.Second, since: since}
	a, err := runAudit(ctx, spec, tr, res.indexes, answered)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Stream
	if a.Expected != 100 || s.Error != "" || s.Found != 99 || s.Missing != 1 || s.Duplicates != 2 || s.Records != 101 || s.Extra != 0 {
		t.Fatalf("audit: expected %d, stream %+v; want 99 found, 1 missing, 2 duplicates, 101 records", a.Expected, s)
	}
	if s.OK() || len(s.MissingSample) != 1 || s.MissingSample[0] != "bench-audit1-7" {
		t.Errorf("missing sample %v", s.MissingSample)
	}
	if s.Waited < 0.9 {
		t.Errorf("waited %.2fs for the missing record, want the audit wait (1s)", s.Waited)
	}

	// Everything there once: OK without waiting.
	if err := stream.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	for n := range uint64(100) {
		publish(recordID(n))
	}
	spec.wait = 10 * time.Second
	a, err = runAudit(ctx, spec, tr, res.indexes, answered)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Stream.OK() || a.Stream.Found != 100 || a.Stream.Waited > 5 {
		t.Errorf("complete stream: %+v", a.Stream)
	}

	// A stream that does not exist is an error in the report, not a hang.
	spec.stream = "NOPE"
	a, err = runAudit(ctx, spec, tr, res.indexes, answered)
	if err != nil {
		t.Fatal(err)
	}
	if a.Stream.Error == "" || a.Stream.OK() {
		t.Errorf("missing stream: %+v", a.Stream)
	}
}

// TestSoakAgainstAStoreThatLosesEverything: --soak is an open-loop run with
// progress lines and the audit; a system that answers but stores nothing
// fails it, after the report is printed.
func TestSoakAgainstAStoreThatLosesEverything(t *testing.T) {
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CALLS", Subjects: []string{"calls.>"}}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cfg := Config{
		URL: baseline(t), Rate: 100, Duration: 700 * time.Millisecond, Connections: 4, Timeout: time.Second, Drain: time.Second,
		Mix: DefaultMix, Soak: true, ReportEvery: 200 * time.Millisecond, NATSURL: ns.ClientURL(), AuditWait: 300 * time.Millisecond,
		PIDs: []int{os.Getpid()},
	}
	rep, err := Run(ctx, cfg, &stdout, &stderr)
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "70 missing") {
		t.Fatalf("err %v, want a failed audit with 70 missing", err)
	}
	if rep.Audit == nil || rep.Audit.Stream.Missing != 70 || rep.System.Answered != 70 {
		t.Fatalf("report %+v", rep.Audit)
	}
	lines := strings.Count(stderr.String(), "] sent ")
	if lines < 2 || !strings.Contains(stderr.String(), "rss[") {
		t.Errorf("%d progress lines (with RSS), want at least 2:\n%s", lines, stderr.String())
	}
	if !strings.Contains(stdout.String(), "FAILED: 0 found, 70 missing") {
		t.Errorf("report:\n%s", stdout.String())
	}
}
