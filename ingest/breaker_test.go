package ingest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
)

// postFallback posts a distinct CALL_ACTION, checks that it got the
// fallback and returns the recorded reason and the answer's latency.
func (e *env) postFallback(id string) (string, time.Duration) {
	e.t.Helper()
	a := e.post(callAction(e.t, id))
	wantFallback(e.t, a)
	m := e.recordOf(id)
	d := m.rec.Decision
	if d == nil || d.Source != wire.SourceFallback || d.Outcome != wire.OutcomeFallback {
		e.t.Fatalf("decision = %+v, want a fallback", d)
	}
	if string(d.Callflow) != string(a.body) {
		e.t.Errorf("recorded callflow %s, answered %s", d.Callflow, a.body)
	}
	if d.LatencyMicros < 0 {
		e.t.Errorf("latency = %d", d.LatencyMicros)
	}
	return d.FallbackReason, a.elapsed
}

func TestBreakerNoDecidersOpens(t *testing.T) {
	const failures = 3
	e := newEnv(t, envOptions{cfg: func(c *Config) {
		c.DecideTimeout = time.Second
		c.Breaker = BreakerConfig{Failures: failures, OpenFor: time.Minute}
	}})
	for i := range failures {
		if e.srv.BreakerOpen() {
			t.Fatalf("breaker open after %d failures, want it open after %d", i, failures)
		}
		if why, _ := e.postFallback(fmt.Sprintf("nobody-%d", i)); why != ReasonNoResponders {
			t.Errorf("call %d: reason = %q, want %q", i, why, ReasonNoResponders)
		}
	}
	if !e.srv.BreakerOpen() || e.srv.BreakerState() != "open" {
		t.Fatalf("breaker %s after %d consecutive failures, want open", e.srv.BreakerState(), failures)
	}
	for i := range 3 {
		why, took := e.postFallback(fmt.Sprintf("open-%d", i))
		if why != ReasonBreakerOpen {
			t.Errorf("reason = %q, want %q", why, ReasonBreakerOpen)
		}
		if took > e.cfg.DecideTimeout/2 {
			t.Errorf("fallback with the breaker open took %s, want it immediate", took)
		}
	}
	if s := e.srv.Stats(); s.Fallbacks != failures+3 || s.Decided != 0 || s.Recorded != failures+3 {
		t.Errorf("stats = %+v", s)
	}
}

// With a decider that never answers, calls time out; once the breaker is
// open they no longer wait for the timeout.
func TestBreakerTimeoutThenImmediate(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, envOptions{cfg: func(c *Config) {
		c.DecideTimeout = timeout
		c.Breaker = BreakerConfig{Failures: 2, OpenFor: time.Minute}
	}})
	got := fakeDecider(t, e.ns, 0, nil)
	for i := range 2 {
		why, took := e.postFallback(fmt.Sprintf("hung-%d", i))
		if why != ReasonTimeout {
			t.Errorf("reason = %q, want %q", why, ReasonTimeout)
		}
		if took < timeout {
			t.Errorf("timed-out call answered after %s, before the decide timeout %s", took, timeout)
		}
	}
	if got.Load() != 2 {
		t.Errorf("hung decider got %d requests, want 2", got.Load())
	}
	if !e.srv.BreakerOpen() {
		t.Fatalf("breaker %s, want open", e.srv.BreakerState())
	}
	why, took := e.postFallback("hung-open")
	if why != ReasonBreakerOpen {
		t.Errorf("reason = %q, want %q", why, ReasonBreakerOpen)
	}
	if took > timeout/2 {
		t.Errorf("fallback with the breaker open took %s, want it immediate (decide timeout %s)", took, timeout)
	}
	if got.Load() != 2 {
		t.Errorf("the open breaker let a request through to the deciders")
	}
}

func TestBreakerFailureReasons(t *testing.T) {
	cases := []struct {
		name   string
		start  func(e *env)
		reason string
	}{
		{"hung decider", func(e *env) { fakeDecider(e.t, e.ns, 0, nil) }, ReasonTimeout},
		{"garbage reply", func(e *env) {
			fakeDecider(e.t, e.ns, 0, func(m *nats.Msg) { _ = m.Respond([]byte("not json at all")) })
		}, ReasonBadReply},
		{"empty callflow", func(e *env) {
			fakeDecider(e.t, e.ns, 0, func(m *nats.Msg) { _ = m.Respond([]byte(`{"clientActionId":"x","callflow":[]}`)) })
		}, ReasonBadReply},
		{"unknown action", func(e *env) {
			fakeDecider(e.t, e.ns, 0, func(m *nats.Msg) {
				_ = m.Respond([]byte(`{"clientActionId":"x","callflow":[{"action":"teleport"}]}`))
			})
		}, ReasonBadReply},
		{"makeCall without destination", func(e *env) {
			fakeDecider(e.t, e.ns, 0, func(m *nats.Msg) {
				_ = m.Respond([]byte(`{"clientActionId":"x","callflow":[{"action":"makeCall","params":{"source":"+6598765432"}}]}`))
			})
		}, ReasonBadReply},
		{"micro service error", func(e *env) { errorDecider(e.t, e.ns) }, ReasonDeciderError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{cfg: func(cfg *Config) {
				cfg.DecideTimeout = 200 * time.Millisecond
				cfg.Breaker = BreakerConfig{Failures: 2, OpenFor: time.Minute}
			}})
			c.start(e)
			if why, _ := e.postFallback("first"); why != c.reason {
				t.Errorf("reason = %q, want %q", why, c.reason)
			}
			if e.srv.BreakerOpen() {
				t.Fatal("breaker open after one failure")
			}
			if why, _ := e.postFallback("second"); why != c.reason {
				t.Errorf("reason = %q, want %q", why, c.reason)
			}
			// Every one of these counts against the breaker.
			if !e.srv.BreakerOpen() {
				t.Fatalf("breaker %s after 2 failures (%s), want open", e.srv.BreakerState(), c.reason)
			}
			if why, _ := e.postFallback("third"); why != ReasonBreakerOpen {
				t.Errorf("reason = %q, want %q", why, ReasonBreakerOpen)
			}
		})
	}
}

// An out-of-session answer is an answer: it never counts against the
// breaker.
func TestBreakerOutOfSessionIsNotAFailure(t *testing.T) {
	e := newEnv(t, envOptions{deciders: 1, cfg: func(c *Config) {
		c.Breaker = BreakerConfig{Failures: 1, OpenFor: time.Minute}
	}})
	for i := range 5 {
		a := e.post(callAction(t, fmt.Sprintf("oos-%d", i)))
		cf := wantCallflow(t, a)
		if cf.ClientActionID == wire.ClientActionFallback {
			t.Fatalf("call %d got the fallback: %s", i, a.body)
		}
	}
	if e.srv.BreakerState() != "closed" {
		t.Errorf("breaker %s after out-of-session answers, want closed", e.srv.BreakerState())
	}
}

// A decider that answers after the timeout does not confuse later calls:
// its late reply is dropped and the next call gets its own answer. The
// decider holds the first request past the timeout and answers it only
// when the second arrives, just before answering the second, so the late
// reply reaches the ingestor while the second call waits for its own. Each
// answer's clientActionId names the request it answers.
func TestLateReplyIsNotDeliveredToTheNextCall(t *testing.T) {
	e := newEnv(t, envOptions{cfg: func(c *Config) {
		c.DecideTimeout = 150 * time.Millisecond
	}})
	answerFor := func(m *nats.Msg) []byte {
		var req wire.DecideRequest
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Errorf("decide request %q: %v", m.Data, err)
		}
		return []byte(`{"clientActionId":"answer-to-` + req.EventID + `","callflow":[{"action":"hangup"}]}`)
	}
	var held *nats.Msg // the first request; the handler runs one at a time
	got := fakeDecider(t, e.ns, 0, func(m *nats.Msg) {
		if held == nil {
			held = m
			return
		}
		if err := held.Respond(answerFor(held)); err != nil {
			t.Errorf("late reply: %v", err)
		}
		if err := m.Respond(answerFor(m)); err != nil {
			t.Errorf("reply: %v", err)
		}
	})
	if why, _ := e.postFallback("late-1"); why != ReasonTimeout {
		t.Errorf("reason = %q, want timeout", why)
	}
	a := e.post(callAction(t, "late-2"))
	if cf := wantCallflow(t, a); cf.ClientActionID != "answer-to-late-2" {
		t.Errorf("call 2 was answered %s, want its own answer (clientActionId answer-to-late-2)", a.body)
	}
	if d := e.recordOf("late-2").rec.Decision; d == nil || d.Source != wire.SourceDecider || string(d.Callflow) != string(a.body) {
		t.Errorf("call 2's decision = %+v, want the decider's answer %s", d, a.body)
	}
	if n := got.Load(); n != 2 {
		t.Errorf("decider got %d requests, want 2", n)
	}
}

func TestBreakerRecovers(t *testing.T) {
	const openFor = 200 * time.Millisecond
	e := newEnv(t, envOptions{cfg: func(c *Config) {
		c.DecideTimeout = time.Second
		c.Breaker = BreakerConfig{Failures: 2, OpenFor: openFor, HalfOpenProbes: 2}
	}})
	for i := range 2 {
		e.postFallback(fmt.Sprintf("down-%d", i))
	}
	if !e.srv.BreakerOpen() {
		t.Fatalf("breaker %s, want open", e.srv.BreakerState())
	}
	if why, _ := e.postFallback("down-open"); why != ReasonBreakerOpen {
		t.Errorf("reason = %q, want breaker_open", why)
	}

	// The deciders come back; after OpenFor the breaker half-opens, and
	// HalfOpenProbes successes close it.
	e.startDeciders(2)
	e.seedSession()
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if s := e.srv.BreakerState(); s != "half-open" {
			return fmt.Errorf("breaker %s, want half-open", s)
		}
		return nil
	})
	for i := range 2 {
		id := fmt.Sprintf("back-%d", i)
		a := e.post(callAction(t, id))
		cf := wantCallflow(t, a)
		if len(cf.Callflow) != 1 || cf.Callflow[0].Action != wire.ActionMakeCall {
			t.Fatalf("probe %d: %s, want a makeCall", i, a.body)
		}
		if d := e.recordOf(id).rec.Decision; d.Source != wire.SourceDecider || d.Outcome != wire.OutcomeConnect {
			t.Errorf("probe %d: decision %+v", i, d)
		}
	}
	if s := e.srv.BreakerState(); s != "closed" {
		t.Fatalf("breaker %s after %d successful probes, want closed", s, 2)
	}
	for i := range 5 {
		id := fmt.Sprintf("closed-%d", i)
		wantCallflow(t, e.post(callAction(t, id)))
		if d := e.recordOf(id).rec.Decision; d.Source != wire.SourceDecider {
			t.Errorf("after recovery: decision %+v", d)
		}
	}
	if s := e.srv.Stats(); s.Decided != 7 || s.Fallbacks != 3 {
		t.Errorf("stats = %+v, want 7 decided and 3 fallbacks", s)
	}
}

// A failed probe while half-open opens the breaker again.
func TestBreakerReopensOnFailedProbe(t *testing.T) {
	e := newEnv(t, envOptions{cfg: func(c *Config) {
		c.DecideTimeout = time.Second
		c.Breaker = BreakerConfig{Failures: 1, OpenFor: 200 * time.Millisecond}
	}})
	e.postFallback("a")
	if !e.srv.BreakerOpen() {
		t.Fatal("breaker not open")
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if s := e.srv.BreakerState(); s != "half-open" {
			return fmt.Errorf("breaker %s, want half-open", s)
		}
		return nil
	})
	if why, _ := e.postFallback("probe"); why != ReasonNoResponders {
		t.Errorf("probe reason = %q, want no_responders", why)
	}
	if !e.srv.BreakerOpen() {
		t.Errorf("breaker %s after a failed probe, want open", e.srv.BreakerState())
	}
}

// The answer to 8x8 is a strict-JSON callflow {"clientActionId": ...,
// "callflow": [...]} whatever a decider (maybe of another version) replies.
func TestDeciderReplyIsForwardedOnlyWhenStrict(t *testing.T) {
	e := newEnv(t, envOptions{cfg: func(c *Config) { c.DecideTimeout = time.Second }})
	fakeDecider(t, e.ns, 0, func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"CLIENTACTIONID":"x","CALLFLOW":[{"ACTION":"hangup"}],"extra":1}`))
	})
	a := e.post(callAction(t, "loose"))
	wantCallflow(t, a) // strict: exactly clientActionId and callflow
}
