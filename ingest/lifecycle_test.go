package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
)

// Calls in flight when Shutdown is called are answered and recorded, and
// Shutdown waits for them.
func TestShutdownAnswersCallsInFlight(t *testing.T) {
	const inFlight = 8
	const slow = 300 * time.Millisecond
	e := newEnv(t, envOptions{cfg: func(c *Config) { c.DecideTimeout = 5 * time.Second }})
	reply := []byte(`{"clientActionId":"slow","callflow":[{"action":"makeCall","params":{"source":"+65987654321","destination":"+6587654321"}}]}`)
	got := fakeDecider(t, e.ns, slow, func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Data = reply
		_ = m.RespondMsg(r)
	})

	answers := make([]answer, inFlight)
	errs := make([]error, inFlight)
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Go(func() {
			answers[i], errs[i] = e.do(http.MethodPost, "/vca", bytes.NewReader(callAction(t, fmt.Sprintf("inflight-%d", i))))
		})
	}
	// Shut down once every call is waiting on the slow decider.
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := got.Load(); n != inFlight {
			return fmt.Errorf("decider has %d of %d calls", n, inFlight)
		}
		return nil
	})
	start := time.Now()
	if err := e.shutdown(); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	took := time.Since(start)
	wg.Wait()

	for i := range inFlight {
		if errs[i] != nil {
			t.Errorf("call %d: %v", i, errs[i])
			continue
		}
		cf := wantCallflow(t, answers[i])
		if cf.ClientActionID != "slow" {
			t.Errorf("call %d: answered %s, want the decider's answer", i, answers[i].body)
		}
	}
	if took > 5*time.Second {
		t.Errorf("Shutdown took %s", took)
	}
	if n := e.count(); n != inFlight {
		t.Errorf("%d records after shutdown, want %d", n, inFlight)
	}
	for i := range inFlight {
		id := fmt.Sprintf("inflight-%d", i)
		if d := e.recordOf(id).rec.Decision; d == nil || d.Source != wire.SourceDecider || d.Outcome != wire.OutcomeConnect {
			t.Errorf("%s: decision %+v", id, d)
		}
	}
	if s := e.srv.Stats(); s.Decided != inFlight || s.Recorded != inFlight || s.Spooled != 0 {
		t.Errorf("stats = %+v", s)
	}

	// The listener is closed: no new calls are taken.
	if _, err := e.do(http.MethodPost, "/vca", bytes.NewReader(callAction(t, "after-shutdown"))); err == nil {
		t.Error("a call after Shutdown was served")
	}
}

func TestConcurrentCalls(t *testing.T) {
	const calls = 200
	e := newEnv(t, envOptions{deciders: 2, cfg: func(c *Config) {
		c.DecideTimeout = 10 * time.Second
		c.RecordTimeout = 10 * time.Second
	}})
	e.seedSession()
	e.client.Transport.(*http.Transport).MaxIdleConnsPerHost = calls

	var wg sync.WaitGroup
	answers := make([]answer, calls)
	errs := make([]error, calls)
	bodies := make([][]byte, calls)
	for i := range calls {
		bodies[i] = callAction(t, fmt.Sprintf("conc-%03d", i))
		if i%2 == 1 { // half the calls come from outside the session
			bodies[i] = event(t, "", map[string]any{"eventId": fmt.Sprintf("conc-%03d", i), "source": "+6511112222"})
		}
	}
	for i := range calls {
		wg.Go(func() {
			answers[i], errs[i] = e.do(http.MethodPost, "/vca", bytes.NewReader(bodies[i]))
		})
	}
	wg.Wait()

	connects := 0
	for i := range calls {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		cf := wantCallflow(t, answers[i])
		switch {
		case i%2 == 0 && cf.Callflow[len(cf.Callflow)-1].Action == wire.ActionMakeCall:
			connects++
		case i%2 == 1 && cf.Callflow[0].Action == wire.ActionSay && cf.ClientActionID != wire.ClientActionFallback:
		default:
			t.Errorf("call %d: %s", i, answers[i].body)
		}
	}
	if connects != calls/2 {
		t.Errorf("%d calls connected, want %d", connects, calls/2)
	}

	msgs := e.messages()
	if len(msgs) != calls {
		t.Fatalf("%d messages in the stream, want %d", len(msgs), calls)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.err != nil {
			t.Fatalf("message %s: %v", m.msgID, m.err)
		}
		if m.rec.ID != m.msgID || seen[m.msgID] {
			t.Errorf("message %q holds record %q (seen before: %v)", m.msgID, m.rec.ID, seen[m.msgID])
		}
		seen[m.msgID] = true
		var i int
		if _, err := fmt.Sscanf(m.msgID, "conc-%03d", &i); err != nil {
			t.Fatalf("unexpected id %q", m.msgID)
		}
		checkRecord(t, m, m.msgID, wire.EventCallAction, "calls.CALL_ACTION."+seedSubAccount, bodies[i])
		if d := m.rec.Decision; d == nil || d.Source != wire.SourceDecider {
			t.Errorf("%s: decision %+v", m.msgID, d)
		}
	}

	s := e.srv.Stats()
	if s.Requests != calls || s.Decided != calls || s.Fallbacks != 0 || s.Recorded != calls || s.Spooled != 0 || s.Rejected != 0 {
		t.Errorf("stats = %+v, want %d requests all decided and recorded", s, calls)
	}
	if s.Decided+s.Fallbacks != s.Requests-s.Rejected || s.Recorded+s.Spooled != s.Requests-s.Rejected {
		t.Errorf("stats inconsistent: %+v", s)
	}
}

func TestConfigValidation(t *testing.T) {
	ns := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, ns)
	for _, c := range []Config{
		{Path: "vca"},
		{MaxBody: 100},
		{DecideTimeout: -time.Second},
		{RecordTimeout: -time.Second},
		{ReadTimeout: -1},
		{Breaker: BreakerConfig{OpenFor: -1}},
		{Fallback: wire.Say{Text: "x", Repetition: -1}},
	} {
		if _, err := New(nc, c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", c, err)
		}
	}
}

// A call still being decided when Shutdown's deadline passes keeps its
// record: Shutdown waits for it before closing the spool, so the record is
// spooled, not lost; a call that arrives once Shutdown has begun is refused
// with 503, never answered without a record.
func TestShutdownDeadlineKeepsRecordsOfCallsInFlight(t *testing.T) {
	const slow = 500 * time.Millisecond
	var dataDir string
	// No stream: every publish fails and the record must go to the spool.
	e := newEnv(t, envOptions{noStream: true, cfg: func(c *Config) {
		c.DecideTimeout = 5 * time.Second
		dataDir = c.DataDir
	}})
	reply := []byte(`{"clientActionId":"slow","callflow":[{"action":"makeCall","params":{"source":"+65987654321","destination":"+6587654321"}}]}`)
	got := fakeDecider(t, e.ns, slow, func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Data = reply
		_ = m.RespondMsg(r)
	})

	type result struct {
		a   answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := e.do(http.MethodPost, "/vca", bytes.NewReader(callAction(t, "late-1")))
		done <- result{a, err}
	}()
	natstest.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got.Load() != 1 {
			return errors.New("the call has not reached the decider")
		}
		return nil
	})
	// The deadline passes long before the decider answers.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	serr := make(chan error, 1)
	go func() { serr <- e.srv.Shutdown(ctx) }()
	e.stopped.Store(true) // the env's cleanup must not shut down again

	// A call arriving once Shutdown has begun (its listener is closed
	// first: a new connection fails) is refused or finds no listener.
	addr := strings.TrimPrefix(e.url, "http://")
	natstest.CheckFor(t, 5*time.Second, 2*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		return errors.New("the listener still accepts connections")
	})
	if a, err := e.do(http.MethodPost, "/vca", bytes.NewReader(callAction(t, "after-1"))); err == nil && a.status == http.StatusOK {
		t.Errorf("a call arriving during shutdown was answered 200: %s", a.body)
	}
	select {
	case <-serr:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	<-e.served

	r := <-done
	if r.err == nil && r.a.status != http.StatusOK {
		t.Errorf("call in flight answered %d %s", r.a.status, r.a.body)
	}
	if st := e.srv.Stats(); st.Lost != 0 {
		t.Errorf("%d records lost at shutdown, want 0 (stats %+v)", st.Lost, st)
	}
	ids := spoolIDs(readSpool(t, dataDir))
	if !slices.Contains(ids, "late-1") {
		t.Errorf("spool holds %v after shutdown, want the call in flight's record late-1", ids)
	}
	if slices.Contains(ids, "after-1") {
		t.Errorf("spool holds the record of a call refused during shutdown: %v", ids)
	}
}
