package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// When JetStream cannot acknowledge a record, the call is still answered,
// and the record is kept in the spool: at once when no stream answers (the
// server says so), otherwise once the record budget runs out.
// From then on the recorder is degraded: the next record goes straight to
// the spool without waiting for a JetStream that is not answering.
func TestRecordBudget(t *testing.T) {
	const budget = 200 * time.Millisecond
	cases := []struct {
		name string
		ns   func(t *testing.T) *server.Server
	}{
		{"stream missing", func(t *testing.T) *server.Server { return natstest.RunServer(t) }},
		{"JetStream disabled", func(t *testing.T) *server.Server {
			opts := natstest.Options(t.TempDir())
			opts.JetStream = false
			return natstest.RunServerWith(t, opts)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var dataDir string
			e := newEnv(t, envOptions{ns: c.ns(t), noStream: true, cfg: func(cfg *Config) {
				cfg.RecordTimeout = budget
				cfg.DecideTimeout = time.Second
				dataDir = cfg.DataDir
			}})
			// No decider either: the CALL_ACTION falls back at once.
			bodies := [][]byte{
				seedBody(t),
				event(t, wire.EventCallStatus, map[string]any{"eventId": "status-spooled", "subAccountId": "a.b c*"}),
			}
			var answers []answer
			for _, b := range bodies {
				a := e.post(b)
				if a.status != http.StatusOK {
					t.Fatalf("status %d, want 200 even without JetStream: %s", a.status, a.body)
				}
				answers = append(answers, a)
			}
			wantFallback(t, answers[0])

			entries := readSpool(t, dataDir)
			if len(entries) != 2 {
				t.Fatalf("%d entries in the spool, want 2", len(entries))
			}
			want := []struct{ subject, id string }{
				{"calls.CALL_ACTION." + seedSubAccount, seedEventID},
				{"calls.CALL_STATUS.a_b_c_", "status-spooled"},
			}
			for i, en := range entries {
				if en.Subject != want[i].subject || en.ID != want[i].id {
					t.Errorf("entry %d: %s %s, want %s %s", i, en.Subject, en.ID, want[i].subject, want[i].id)
				}
				r, err := wire.ParseRecord(en.Data)
				if err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				if r.ID != want[i].id || !bytes.Equal(r.Event, bytes.TrimSpace(bodies[i])) {
					t.Errorf("entry %d: record %s does not hold the posted event", i, en.Data)
				}
			}
			if d := mustParse(t, entries[0].Data).Decision; d == nil || d.FallbackReason != ReasonNoResponders {
				t.Errorf("spooled CALL_ACTION decision = %+v, want a no_responders fallback", d)
			}
			if s := e.srv.Stats(); s.Spooled != 2 || s.Recorded != 0 || s.Requests != 2 || s.Lost != 0 {
				t.Errorf("stats = %+v, want 2 spooled", s)
			}
			// The first record waited for JetStream; the second did not.
			m := e.srv.metrics
			if n := testutil.ToFloat64(m.spooled.WithLabelValues(SpoolDegraded)); n != 1 {
				t.Errorf("records spooled without publishing = %v, want 1 (the second)", n)
			}
			if n := testutil.ToFloat64(m.spooled.WithLabelValues(SpoolError)); n != 1 {
				t.Errorf("records spooled after a failed publish = %v, want 1 (the first: no stream answered)", n)
			}
		})
	}
}

func mustParse(t testing.TB, b []byte) *wire.Record {
	t.Helper()
	r, err := wire.ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A stream created after the ingestor started is used without a restart,
// and the record spooled while it was missing is republished into it.
func TestRecordStreamCreatedLater(t *testing.T) {
	e := newEnv(t, envOptions{noStream: true, deciders: 1, cfg: func(c *Config) {
		c.RecordTimeout = 200 * time.Millisecond
	}})
	if a := e.post(callAction(t, "before")); a.status != http.StatusOK {
		t.Fatalf("%s", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, e.js, broker.StreamConfig{
		Name: testStream, MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1,
	}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	a := e.post(callAction(t, "after"))
	if a.status != http.StatusOK {
		t.Fatalf("%s", a)
	}
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n := e.count(); n != 2 {
			return fmt.Errorf("%d records in the stream, want 2", n)
		}
		return nil
	})
	checkRecord(t, e.recordOf("before"), "before", wire.EventCallAction, "calls.CALL_ACTION."+seedSubAccount, callAction(t, "before"))
	checkRecord(t, e.recordOf("after"), "after", wire.EventCallAction, "calls.CALL_ACTION."+seedSubAccount, callAction(t, "after"))
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s := e.srv.Stats(); s.Recorded+s.Spooled != 2 || s.Spooled < 1 || s.SpoolWaiting != 0 {
			return fmt.Errorf("stats = %+v, want 2 recorded or spooled, none waiting", s)
		}
		return nil
	})
}

// Records whose publish failed (no stream yet) are spooled from the
// buffer they were written in, and republished later, while more calls
// come in reusing the ingestor's buffers: every stored message must hold
// its own call's record, never what a later call wrote into a reused
// buffer.
func TestRecordRetryPublishesItsOwnBytes(t *testing.T) {
	e := newEnv(t, envOptions{noStream: true, deciders: 1, cfg: func(c *Config) {
		c.RecordTimeout = 100 * time.Millisecond
	}})
	for i := range 3 {
		if a := e.post(callAction(t, fmt.Sprintf("early-%d", i))); a.status != http.StatusOK {
			t.Fatalf("%s", a)
		}
	}
	// The stream appears while the early records wait in the spool, and
	// more calls come in, reusing the ingestor's buffers.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, e.js, broker.StreamConfig{
		Name: testStream, MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1,
	}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if a := e.post(callAction(t, fmt.Sprintf("late-%02d", i))); a.status != http.StatusOK {
			t.Fatalf("%s", a)
		}
	}
	for _, m := range e.messages() {
		if m.err != nil {
			t.Errorf("message %q: unreadable record: %v: %s", m.msgID, m.err, m.data)
			continue
		}
		if m.rec.ID != m.msgID {
			t.Errorf("message with Nats-Msg-Id %q holds the record of %q", m.msgID, m.rec.ID)
		}
	}
}

// The eventId is the sender's text: whatever it holds, the spool keeps the
// record under the id it is published with, which for an eventId that is
// not a plain token is a hash of itself.
func TestSpoolWithOddEventIDs(t *testing.T) {
	var dataDir string
	e := newEnv(t, envOptions{noStream: true, cfg: func(c *Config) {
		c.RecordTimeout = 100 * time.Millisecond
		dataDir = c.DataDir
	}})
	ids := []string{"ev with space", "ev\nnewline", "plain"}
	for _, id := range ids {
		if a := e.post(callAction(t, id)); a.status != http.StatusOK {
			t.Fatalf("%q: %s", id, a)
		}
	}
	entries := readSpool(t, dataDir)
	if len(entries) != len(ids) {
		t.Fatalf("%d entries, want %d", len(entries), len(ids))
	}
	for i, en := range entries {
		r := mustParse(t, en.Data)
		switch {
		case r.ID != en.ID:
			t.Errorf("entry %d: spooled id %q, record id %q", i, en.ID, r.ID)
		case ids[i] == "plain" && r.ID != "plain":
			t.Errorf("entry %d: record id %q, want the plain eventId kept", i, r.ID)
		case ids[i] != "plain" && !strings.HasPrefix(r.ID, "h-"):
			t.Errorf("entry %d: record id %q for eventId %q, want a hash", i, r.ID, ids[i])
		}
	}
}
