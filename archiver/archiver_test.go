package archiver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/callflow/callflow/internal/broker"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// env is one test's world: a NATS server with the records stream, and a
// fresh database on a ClickHouse server.
type env struct {
	js   jetstream.JetStream
	ch   driver.Conn
	addr string
	db   string
}

func newEnv(t *testing.T, chAddr string) *env {
	t.Helper()
	ns := natstest.RunServer(t)
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamConfig{Name: "CALLS", MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	return &env{js: js, ch: chtest.Conn(t, chAddr), addr: chAddr, db: chtest.Database(t, chAddr)}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (e *env) config(t *testing.T) Config {
	return Config{
		ClickHouse: ClickHouseConfig{Addrs: []string{e.addr}, Database: e.db},
		Batch:      BatchConfig{MaxRows: 1000, MaxBytes: 1 << 20, MaxAge: 100 * time.Millisecond},
		AckWait:    5 * time.Second,
		RetryMin:   50 * time.Millisecond,
		RetryMax:   500 * time.Millisecond,
		Logger:     testLogger(t),
	}
}

// run starts an archiver; the returned stop ends it and waits.
func (e *env) run(t *testing.T, cfg Config) (*Archiver, func()) {
	t.Helper()
	a, err := Open(e.js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx, 10*time.Second); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("archiver did not stop within 30s")
		}
		_ = a.Close()
	}
	t.Cleanup(stop)
	return a, stop
}

// record builds a record as the ingestor writes it.
func record(i int, eventType string) (subject, id string, data []byte) {
	id = fmt.Sprintf("ev-%06d", i)
	body := fmt.Sprintf(`{"namespace":"VOICE","eventType":%q,"payload":{"eventId":%q,"callId":"c-%d","sessionId":"s-%d","subAccountId":"acct-%d","callStatus":"CALL_RECEIVED","source":"+6512345678","destination":"+6598765432","callDuration":%d,"sipCode":200,"timestamp":"2026-11-25T08:%02d:%02d.123Z"}}`,
		eventType, id, i, i, i%3, i%60, i%60, i%60)
	rec := wire.Record{Version: wire.RecordVersion, ID: id, EventType: eventType, ReceivedAt: time.Now(), Instance: "test", Event: []byte(body)}
	if eventType == wire.EventCallAction {
		rec.Decision = &wire.Decision{Source: wire.SourceDecider, Outcome: wire.OutcomeConnect, LatencyMicros: int64(100 + i),
			Callflow: []byte(`{"clientActionId":"x","callflow":[{"action":"hangup"}]}`)}
		if i%5 == 4 {
			rec.Decision.Source, rec.Decision.Outcome, rec.Decision.FallbackReason = wire.SourceFallback, wire.OutcomeFallback, "timeout"
		}
	}
	return wire.Subject(eventType, fmt.Sprintf("acct-%d", i%3)), id, rec.AppendJSON(nil)
}

func (e *env) publish(t *testing.T, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i < to; i++ {
		subject, id, data := record(i, wire.EventCallAction)
		if _, err := e.js.Publish(ctx, subject, data, jetstream.WithMsgID(id)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

func (e *env) count(t *testing.T, query string) uint64 {
	t.Helper()
	return chtest.Count(t, e.ch, strings.ReplaceAll(query, "DB.", e.db+"."))
}

func (e *env) waitRows(t *testing.T, query string, want uint64) {
	t.Helper()
	query = strings.ReplaceAll(query, "DB.", e.db+".")
	natstest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		var got uint64
		if err := e.ch.QueryRow(context.Background(), query).Scan(&got); err != nil {
			return err // the archiver may not have created the tables yet
		}
		if got != want {
			return fmt.Errorf("%s = %d, want %d", query, got, want)
		}
		return nil
	})
}

// waitConsumer waits until check accepts the state of the archiver's
// durable consumer.
func (e *env) waitConsumer(t *testing.T, check func(*jetstream.ConsumerInfo) error) {
	t.Helper()
	natstest.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cons, err := e.js.Consumer(ctx, "CALLS", DefaultDurable)
		if err != nil {
			return err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		return check(info)
	})
}

func TestArchiveEveryRecordOnce(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	e.publish(t, 0, 250)
	a, stop := e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", 250)
	e.publish(t, 250, 300)
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", 300)
	stop()
	if st := a.Stats(); st.Rows != 300 || st.Rejected != 0 {
		t.Errorf("stats %+v, want 300 rows", st)
	}

	// Every column a user filters on holds what the record said.
	var (
		eventType, callID, sub, status, src, dst, source, outcome, raw, callflow string
		sip                                                                      uint16
		duration, latency                                                        uint32
		eventTime                                                                time.Time
	)
	row := e.ch.QueryRow(context.Background(), "SELECT event_type, call_id, sub_account_id, call_status, source, destination, decision_source, decision_outcome, raw, callflow, sip_code, call_duration, decision_latency_us, event_time FROM "+e.db+".call_events FINAL WHERE event_id = 'ev-000007'")
	if err := row.Scan(&eventType, &callID, &sub, &status, &src, &dst, &source, &outcome, &raw, &callflow, &sip, &duration, &latency, &eventTime); err != nil {
		t.Fatal(err)
	}
	_, _, data := record(7, wire.EventCallAction)
	want, _ := wire.ParseRecord(data)
	if eventType != "CALL_ACTION" || callID != "c-7" || sub != "acct-1" || status != "CALL_RECEIVED" || src != "+6512345678" || dst != "+6598765432" ||
		source != "decider" || outcome != "connect" || raw != string(want.Event) || !json.Valid([]byte(callflow)) || sip != 200 || duration != 7 || latency != 107 ||
		!eventTime.Equal(time.Date(2026, 11, 25, 8, 7, 7, 0, time.UTC)) {
		t.Errorf("row: %s %s %s %s %s %s %s %s %d %d %d %s", eventType, callID, sub, status, src, dst, source, outcome, sip, duration, latency, eventTime)
	}
}

func TestBatchByCountAndAge(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	cfg := e.config(t)
	cfg.Batch.MaxRows = 10
	cfg.Batch.MaxAge = time.Hour // only the count sends a batch
	cfg.AckWait = 4 * time.Hour
	e.publish(t, 0, 25)
	a, stop := e.run(t, cfg)
	e.waitRows(t, "SELECT count() FROM DB.call_events", 20)
	// The last 5 are in the archiver's hands (all delivered, none
	// acknowledged) and wait for a count that has not come.
	e.waitConsumer(t, func(info *jetstream.ConsumerInfo) error {
		if info.NumPending != 0 || info.NumAckPending != 5 {
			return fmt.Errorf("%d records undelivered and %d unacknowledged, want 0 and 5", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	if n := e.count(t, "SELECT count() FROM DB.call_events"); n != 20 {
		t.Fatalf("%d rows before the age limit, want 20 (two full batches)", n)
	}
	// Five more fill their batch: every insert so far was a full one, so
	// the 5 were never sent on their own.
	e.publish(t, 25, 30)
	e.waitRows(t, "SELECT count() FROM DB.call_events", 30)
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if st := a.Stats(); st.Rows != 30 || st.Batches < 3 {
			return fmt.Errorf("stats %+v, want 30 rows counted", st)
		}
		return nil
	})
	if st := a.Stats(); st.Batches != 3 {
		t.Fatalf("stats %+v after 30 records, want 3 batches of 10", st)
	}
	e.publish(t, 30, 32)
	e.waitConsumer(t, func(info *jetstream.ConsumerInfo) error {
		if info.NumPending != 0 || info.NumAckPending != 2 {
			return fmt.Errorf("%d records undelivered and %d unacknowledged, want 0 and 2", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	stop() // a stop sends the batch in hand
	if n := e.count(t, "SELECT count() FROM DB.call_events"); n != 32 {
		t.Fatalf("%d rows after stop, want 32", n)
	}
	if st := a.Stats(); st.Batches != 4 {
		t.Fatalf("stats %+v after stop, want a fourth batch", st)
	}

	// By age: a lone record is sent when the batch is MaxAge old.
	e2 := newEnv(t, chtest.Addr(t))
	cfg = e2.config(t)
	cfg.Batch.MaxRows = 1000
	cfg.Batch.MaxAge = 200 * time.Millisecond
	e2.run(t, cfg)
	e2.publish(t, 0, 1)
	e2.waitRows(t, "SELECT count() FROM DB.call_events", 1)
}

// TestRedeliveryIsIdempotent: records archived twice (a replay, or an
// archiver that died between insert and ack) read once through FINAL.
func TestRedeliveryIsIdempotent(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	e.publish(t, 0, 100)
	a, err := Open(e.js, e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A replay inserts without acknowledging: the durable consumer will
	// deliver the same 100 records again.
	if n, err := a.Replay(ctx, ReplayConfig{StartSeq: 1}); err != nil || n != 100 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", 200)
	if n := e.count(t, "SELECT count() FROM DB.call_events FINAL"); n != 100 {
		t.Errorf("FINAL count %d, want 100", n)
	}
	if n := e.count(t, "SELECT uniq(event_id) FROM DB.call_events"); n != 100 {
		t.Errorf("uniq(event_id) %d, want 100", n)
	}
	if n := e.count(t, "SELECT toUInt64(uniqMerge(calls)) FROM DB.calls_per_minute"); n != 100 {
		t.Errorf("calls_per_minute sums to %d distinct calls, want 100", n)
	}
}

// TestPoisonSetAside: a message that is not a record is stored in
// rejected_records and does not block the records after it.
func TestPoisonSetAside(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	e.publish(t, 0, 10)
	ctx := context.Background()
	for _, bad := range []string{`not json`, `{"v":99,"id":"future","event":{}}`, `{"v":1,"id":"no-event"}`, `{"v":1,"id":"bad-event","eventType":"X","event":{"payload":1}}`} {
		if _, err := e.js.Publish(ctx, "calls.CALL_ACTION.acct", []byte(bad)); err != nil {
			t.Fatal(err)
		}
	}
	e.publish(t, 10, 20)
	a, _ := e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", 20)
	e.waitRows(t, "SELECT count() FROM DB.rejected_records", 4)
	var reason, data string
	if err := e.ch.QueryRow(ctx, "SELECT reason, data FROM "+e.db+".rejected_records WHERE data = 'not json'").Scan(&reason, &data); err != nil || reason == "" {
		t.Errorf("rejected record: %q %q %v", reason, data, err)
	}
	natstest.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if st := a.Stats(); st.Rejected != 4 {
			return fmt.Errorf("stats %+v, want 4 rejected", st)
		}
		return nil
	})
}

// TestClickHouseOutage: while ClickHouse is down records wait in
// JetStream; when it returns the archiver catches up, nothing lost.
func TestClickHouseOutage(t *testing.T) {
	srv := chtest.StartServer(t)
	e := newEnv(t, srv.Addr)
	cfg := e.config(t)
	a, _ := e.run(t, cfg)
	e.publish(t, 0, 50)
	e.waitRows(t, "SELECT count() FROM DB.call_events", 50)

	srv.Stop(t)
	e.publish(t, 50, 150)
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if a.Stats().Retries == 0 {
			return fmt.Errorf("no retry yet")
		}
		return nil
	})
	srv.Start(t)
	e.ch = chtest.Conn(t, srv.Addr)
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", 150)
}

// TestClickHouseDownAtStart: the archiver starts before ClickHouse and
// begins once it answers.
func TestClickHouseDownAtStart(t *testing.T) {
	srv := chtest.StartServer(t)
	e := newEnv(t, srv.Addr)
	srv.Stop(t)
	e.publish(t, 0, 30)
	a, _ := e.run(t, e.config(t))
	// It tried, and failed, while ClickHouse was down.
	natstest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if a.Stats().Retries == 0 {
			return fmt.Errorf("no retry yet")
		}
		return nil
	})
	srv.Start(t)
	e.ch = chtest.Conn(t, srv.Addr)
	e.waitRows(t, "SELECT count() FROM DB.call_events FINAL", 30)
}

func TestReplay(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	e.publish(t, 0, 40)
	_, stop := e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", 40)
	stop()
	ctx := context.Background()
	if err := e.ch.Exec(ctx, "TRUNCATE TABLE "+e.db+".call_events"); err != nil {
		t.Fatal(err)
	}
	a, err := Open(e.js, e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var last [2]uint64
	n, err := a.Replay(ctx, ReplayConfig{Since: time.Now().Add(-time.Hour), Progress: func(done, total uint64) { last = [2]uint64{done, total} }})
	if err != nil || n != 40 || last != [2]uint64{40, 40} {
		t.Fatalf("replay since an hour ago: %d %v, progress %v", n, err, last)
	}
	if n, err := a.Replay(ctx, ReplayConfig{StartSeq: 31}); err != nil || n != 10 {
		t.Fatalf("replay from seq 31: %d %v", n, err)
	}
	if got := e.count(t, "SELECT count() FROM DB.call_events FINAL"); got != 40 {
		t.Errorf("after two replays FINAL count %d, want 40", got)
	}
	if _, err := a.Replay(ctx, ReplayConfig{StartSeq: 1000}); err != ErrNothingToReplay {
		t.Errorf("replay past the end: %v, want ErrNothingToReplay", err)
	}
}

// TestSchemaFileInSync: deploy/clickhouse/schema.sql is what the archiver
// applies, for the default database.
func TestSchemaFileInSync(t *testing.T) {
	b, err := os.ReadFile("../deploy/clickhouse/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != SchemaSQL(DefaultDatabase) {
		t.Fatal("deploy/clickhouse/schema.sql differs from archiver/schema.sql: regenerate it with `go run ./cmd/callflow archiver schema > deploy/clickhouse/schema.sql`")
	}
}

// TestExampleQueries runs every query of deploy/clickhouse/queries.sql as
// written (against a test database) over archived data.
func TestExampleQueries(t *testing.T) {
	e := newEnv(t, chtest.Addr(t))
	e.publish(t, 0, 30)
	ctx := context.Background()
	summary := wire.Record{Version: 1, ID: "sum-1", EventType: wire.EventSessionSummary, ReceivedAt: time.Now(), Instance: "t",
		Event: []byte(`{"namespace":"VOICE","eventType":"SESSION_SUMMARY","payload":{"sessionId":"s-1","subAccountId":"acct-1","sessionStatus":"COMPLETED","startTime":"2026-11-25T08:00:00Z","endTime":"2026-11-25T08:03:00Z","callCount":2,"lastAction":"makeCall"}}`)}
	if _, err := e.js.Publish(ctx, "calls.SESSION_SUMMARY.acct-1", summary.AppendJSON(nil), jetstream.WithMsgID("sum-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(ctx, "calls.CALL_ACTION.acct-1", []byte("not a record")); err != nil {
		t.Fatal(err)
	}
	// A masking session's day, recent enough for the queries that look at
	// the last 30 days, with the session the queries name as example.
	masking := maskingFixture(time.Now().UTC().Truncate(time.Hour).Add(-4 * time.Hour))
	e.publishAll(t, masking)
	// Callers through an IVR flow, for the funnel and digits queries.
	flows := flowFixture(time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour))
	e.publishAll(t, flows)
	e.run(t, e.config(t))
	e.waitRows(t, "SELECT count() FROM DB.call_events", uint64(31+len(masking)+len(flows)))
	e.waitRows(t, "SELECT count() FROM DB.rejected_records", 1)

	b, err := os.ReadFile("../deploy/clickhouse/queries.sql")
	if err != nil {
		t.Fatal(err)
	}
	queries := SplitSQL(string(b))
	if len(queries) < 19 {
		t.Fatalf("only %d queries in queries.sql", len(queries))
	}
	for i, q := range queries {
		q = strings.ReplaceAll(q, "callflow.", e.db+".")
		rows, err := e.ch.Query(ctx, q)
		if err != nil {
			t.Errorf("query %d fails: %v\n%s", i+1, err, q)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("query %d: %v", i+1, err)
		}
		rows.Close()
		if n == 0 {
			t.Errorf("query %d returned no rows over archived data:\n%s", i+1, q)
		}
	}
}
