package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callflow/callflow/ingest/spool"
	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/testlog"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Log lines of the recorder the tests wait on.
const (
	logReplayFailed = "spool replay interrupted; retrying"
	logRemain       = "records remain in the spool"
)

// drainTimeout bounds how long a spool may take to reach the stream once
// JetStream answers: the replay loop backs off up to 5s between attempts,
// and a restarted server recovers its stream first.
const drainTimeout = 60 * time.Second

// TestSpoolRidesThroughNATSRestart proves that a NATS outage costs no
// record and no call: the ingestor, connected with broker.Connect (which
// reconnects forever), answers every call and event 200 while the server
// is down (callers get the fallback, the deciders being unreachable),
// keeps their records in the spool, and once the server is back on the
// same port and store republishes them, each stored exactly once; the
// spool drains to 0 (Stats and the callflow_spool_records gauge) and new
// calls are recorded directly again.
func TestSpoolRidesThroughNATSRestart(t *testing.T) {
	logger, _ := captureLogs(t)
	// The restarted server is registered first so that it is shut down
	// last, after the ingestor and the deciders stopped.
	var restarted *server.Server
	t.Cleanup(func() {
		if restarted != nil {
			restarted.Shutdown()
			restarted.WaitForShutdown()
		}
	})
	opts := natstest.Options(t.TempDir())
	opts.Port = freePort(t)
	ns := natstest.RunServerWith(t, opts)
	inc, err := broker.Connect(broker.ConnConfig{URLs: ns.ClientURL(), Name: "ingest-spool-test", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inc.Close)
	reg := prometheus.NewRegistry()
	var dataDir string
	e := newEnv(t, envOptions{ns: ns, conn: inc, deciders: 1, cfg: func(c *Config) {
		c.Logger = logger
		c.Metrics = NewMetrics(reg)
		// Generous: the records before the outage must be acknowledged,
		// not spooled, on a busy machine too.
		c.RecordTimeout = 10 * time.Second
		dataDir = c.DataDir
	}})
	e.seedSession()

	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("before-%d", i)
		cf := wantCallflow(t, e.post(callAction(t, id)))
		if cf.ClientActionID == wire.ClientActionFallback {
			t.Fatalf("%s answered with the fallback while the deciders are up", id)
		}
		ids = append(ids, id)
	}
	if s := e.srv.Stats(); s.Recorded != 3 || s.Spooled != 0 {
		t.Fatalf("stats before the outage = %+v, want 3 recorded", s)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if inc.IsConnected() {
			return errors.New("the ingestor's connection has not noticed the outage")
		}
		return nil
	})

	// Calls and status events during the outage, concurrently (each call
	// waits the decide timeout for deciders it cannot reach).
	var down []string
	var bodies [][]byte
	for i := range 3 {
		down = append(down, fmt.Sprintf("down-call-%d", i), fmt.Sprintf("down-status-%d", i))
		bodies = append(bodies, callAction(t, down[len(down)-2]),
			event(t, wire.EventCallStatus, map[string]any{"eventId": down[len(down)-1]}))
	}
	answers := make([]answer, len(bodies))
	errs := make([]error, len(bodies))
	var wg sync.WaitGroup
	for i := range bodies {
		wg.Go(func() { answers[i], errs[i] = e.do(http.MethodPost, "/vca", bytes.NewReader(bodies[i])) })
	}
	wg.Wait()
	for i, id := range down {
		if errs[i] != nil {
			t.Fatalf("%s: %v", id, errs[i])
		}
		if strings.HasPrefix(id, "down-call-") {
			wantFallback(t, answers[i])
		} else {
			wantAck(t, answers[i], id)
		}
	}
	s := e.srv.Stats()
	if s.Recorded != 3 || s.Spooled != uint64(len(down)) || s.SpoolWaiting != int64(len(down)) || s.Lost != 0 {
		t.Errorf("stats during the outage = %+v, want %d spooled and waiting, 3 recorded", s, len(down))
	}
	if n := testutil.ToFloat64(e.srv.metrics.spooled.WithLabelValues(SpoolDisconnected)); n != float64(len(down)) {
		t.Errorf("records spooled as disconnected = %v, want %d", n, len(down))
	}
	if n := gathered(t, reg, "callflow_spool_records"); n != float64(len(down)) {
		t.Errorf("callflow_spool_records = %v during the outage, want %d", n, len(down))
	}
	var spooled []string
	for _, en := range readSpool(t, dataDir) {
		spooled = append(spooled, en.ID)
		if r := mustParse(t, en.Data); r.ID != en.ID {
			t.Errorf("spooled %q holds the record of %q", en.ID, r.ID)
		}
	}
	if !sameSet(spooled, down) {
		t.Errorf("spooled ids %v, want %v", spooled, down)
	}
	ids = append(ids, down...)

	// The server comes back on the same port with the same store.
	restarted, err = server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go restarted.Start()
	if !restarted.ReadyForConnections(30 * time.Second) {
		t.Fatal("restarted NATS server not ready after 30s")
	}
	waitStoredOnce(t, e, ids)
	if n := gathered(t, reg, "callflow_spool_records"); n != 0 {
		t.Errorf("callflow_spool_records = %v after the replay, want 0", n)
	}
	if n := gathered(t, reg, "callflow_spool_bytes"); n != 0 {
		t.Errorf("callflow_spool_bytes = %v with an empty spool, want 0", n)
	}
	if n := gathered(t, reg, "callflow_spool_replayed_total"); n != float64(len(down)) {
		t.Errorf("callflow_spool_replayed_total = %v, want %d", n, len(down))
	}
	stored := storedByID(t, e)
	for _, id := range down {
		m := stored[id]
		if strings.HasPrefix(id, "down-call-") {
			if d := m.rec.Decision; d == nil || d.Source != wire.SourceFallback {
				t.Errorf("%s: decision %+v, want the fallback", id, d)
			}
		}
	}

	// Once the spool is drained the recorder is no longer degraded: new
	// calls are acknowledged by JetStream, not spooled.
	for i := range 2 {
		id := fmt.Sprintf("after-%d", i)
		wantCallflow(t, e.post(callAction(t, id)))
		ids = append(ids, id)
	}
	if s := e.srv.Stats(); s.Recorded != 5 || s.Spooled != uint64(len(down)) || s.Lost != 0 {
		t.Errorf("stats after the outage = %+v, want 5 recorded, %d spooled", s, len(down))
	}
	if err := e.shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	checkStoredOnce(t, e, ids)
}

// TestSpoolResumesAfterRestart proves that records spooled by an ingestor
// that stopped before JetStream could take them stay on disk, and that the
// next ingestor started on the same data directory republishes them, byte
// for byte under their original subject and id, each stored once, leaving
// no segment behind.
func TestSpoolResumesAfterRestart(t *testing.T) {
	var dataDir string
	e := newEnv(t, envOptions{noStream: true, cfg: func(c *Config) {
		c.RecordTimeout = 100 * time.Millisecond
		dataDir = c.DataDir
	}})
	ids := postSpooled(t, e, "resume")
	if err := e.shutdown(); err != nil {
		t.Logf("Shutdown without a stream: %v", err)
	}
	before := readSpool(t, dataDir)
	if got := spoolIDs(before); !sameSet(got, ids) {
		t.Fatalf("spool after Shutdown holds %v, want %v", got, ids)
	}

	ensureStream(t, e.js)
	e2 := newEnv(t, envOptions{ns: e.ns, cfg: func(c *Config) { c.DataDir = dataDir }})
	waitStoredOnce(t, e2, ids)
	stored := storedByID(t, e2)
	for _, en := range before {
		m := stored[en.ID]
		if m.subject != en.Subject || !bytes.Equal(m.data, en.Data) {
			t.Errorf("%s: stored %s %s, spooled %s %s", en.ID, m.subject, m.data, en.Subject, en.Data)
		}
	}
	if s := e2.srv.Stats(); s.Spooled != 0 || s.Lost != 0 || s.SpoolWaiting != 0 {
		t.Errorf("stats of the second ingestor = %+v, want nothing spooled or waiting", s)
	}
	if err := e2.shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	wantSpoolEmpty(t, dataDir)
}

// TestShutdownFlushesSpool proves that Shutdown sends what the spool holds
// when JetStream answers again: records spooled while the stream was
// missing are all in the stream when Shutdown returns, even though the
// stream appeared while the replay loop was backing off, and nothing is
// left on disk.
func TestShutdownFlushesSpool(t *testing.T) {
	logger, logs := captureLogs(t)
	var dataDir string
	e := newEnv(t, envOptions{noStream: true, cfg: func(c *Config) {
		c.RecordTimeout = 100 * time.Millisecond
		c.Logger = logger
		dataDir = c.DataDir
	}})
	ids := postSpooled(t, e, "flush")
	// Three failed replays: the loop now waits 2s before the next one.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := logs.Count(logReplayFailed); n < 3 {
			return fmt.Errorf("%d failed replays logged, want 3", n)
		}
		return nil
	})
	ensureStream(t, e.js)
	waiting := e.srv.Stats().SpoolWaiting
	if err := e.shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if waiting != int64(len(ids)) {
		t.Logf("the replay loop sent %d records before Shutdown did", int64(len(ids))-waiting)
	}
	checkStoredOnce(t, e, ids)
	if s := e.srv.Stats(); s.SpoolWaiting != 0 {
		t.Errorf("stats after Shutdown = %+v, want nothing waiting", s)
	}
	if logs.Count(logRemain) != 0 {
		t.Errorf("Shutdown logged that records remain in the spool")
	}
	wantSpoolEmpty(t, dataDir)
}

// TestSpoolFull proves what happens when the spool reaches
// Config.SpoolMaxBytes while JetStream cannot take records: an event that
// is not a CALL_ACTION is refused 503 with a JSON error naming the spool
// and a Retry-After, so that 8x8 sends it again; a CALL_ACTION is still
// answered 200 with a callflow, because a caller is waiting, and its
// record is lost; both are counted in Stats().Lost and
// callflow_records_lost_total{reason="spool_full"}. Once the stream exists
// the spooled records are replayed and new records are accepted again.
// It runs at the smallest bound Config accepts (1 MiB) and at 8 MiB.
func TestSpoolFull(t *testing.T) {
	const note = 200 << 10 // bytes of filler in each event
	for _, max := range []int64{1 << 20, 8 << 20} {
		t.Run(fmt.Sprintf("%dMiB", max>>20), func(t *testing.T) {
			logger, _ := captureLogs(t)
			reg := prometheus.NewRegistry()
			e := newEnv(t, envOptions{noStream: true, cfg: func(c *Config) {
				c.Logger = logger
				// Records are spooled without waiting on it (the stream
				// is missing: "no responders"), and it is long enough for
				// the replay of many large records: the replay's acks must
				// come within it (see TestSpoolReplayWithSlowAcks).
				c.RecordTimeout = 2 * time.Second
				c.MaxBody = 2 * note
				c.SpoolMaxBytes = max
				c.Metrics = NewMetrics(reg)
			}})
			filler := strings.Repeat("x", note)
			bigStatus := func(id string) []byte {
				return event(t, wire.EventCallStatus, map[string]any{"eventId": id, "note": filler})
			}
			bigCall := func(id string) []byte {
				return event(t, "", map[string]any{"eventId": id, "note": filler})
			}

			var accepted []string
			var refused answer
			var refusedID string
			for i := range int(max/note) + 10 {
				id := fmt.Sprintf("big-status-%03d", i)
				a := e.post(bigStatus(id))
				if a.status == http.StatusServiceUnavailable {
					refused, refusedID = a, id
					break
				}
				wantAck(t, a, id)
				accepted = append(accepted, id)
			}
			if refusedID == "" {
				t.Fatalf("%d events of %d KiB accepted into a %d MiB spool; none refused", len(accepted), note>>10, max>>20)
			}
			if len(accepted) == 0 {
				t.Fatal("the first event was refused: nothing was spooled")
			}
			wantError(t, refused, http.StatusServiceUnavailable, "spool")
			if ra := refused.header.Get("Retry-After"); ra == "" {
				t.Error("503 without a Retry-After header")
			}

			// A caller is waiting: the call is answered, its record lost.
			wantFallback(t, e.post(bigCall("big-call-lost")))

			s := e.srv.Stats()
			if s.Lost != 2 || s.Rejected != 1 || s.Spooled != uint64(len(accepted)) || s.SpoolWaiting != int64(len(accepted)) {
				t.Errorf("stats = %+v, want 2 lost, 1 rejected, %d spooled", s, len(accepted))
			}
			if n := testutil.ToFloat64(e.srv.metrics.recordsLost.WithLabelValues("spool_full")); n != 2 {
				t.Errorf(`callflow_records_lost_total{reason="spool_full"} = %v, want 2`, n)
			}
			if n := gathered(t, reg, "callflow_spool_bytes"); n > float64(max) {
				t.Errorf("callflow_spool_bytes = %v, beyond the limit %d", n, max)
			}

			ensureStream(t, e.js)
			waitStoredOnce(t, e, accepted)
			if n := gathered(t, reg, "callflow_spool_bytes"); n != 0 {
				t.Errorf("callflow_spool_bytes = %v with an empty spool, want 0", n)
			}
			// The refused event, sent again as 8x8 would, and a new call
			// are taken.
			wantAck(t, e.post(bigStatus(refusedID)), refusedID)
			wantCallflow(t, e.post(bigCall("big-call-after")))
			waitStoredOnce(t, e, append(accepted, refusedID, "big-call-after"))
			if s := e.srv.Stats(); s.Lost != 2 {
				t.Errorf("stats = %+v, want still 2 lost", s)
			}
		})
	}
}

// TestSpoolImportsLegacyFile proves that the unacknowledged-records file of
// the version before the spool (<DataDir>/unacked/records.log, "subject
// msg-id length\n" + record + "\n" per record) found at start is moved into
// the spool and republished: every whole record reaches the stream once,
// byte for byte, and the file is removed; an entry cut short at its end
// loses none of the whole ones, and the file is kept aside as .partial.
func TestSpoolImportsLegacyFile(t *testing.T) {
	for _, c := range []struct {
		name string
		cut  bool
	}{{"whole", false}, {"cut short", true}} {
		t.Run(c.name, func(t *testing.T) {
			recs := []struct {
				id, eventType string
				body          []byte
			}{
				{"legacy-call-1", wire.EventCallAction, callAction(t, "legacy-call-1")},
				{"legacy-status-1", wire.EventCallStatus, event(t, wire.EventCallStatus, map[string]any{"eventId": "legacy-status-1"})},
				{"legacy-call-2", wire.EventCallAction, callAction(t, "legacy-call-2")},
			}
			subject := func(eventType string) string { return wire.Subject(eventType, seedSubAccount) }
			fallback := fallbackResponse(DefaultFallback)
			data := map[string][]byte{}
			var file bytes.Buffer
			for _, r := range recs {
				rec := wire.Record{
					Version: wire.RecordVersion, ID: r.id, EventType: r.eventType,
					ReceivedAt: time.Now().Add(-5 * time.Second), Instance: testInstance, Event: r.body,
				}
				if r.eventType == wire.EventCallAction {
					rec.Decision = &wire.Decision{
						Source: wire.SourceFallback, Outcome: wire.OutcomeFallback, FallbackReason: ReasonTimeout,
						LatencyMicros: 1000, Callflow: fallback.JSON(),
					}
				}
				b := rec.AppendJSON(nil)
				data[r.id] = b
				fmt.Fprintf(&file, "%s %s %d\n", subject(r.eventType), r.id, len(b))
				file.Write(b)
				file.WriteByte('\n')
			}
			whole := []string{recs[0].id, recs[1].id, recs[2].id}
			if c.cut {
				file.Truncate(file.Len() - 10)
				whole = whole[:2]
			}
			var legacy string
			e := newEnv(t, envOptions{cfg: func(cfg *Config) {
				legacy = filepath.Join(cfg.DataDir, "unacked", "records.log")
				if err := os.MkdirAll(filepath.Dir(legacy), 0o750); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(legacy, file.Bytes(), 0o640); err != nil {
					t.Fatal(err)
				}
			}})
			waitStoredOnce(t, e, whole)
			stored := storedByID(t, e)
			for _, r := range recs {
				if !slices.Contains(whole, r.id) {
					continue
				}
				m := stored[r.id]
				checkRecord(t, m, r.id, r.eventType, subject(r.eventType), r.body)
				if !bytes.Equal(m.data, data[r.id]) {
					t.Errorf("%s: stored %s, want the legacy record %s", r.id, m.data, data[r.id])
				}
			}
			if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("legacy file still there after the import (stat: %v)", err)
			}
			_, err := os.Stat(legacy + ".partial")
			switch {
			case c.cut && err != nil:
				t.Errorf("legacy file with an entry cut short not kept aside: %v", err)
			case !c.cut && !errors.Is(err, os.ErrNotExist):
				t.Errorf("whole legacy file kept aside as .partial (stat: %v)", err)
			}
			if err := e.shutdown(); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			checkStoredOnce(t, e, whole)
			wantSpoolEmpty(t, e.cfg.DataDir)
		})
	}
}

// TestSpoolSameEventTwice proves that a webhook 8x8 sends twice while
// JetStream is away, spooled twice under the same id, is stored once: the
// replay publishes both with their Nats-Msg-Id and JetStream's duplicate
// window keeps the first.
func TestSpoolSameEventTwice(t *testing.T) {
	var dataDir string
	e := newEnv(t, envOptions{noStream: true, cfg: func(c *Config) {
		c.RecordTimeout = 100 * time.Millisecond
		dataDir = c.DataDir
	}})
	bodies := [][]byte{
		callAction(t, "twice-call"),
		event(t, wire.EventCallStatus, map[string]any{"eventId": "twice-status"}),
		callAction(t, "twice-call"),
		event(t, wire.EventCallStatus, map[string]any{"eventId": "twice-status"}),
		callAction(t, "once-call"),
	}
	for _, b := range bodies {
		if a := e.post(b); a.status != http.StatusOK {
			t.Fatalf("%s", a)
		}
	}
	entries := readSpool(t, dataDir)
	if len(entries) != len(bodies) {
		t.Fatalf("%d records in the spool, want %d", len(entries), len(bodies))
	}
	first := map[string][]byte{}
	for _, en := range entries {
		if first[en.ID] == nil {
			first[en.ID] = en.Data
		}
	}
	ensureStream(t, e.js)
	ids := []string{"twice-call", "twice-status", "once-call"}
	waitStoredOnce(t, e, ids)
	stored := storedByID(t, e)
	for _, id := range ids {
		if m := stored[id]; !bytes.Equal(m.data, first[id]) {
			t.Errorf("%s: stored %s, want the first one sent %s", id, m.data, first[id])
		}
	}
	if err := e.shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	checkStoredOnce(t, e, ids)
}

// TestSpoolTimedOutPublishStoredOnce proves that a record whose publish
// JetStream stored but acknowledged too late (here: the ingestor's
// connection goes through a proxy that delays what the server sends by
// more than the record budget) is spooled with reason "timeout", sent
// again by the replay loop, and still stored once thanks to Nats-Msg-Id
// deduplication; once acks come back in time the spool drains.
func TestSpoolTimedOutPublishStoredOnce(t *testing.T) {
	logger, logs := captureLogs(t)
	ns := natstest.RunServer(t)
	p := startDelayProxy(t, ns.Addr().String())
	inc, err := nats.Connect("nats://"+p.addr(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inc.Close)
	e := newEnv(t, envOptions{ns: ns, conn: inc, cfg: func(c *Config) {
		c.RecordTimeout = 500 * time.Millisecond
		c.Logger = logger
	}})

	// Acks arrive two seconds late: four times the record budget.
	p.delay.Store(int64(2 * time.Second))
	wantFallback(t, e.post(callAction(t, "late-ack-call")))
	wantAck(t, e.post(event(t, wire.EventCallStatus, map[string]any{"eventId": "late-ack-status"})), "late-ack-status")
	m := e.srv.metrics
	if n := testutil.ToFloat64(m.publishFailed.WithLabelValues(SpoolTimeout)); n != 1 {
		t.Errorf("publishes timed out = %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.spooled.WithLabelValues(SpoolTimeout)); n != 1 {
		t.Errorf("records spooled after a timeout = %v, want 1 (the call)", n)
	}
	if n := testutil.ToFloat64(m.spooled.WithLabelValues(SpoolDegraded)); n != 1 {
		t.Errorf("records spooled while degraded = %v, want 1 (the status)", n)
	}
	// The publish that timed out was stored all the same.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		ids, err := e.streamIDs()
		if err != nil {
			return err
		}
		if ids["late-ack-call"] == 0 {
			return errors.New("the timed-out record is not in the stream")
		}
		return nil
	})
	// The replay loop sends the spool again while acks are still late,
	// and waits for them: nobody is on the line for a replayed record.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if s := e.srv.Stats(); s.SpoolWaiting != 0 || s.Spooled != 2 {
			return fmt.Errorf("stats with late acks = %+v, want 2 spooled, none waiting", s)
		}
		if logs.Count("JetStream acknowledges records again") == 0 {
			return errors.New("the recorder did not leave the degraded state")
		}
		return nil
	})

	p.delay.Store(0)
	ids := []string{"late-ack-call", "late-ack-status"}
	waitStoredOnce(t, e, ids)
	if err := e.shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	checkStoredOnce(t, e, ids)
}

// TestSpoolReplayWithSlowAcks proves that the spool drains while JetStream
// works but acknowledges more slowly than the record budget (the ingestor's
// connection goes through a proxy that delays what the server sends by
// three times Config.RecordTimeout): the budget is what a caller on the
// line can wait, and callers are answered within it with their records
// spooled, but nobody waits on the replay, which must take the acks
// JetStream does send rather than give up on each after the call budget,
// resend the same records forever (JetStream stores them once) and keep
// the recorder degraded, so that every new record is spooled too until the
// spool fills and records are lost.
func TestSpoolReplayWithSlowAcks(t *testing.T) {
	const budget = 100 * time.Millisecond
	logger, logs := captureLogs(t)
	ns := natstest.RunServer(t)
	p := startDelayProxy(t, ns.Addr().String())
	inc, err := nats.Connect("nats://"+p.addr(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inc.Close)
	e := newEnv(t, envOptions{ns: ns, conn: inc, cfg: func(c *Config) {
		c.RecordTimeout = budget
		c.Logger = logger
	}})
	p.delay.Store(int64(3 * budget))
	ids := []string{"slow-call", "slow-status-1", "slow-status-2"}
	wantFallback(t, e.post(callAction(t, ids[0])))
	for _, id := range ids[1:] {
		wantAck(t, e.post(event(t, wire.EventCallStatus, map[string]any{"eventId": id})), id)
	}
	if s := e.srv.Stats(); s.Spooled != 3 || s.Recorded != 0 {
		t.Errorf("stats = %+v, want 3 spooled: acks come after the record budget", s)
	}
	waitStoredOnce(t, e, ids)
	// The publishes that timed out may be stored before the replay's
	// acks come back: wait for the replay to get through.
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if logs.Count("JetStream acknowledges records again") == 0 {
			return errors.New("the recorder did not leave the degraded state")
		}
		if n := e.srv.Stats().SpoolWaiting; n != 0 {
			return fmt.Errorf("%d records still waiting in the spool", n)
		}
		return nil
	})
}

// postSpooled posts two calls and two status events while JetStream cannot
// take them, checks they are answered 200 and spooled, and returns their
// ids.
func postSpooled(t *testing.T, e *env, prefix string) []string {
	t.Helper()
	var ids []string
	for i := range 2 {
		call, status := fmt.Sprintf("%s-call-%d", prefix, i), fmt.Sprintf("%s-status-%d", prefix, i)
		wantCallflow(t, e.post(callAction(t, call)))
		wantAck(t, e.post(event(t, wire.EventCallStatus, map[string]any{"eventId": status})), status)
		ids = append(ids, call, status)
	}
	if s := e.srv.Stats(); s.Spooled != uint64(len(ids)) || s.Recorded != 0 || s.Lost != 0 {
		t.Fatalf("stats = %+v, want %d spooled", s, len(ids))
	}
	return ids
}

// wantAck checks the answer to an event that needs no callflow.
func wantAck(t testing.TB, a answer, id string) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200; body %s", id, a.status, a.body)
	}
	var ack struct {
		Status string `json:"status"`
		ID     string `json:"id"`
	}
	if err := decodeStrict(a.body, &ack); err != nil || ack.Status != "received" || ack.ID != id {
		t.Fatalf("%s: answer %s, want {\"status\":\"received\",\"id\":%q} (%v)", id, a.body, id, err)
	}
}

// ensureStream creates the records stream, as newEnv does.
func ensureStream(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{
		Name: testStream, MaxAge: time.Hour, Duplicates: 10 * time.Minute, Replicas: 1,
	}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("ensure stream: %v", err)
	}
}

// storedMsgs returns every message of the records stream. Unlike
// e.messages it returns errors instead of failing the test, for polling
// while NATS comes back, and gives each request its own deadline, so that
// reading many large records on a busy machine does not run out of time.
func (e *env) storedMsgs() ([]streamMsg, error) {
	ctx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 10*time.Second)
	}
	c, cancel := ctx()
	defer cancel()
	st, err := e.js.Stream(c, testStream)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(c)
	if err != nil {
		return nil, err
	}
	var out []streamMsg
	if info.State.Msgs == 0 {
		return nil, nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		c, cancel := ctx()
		m, err := st.GetMsg(c, seq)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get message %d: %w", seq, err)
		}
		sm := streamMsg{subject: m.Subject, msgID: m.Header.Get(nats.MsgIdHdr), data: m.Data}
		sm.rec, sm.err = wire.ParseRecord(m.Data)
		out = append(out, sm)
	}
	return out, nil
}

// storedByID returns the stream's messages by Nats-Msg-Id; call it after
// checkStoredOnce, which checks there is one per id.
func storedByID(t testing.TB, e *env) map[string]streamMsg {
	t.Helper()
	msgs, err := e.storedMsgs()
	if err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	out := map[string]streamMsg{}
	for _, m := range msgs {
		out[m.msgID] = m
	}
	return out
}

// streamIDs counts the records stream's messages by Nats-Msg-Id.
func (e *env) streamIDs() (map[string]int, error) {
	msgs, err := e.storedMsgs()
	if err != nil {
		return nil, err
	}
	ids := map[string]int{}
	for _, m := range msgs {
		ids[m.msgID]++
	}
	return ids, nil
}

// streamCount is the number of messages in the records stream, or an error.
func (e *env) streamCount() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, testStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// waitStoredOnce waits until the ingestor's spool is empty and the stream
// holds as many messages as want has ids, then checks that it holds each
// exactly once and nothing else.
func waitStoredOnce(t *testing.T, e *env, want []string) {
	t.Helper()
	natstest.CheckFor(t, drainTimeout, 50*time.Millisecond, func() error {
		if n := e.srv.Stats().SpoolWaiting; n != 0 {
			return fmt.Errorf("%d records waiting in the spool", n)
		}
		n, err := e.streamCount()
		if err != nil {
			return err
		}
		if n < uint64(len(want)) {
			return fmt.Errorf("%d messages in the stream, want %d", n, len(want))
		}
		return nil
	})
	checkStoredOnce(t, e, want)
}

// checkStoredOnce checks that the stream holds each id of want exactly
// once, every message holding the record of its own id, and nothing else.
func checkStoredOnce(t *testing.T, e *env, want []string) {
	t.Helper()
	msgs, err := e.storedMsgs()
	if err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	ids := map[string]int{}
	for _, m := range msgs {
		ids[m.msgID]++
		switch {
		case m.err != nil:
			t.Errorf("message %q: unreadable record: %v", m.msgID, m.err)
		case m.rec.ID != m.msgID:
			t.Errorf("message with Nats-Msg-Id %q holds the record of %q", m.msgID, m.rec.ID)
		}
	}
	for _, id := range want {
		if ids[id] != 1 {
			t.Errorf("%q is %d times in the stream, want once", id, ids[id])
		}
	}
	for id, n := range ids {
		if !slices.Contains(want, id) {
			t.Errorf("unexpected %q in the stream (%d times)", id, n)
		}
	}
}

// wantSpoolEmpty checks that no spooled record and no segment file is left.
func wantSpoolEmpty(t testing.TB, dataDir string) {
	t.Helper()
	if entries := readSpool(t, dataDir); len(entries) != 0 {
		t.Errorf("%d records left in the spool: %v", len(entries), spoolIDs(entries))
	}
	segs, err := filepath.Glob(filepath.Join(dataDir, "spool", "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 0 {
		t.Errorf("segment files left in the spool: %v", segs)
	}
}

func spoolIDs(entries []spool.Entry) []string {
	var ids []string
	for _, en := range entries {
		ids = append(ids, en.ID)
	}
	return ids
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// gathered is the value of the unlabelled gauge or counter name in reg.
func gathered(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("metric %s has %d series, want 1", name, len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// freePort returns a loopback port that was free at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// captureLogs returns a logger writing into a buffer (tests wait on its
// lines) that is printed if the test fails. Call it before starting what
// logs, so that the buffer is printed after they stopped.
func captureLogs(t *testing.T) (*slog.Logger, *testlog.Buffer) {
	l := &testlog.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ingestor log:\n%s", l)
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

// delayProxy forwards TCP connections to target, holding back what the
// target sends by delay (read when the bytes arrive); what the client
// sends passes at once.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // nanoseconds

	mu    sync.Mutex
	conns []net.Conn
}

func startDelayProxy(t testing.TB, target string) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *delayProxy) addr() string { return p.ln.Addr().String() }

func (p *delayProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() {
			_, _ = io.Copy(s, c)
			s.Close()
			c.Close()
		}()
		go p.delayed(c, s)
	}
}

// delayed copies src to dst, each chunk delay after it was read.
func (p *delayProxy) delayed(dst, src net.Conn) {
	type chunk struct {
		due time.Time
		b   []byte
	}
	chunks := make(chan chunk, 4096)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{time.Now().Add(time.Duration(p.delay.Load())), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	broken := false
	for c := range chunks {
		if broken {
			continue // drain, so that the reader can end
		}
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			broken = true
			dst.Close()
			src.Close()
		}
	}
	dst.Close()
}

func (p *delayProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}
