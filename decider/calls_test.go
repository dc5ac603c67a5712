package decider_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricValue reads one labelled series of a counter from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, label, value) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// updates reads callflow_session_updates_total by result.
func updates(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, r := range []string{"recorded", "not_found", "failed", "dropped"} {
		out[r] = metricValue(t, reg, "callflow_session_updates_total", "result", r)
	}
	return out
}

func checkUpdates(t testing.TB, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	got := updates(t, reg)
	for r, n := range got {
		if n != want[r] {
			t.Errorf("callflow_session_updates_total = %v, want %v", got, want)
			return
		}
	}
}

func TestMetricsPreregistered(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	decider.NewMetrics(reg)
	for _, o := range []string{"connect", "out_of_session", "forward", "follow_up", "error"} {
		if v := metricValue(t, reg, "callflow_decider_requests_total", "outcome", o); v != 0 {
			t.Errorf("outcome %s = %v", o, v)
		}
	}
	checkUpdates(t, reg, map[string]float64{})
}

// gatedSessions is a real store whose RecordCall waits for the test: it
// says when a write begins (entered) and goes on when released (a value
// sent on release lets one write go on, closing it lets all), or fails
// with its context.
type gatedSessions struct {
	*session.Store
	entered chan write
	release chan struct{}
}

// write is a write of calls to a session.
type write struct {
	id string
	n  int64
}

func gate(st *session.Store) *gatedSessions {
	return &gatedSessions{Store: st, entered: make(chan write, 100), release: make(chan struct{})}
}

func (g *gatedSessions) RecordCalls(ctx context.Context, id string, n int64, at time.Time) (session.Session, error) {
	g.entered <- write{id, n}
	select {
	case <-g.release:
	case <-ctx.Done():
		return session.Session{}, fmt.Errorf("record calls: %w", ctx.Err())
	}
	return g.Store.RecordCalls(ctx, id, n, at)
}

// waitEntered waits until a write has begun.
func (g *gatedSessions) waitEntered(t testing.TB) write {
	t.Helper()
	select {
	case w := <-g.entered:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("no session write began")
		return write{}
	}
}

// readSession reads a session from the bucket.
func readSession(t testing.TB, st *session.Store, id string) session.Session {
	t.Helper()
	s, err := st.Get(testContext(t), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return s
}

func TestCallCounting(t *testing.T) {
	// End to end: calls connected through a decider (over NATS, and in
	// the process as serve's ingest asks) are counted in the bucket after
	// the answer; an idle session's expiry moves with them; maxCalls
	// closes the session, and the next call is out of session.
	srv := natstest.RunServer(t)
	client, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	reg := prometheus.NewRegistry()
	d := startDecider(t, srv, st, decider.Config{Metrics: decider.NewMetrics(reg)})
	const ttl = 3600
	s := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB},
		TTLMode: session.TTLIdle, TTLSeconds: ttl, MaxCalls: 3})

	checkCounted := func(n int64, after, before time.Time) session.Session {
		t.Helper()
		var got session.Session
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			got = readSession(t, st, s.ID)
			if got.CallCount != n {
				return fmt.Errorf("callCount %d, want %d", got.CallCount, n)
			}
			return nil
		})
		if got.LastCallAt == nil || got.LastCallAt.Before(after) || got.LastCallAt.After(before) {
			t.Errorf("call %d: lastCallAt %v, want between %v and %v", n, got.LastCallAt, after, before)
		} else if got.ExpiresAt == nil || !got.ExpiresAt.Equal(got.LastCallAt.Add(ttl*time.Second)) {
			t.Errorf("call %d: expiresAt %v, want lastCallAt + %ds", n, got.ExpiresAt, ttl)
		}
		return got
	}

	// 1: over NATS.
	before := time.Now()
	msg := ask(t, client, decider.DefaultSubject, decideBody(pA, vn1))
	if outcomeOf(msg) != wire.OutcomeConnect {
		t.Fatalf("first call: %s", msg.Data)
	}
	got := checkCounted(1, before, time.Now())
	if got.Status != session.StatusOpen || !got.ExpiresAt.After(*s.ExpiresAt) {
		t.Errorf("after one call: status %s, expiresAt %v (was %v)", got.Status, got.ExpiresAt, s.ExpiresAt)
	}

	// 2: in the process (serve's ingest).
	before = time.Now()
	req := wire.DecideRequest{SubAccountID: "a", CallStatus: "CALL_RECEIVED", Source: pB, Destination: vn1}
	if _, v := d.Decide(nil, &req, time.Now()); v.Outcome != wire.OutcomeConnect {
		t.Fatalf("second call: %+v", v)
	}
	checkCounted(2, before, time.Now())

	// 3 reaches maxCalls: the session closes.
	before = time.Now()
	if msg := ask(t, client, decider.DefaultSubject, decideBody(pB, vn1)); outcomeOf(msg) != wire.OutcomeConnect {
		t.Fatalf("third call: %s", msg.Data)
	}
	got = checkCounted(3, before, time.Now())
	if got.Status != session.StatusClosed || got.ClosedReason == nil || *got.ClosedReason != session.ClosedMaxCalls {
		t.Errorf("after maxCalls: status %s, reason %v", got.Status, got.ClosedReason)
	}
	// The closing reaches the index: the next call is out of session, and
	// not counted.
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if msg := ask(t, client, decider.DefaultSubject, decideBody(pA, vn1)); outcomeOf(msg) != wire.OutcomeOutOfSession {
			return fmt.Errorf("after maxCalls: %s", msg.Data)
		}
		return nil
	})
	// Out-of-session and follow-up answers count nothing.
	follow := wire.DecideRequest{CallStatus: "ACTION_COMPLETED", Source: pA, Destination: vn1}
	if _, v := d.Decide(nil, &follow, time.Now()); v.Outcome != wire.OutcomeFollowUp {
		t.Errorf("follow-up: %+v", v)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := readSession(t, st, s.ID); got.CallCount != 3 {
		t.Errorf("callCount %d after calls out of session, want 3", got.CallCount)
	}
	checkUpdates(t, reg, map[string]float64{"recorded": 3})
	if n := metricValue(t, reg, "callflow_decider_requests_total", "outcome", "follow_up"); n != 1 {
		t.Errorf("follow_up requests = %v, want 1", n)
	}
}

func TestCallCountedAfterTheAnswer(t *testing.T) {
	// The answer never waits on the write: with the store's write held,
	// the caller has its answer and the bucket has not counted the call;
	// the count follows once the write goes on.
	srv := natstest.RunServer(t)
	client, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	g := gate(st)
	reg := prometheus.NewRegistry()
	startDecider(t, srv, g, decider.Config{CountDelay: -1, Metrics: decider.NewMetrics(reg)})
	s := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})

	msg := ask(t, client, decider.DefaultSubject, decideBody(pA, vn1))
	if outcomeOf(msg) != wire.OutcomeConnect {
		t.Fatalf("call: %s", msg.Data)
	}
	if w := g.waitEntered(t); w != (write{s.ID, 1}) {
		t.Fatalf("write %+v, want one call of session %s", w, s.ID)
	}
	if got := readSession(t, st, s.ID); got.CallCount != 0 || got.LastCallAt != nil {
		t.Fatalf("counted before the write was released: %+v", got)
	}
	close(g.release)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := readSession(t, st, s.ID); got.CallCount != 1 {
			return fmt.Errorf("callCount %d, want 1", got.CallCount)
		}
		return nil
	})
}

// inProcess starts a decider over sessions with cfg and returns it with
// its metrics.
func inProcess(t *testing.T, sessions decider.Sessions, cfg decider.Config) (*decider.Service, *prometheus.Registry) {
	t.Helper()
	srv := natstest.RunServer(t)
	reg := prometheus.NewRegistry()
	cfg.Metrics = decider.NewMetrics(reg)
	return startDecider(t, srv, sessions, cfg), reg
}

func connectReq(source string) *wire.DecideRequest {
	return &wire.DecideRequest{CallStatus: "CALL_RECEIVED", Source: source, Destination: vn1}
}

func TestCallCountingQueueFull(t *testing.T) {
	// A full queue drops the call's count (and counts the drop); the
	// answer is the same.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	g := gate(st)
	d, reg := inProcess(t, g, decider.Config{CallQueue: 1, CallWriters: 1, CountDelay: -1})
	s := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})

	if _, v := d.Decide(nil, connectReq(pA), time.Now()); v.Outcome != wire.OutcomeConnect {
		t.Fatalf("first call: %+v", v)
	}
	g.waitEntered(t) // the only writer holds the first call
	const calls = 6  // the second waits in the queue, the rest are dropped
	for i := 1; i < calls; i++ {
		if _, v := d.Decide(nil, connectReq(pB), time.Now()); v.Outcome != wire.OutcomeConnect || v.MaskingSessionID != s.ID {
			t.Fatalf("call %d: %+v", i+1, v)
		}
	}
	checkUpdates(t, reg, map[string]float64{"dropped": calls - 2})
	close(g.release)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := updates(t, reg)["recorded"]; got != 2 {
			return fmt.Errorf("recorded %v, want 2", got)
		}
		return nil
	})
	if got := readSession(t, st, s.ID); got.CallCount != 2 {
		t.Errorf("callCount %d, want 2", got.CallCount)
	}
}

func TestCallCountingResults(t *testing.T) {
	// A session deleted before its call is written is not_found; a write
	// that fails (its timeout) is failed. Neither is retried.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	g := gate(st)
	d, reg := inProcess(t, g, decider.Config{CallWriters: 1, CallWriteTimeout: 200 * time.Millisecond, CountDelay: -1})
	s := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})

	// Held past its timeout: failed.
	d.Decide(nil, connectReq(pA), time.Now())
	g.waitEntered(t)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := updates(t, reg)["failed"]; got != 1 {
			return fmt.Errorf("failed %v, want 1", got)
		}
		return nil
	})

	// Deleted while its write is held: not_found.
	d.Decide(nil, connectReq(pA), time.Now())
	g.waitEntered(t)
	if _, err := st.Delete(testContext(t), s.ID); err != nil {
		t.Fatal(err)
	}
	g.release <- struct{}{}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := updates(t, reg)["not_found"]; got != 1 {
			return fmt.Errorf("not_found %v, want 1", got)
		}
		return nil
	})
	checkUpdates(t, reg, map[string]float64{"failed": 1, "not_found": 1})
}

func TestCallCountsMerged(t *testing.T) {
	// The calls of a session that queue up while a write is under way are
	// written together, by the one writer that has the session (though
	// three more are idle), in one write that adds them all.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	g := gate(st)
	d, reg := inProcess(t, g, decider.Config{CallWriters: 4})
	s := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB},
		TTLMode: session.TTLIdle, TTLSeconds: 600})

	d.Decide(nil, connectReq(pA), time.Now())
	if w := g.waitEntered(t); w != (write{s.ID, 1}) {
		t.Fatalf("first write %+v", w)
	}
	const more = 10
	var last time.Time
	for i := range more {
		last = time.Now().Add(time.Duration(i) * time.Second) // the latest is the last call
		d.Decide(nil, connectReq(pB), last)
	}
	close(g.release)
	if w := g.waitEntered(t); w != (write{s.ID, more}) {
		t.Fatalf("second write %+v, want the %d calls queued meanwhile", w, more)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := updates(t, reg)["recorded"]; got != more+1 {
			return fmt.Errorf("recorded %v, want %d", got, more+1)
		}
		return nil
	})
	got := readSession(t, st, s.ID)
	if got.CallCount != more+1 || got.LastCallAt == nil || !got.LastCallAt.Equal(last.UTC()) || !got.ExpiresAt.Equal(last.UTC().Add(600*time.Second)) {
		t.Errorf("callCount %d, lastCallAt %v, expiresAt %v; want %d, %v and 10 minutes later", got.CallCount, got.LastCallAt, got.ExpiresAt, more+1, last.UTC())
	}
}

// deferredGauge reads callflow_session_counts_deferred.
func deferredGauge(t testing.TB, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "callflow_session_counts_deferred" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no callflow_session_counts_deferred")
	return 0
}

func TestCallCountsDeferred(t *testing.T) {
	// The calls of a session whose lifecycle does not turn on them wait
	// for Config.CountDelay, merged into one write; a session with
	// maxCalls or an idle expiry is written at once, as is a session
	// given maxCalls while calls of it wait (with those calls); Stop
	// writes what still waits.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	g := gate(st)
	close(g.release)
	d, reg := inProcess(t, g, decider.Config{CallWriters: 1, CountDelay: time.Hour, StopTimeout: 20 * time.Second})
	plain := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	idle := createSession(t, st, session.Request{VirtualNumber: vn2, Participants: []string{pA, pB}, TTLMode: session.TTLIdle, TTLSeconds: 600})
	later := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pC, pD}})
	call := func(source, virtual, want string) {
		t.Helper()
		req := wire.DecideRequest{CallStatus: "CALL_RECEIVED", Source: source, Destination: virtual}
		if _, v := d.Decide(nil, &req, time.Now()); v.Outcome != wire.OutcomeConnect || v.MaskingSessionID != want {
			t.Fatalf("call from %s to %s: %+v, want a connect in %s", source, virtual, v, want)
		}
	}

	for range 3 {
		call(pA, vn1, plain.ID)
	}
	call(pC, vn1, later.ID)
	call(pA, vn2, idle.ID)
	// The idle session's call is the first write: the others wait.
	if w := g.waitEntered(t); w != (write{idle.ID, 1}) {
		t.Fatalf("first write %+v, want the idle session's call", w)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if n := deferredGauge(t, reg); n != 2 {
			return fmt.Errorf("%v sessions deferred, want 2", n)
		}
		return nil
	})

	// Given maxCalls, a session's waiting calls go with its next one.
	maxCalls := int64(10)
	if _, err := st.Update(testContext(t), later.ID, session.Patch{MaxCalls: &maxCalls}); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !st.CountsMatter(later.ID) {
			return errors.New("the index does not have maxCalls yet")
		}
		return nil
	})
	call(pC, vn1, later.ID)
	if w := g.waitEntered(t); w != (write{later.ID, 2}) {
		t.Fatalf("write %+v, want the two calls of the session given maxCalls", w)
	}
	select {
	case w := <-g.entered:
		t.Fatalf("write %+v before the delay or Stop", w)
	default:
	}
	if got := readSession(t, st, plain.ID); got.CallCount != 0 {
		t.Errorf("plain session counted before the delay: %d", got.CallCount)
	}

	// Stop writes the calls still waiting, merged.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if w := g.waitEntered(t); w != (write{plain.ID, 3}) {
		t.Fatalf("write at Stop %+v, want the plain session's three calls", w)
	}
	if got := readSession(t, st, plain.ID); got.CallCount != 3 || got.LastCallAt == nil {
		t.Errorf("plain session after Stop: callCount %d, lastCallAt %v", got.CallCount, got.LastCallAt)
	}
	checkUpdates(t, reg, map[string]float64{"recorded": 6})
	if n := deferredGauge(t, reg); n != 0 {
		t.Errorf("%v sessions deferred after Stop, want 0", n)
	}
}

func TestCallCountsWrittenAfterTheDelay(t *testing.T) {
	// Without Stop, deferred calls are written once the delay passes, one
	// write for the session's calls meanwhile.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	g := gate(st)
	close(g.release)
	d, reg := inProcess(t, g, decider.Config{CountDelay: 100 * time.Millisecond})
	s := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	last := time.Now()
	for i := range 4 {
		last = time.Now().Add(time.Duration(i) * time.Second)
		d.Decide(nil, connectReq(pA), last)
	}
	w := g.waitEntered(t)
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := updates(t, reg)["recorded"]; got != 4 {
			return fmt.Errorf("recorded %v, want 4", got)
		}
		return nil
	})
	if w.n != 4 {
		// The four calls may straddle one delay only if the machine
		// stalled between them: then two writes add up to 4.
		w2 := g.waitEntered(t)
		if w.n+w2.n != 4 {
			t.Errorf("writes of %d and %d calls, want 4", w.n, w2.n)
		}
	}
	got := readSession(t, st, s.ID)
	if got.CallCount != 4 || got.LastCallAt == nil || !got.LastCallAt.Equal(last.UTC()) {
		t.Errorf("callCount %d, lastCallAt %v; want 4, %v", got.CallCount, got.LastCallAt, last.UTC())
	}
}

func TestServiceStopDrainsCalls(t *testing.T) {
	// Stop writes the counts still queued before it returns.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	g := gate(st)
	d, reg := inProcess(t, g, decider.Config{CallWriters: 1, StopTimeout: 20 * time.Second, CountDelay: -1})
	s := createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	const calls = 5
	d.Decide(nil, connectReq(pA), time.Now())
	g.waitEntered(t)
	for range calls - 1 {
		d.Decide(nil, connectReq(pA), time.Now())
	}
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop() }()
	// Released once the service has unregistered: Stop is then draining
	// the queue (four calls wait behind the one held).
	natstest.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if !d.Stopped() {
			return errors.New("service not stopped")
		}
		return nil
	})
	close(g.release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Stop did not return")
	}
	checkUpdates(t, reg, map[string]float64{"recorded": calls})
	if got := readSession(t, st, s.ID); got.CallCount != calls {
		t.Errorf("callCount %d after Stop, want %d", got.CallCount, calls)
	}
	// After Stop, a call is answered, and its count dropped.
	if _, v := d.Decide(nil, connectReq(pB), time.Now()); v.Outcome != wire.OutcomeConnect {
		t.Errorf("after Stop: %+v", v)
	}
	checkUpdates(t, reg, map[string]float64{"recorded": calls, "dropped": 1})
}

func TestServiceStopBounded(t *testing.T) {
	// Writes that never end (storage unreachable) do not hold Stop past
	// its bound: the write in flight fails, those queued are dropped.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	g := gate(st) // never released
	const bound = 300 * time.Millisecond
	d, reg := inProcess(t, g, decider.Config{CallWriters: 1, CallWriteTimeout: time.Hour, StopTimeout: bound, CountDelay: -1})
	createSession(t, st, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})
	d.Decide(nil, connectReq(pA), time.Now())
	g.waitEntered(t) // the writer holds the first call
	for range 2 {
		d.Decide(nil, connectReq(pA), time.Now())
	}
	start := time.Now()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < bound || took > bound+2*time.Second {
		t.Errorf("Stop took %s, want about %s", took, bound)
	}
	checkUpdates(t, reg, map[string]float64{"failed": 1, "dropped": 2})
}

func TestMaxCallsOverrunAcrossDeciders(t *testing.T) {
	// The package doc's bound: calls decided on several deciders before
	// the closing reaches their index each connect, and each is counted.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	admin := openStore(t, js)
	s := createSession(t, admin, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}, MaxCalls: 1})
	type process struct {
		store *session.Store
		gate  *gatedSessions
		d     *decider.Service
	}
	var procs []process
	for range 2 {
		_, js := natstest.Connect(t, srv)
		st := openStore(t, js) // each process has its own index
		g := gate(st)
		procs = append(procs, process{st, g, startDecider(t, srv, g, decider.Config{})})
	}
	// Both decide before either count is written (held): both connect.
	for i, p := range procs {
		if _, v := p.d.Decide(nil, connectReq(pA), time.Now()); v.Outcome != wire.OutcomeConnect {
			t.Fatalf("decider %d: %+v", i, v)
		}
		p.gate.waitEntered(t)
	}
	for _, p := range procs {
		close(p.gate.release)
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		got := readSession(t, admin, s.ID)
		if got.CallCount != 2 || got.Status != session.StatusClosed || *got.ClosedReason != session.ClosedMaxCalls {
			return fmt.Errorf("callCount %d, status %s, reason %v; want 2, closed, max_calls", got.CallCount, got.Status, got.ClosedReason)
		}
		return nil
	})
	// Once the closing has reached each index, the calls are out of
	// session there.
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for i, p := range procs {
			if _, v := p.d.Decide(nil, connectReq(pB), time.Now()); v.Outcome != wire.OutcomeOutOfSession {
				return fmt.Errorf("decider %d after the closing: %+v", i, v)
			}
		}
		return nil
	})
}

// notifiedSessions is a real store that says when each count's write has
// returned, with its error.
type notifiedSessions struct {
	*session.Store
	written chan error
}

func (s *notifiedSessions) RecordCalls(ctx context.Context, id string, n int64, at time.Time) (session.Session, error) {
	sess, err := s.Store.RecordCalls(ctx, id, n, at)
	s.written <- err
	return sess, err
}

// BenchmarkCallCount is the cost of counting one connected call in its
// session at once, as every call of a session with maxCalls or an idle
// expiry costs once its answer is sent (and the calls of other sessions
// once Config.CountDelay has passed, unless they merge): the
// decision in the process (serve's path), then the count's write waited
// for before the next call, so that none are merged (calls on one session
// in quick succession share a write; in a call centre's traffic calls of
// one session are minutes apart). 100 sessions in turn. NATS runs in the
// process: the allocations include the server's storing of the count in
// the bucket and its delivery to the store's watch.
func BenchmarkCallCount(b *testing.B) {
	srv := natstest.RunServer(b)
	_, js := natstest.Connect(b, srv)
	st := openStore(b, js)
	const sessions = 100
	reqs := make([]wire.DecideRequest, sessions)
	for i := range reqs {
		caller := fmt.Sprintf("+659100%04d", i)
		createSession(b, st, session.Request{VirtualNumber: vn1, Participants: []string{caller, fmt.Sprintf("+659200%04d", i)}})
		reqs[i] = wire.DecideRequest{CallStatus: "CALL_RECEIVED", Source: caller, Destination: vn1}
	}
	ns := &notifiedSessions{Store: st, written: make(chan error, 1)}
	nc, _ := natstest.Connect(b, srv)
	d, err := decider.Start(nc, ns, decider.Config{CountDelay: -1, Metrics: decider.NewMetrics(prometheus.NewRegistry())})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Stop() })
	buf := make([]byte, 0, 1024)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		var v wire.Verdict
		buf, v = d.Decide(buf[:0], &reqs[i%sessions], time.Now())
		if v.Outcome != wire.OutcomeConnect {
			b.Fatalf("call %d: %+v", i, v)
		}
		if err := <-ns.written; err != nil {
			b.Fatalf("call %d: %v", i, err)
		}
		i++
	}
}
