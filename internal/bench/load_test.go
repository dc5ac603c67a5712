package bench

import (
	"bytes"
	"context"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// testServer serves handler on a loopback port until the test ends.
func testServer(t *testing.T, handler fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: handler}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return "http://" + ln.Addr().String() + "/vca"
}

func baseline(t *testing.T) string {
	t.Helper()
	b, err := StartBaseline()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.URL()
}

func testTraffic(t *testing.T, sessions int) *Traffic {
	t.Helper()
	tr, err := NewTraffic("t"+t.Name()[4:min(len(t.Name()), 20)], time.Now(), MakeSessions("x", sessions), DefaultMix)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// load runs spec and fails the test when it does not return by
// duration + drain + timeout + slack.
func load(t *testing.T, spec LoadSpec, tr *Traffic) (*Result, *answeredSet) {
	t.Helper()
	if spec.Connections == 0 {
		spec.Connections = 8
	}
	if spec.Timeout == 0 {
		spec.Timeout = time.Second
	}
	if spec.Name == "" {
		spec.Name = "test"
	}
	bound := spec.Duration + spec.Drain + spec.Timeout + 2*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	res, set, err := Load(ctx, spec, tr)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > bound {
		t.Fatalf("load took %v, bound %v", took, bound)
	}
	return res, set
}

// TestOpenLoopRate: 200/s for 1s sends 200 requests spread over the
// second, not as fast as the server answers.
func TestOpenLoopRate(t *testing.T) {
	var mu sync.Mutex
	var ticks []Progress
	res, set := load(t, LoadSpec{
		URL: baseline(t), Rate: 200, Duration: time.Second, Drain: time.Second, TrackAnswered: true,
		ReportEvery: 250 * time.Millisecond,
		OnProgress: func(p Progress) {
			mu.Lock()
			ticks = append(ticks, p)
			mu.Unlock()
		},
	}, testTraffic(t, 10))
	if res.Mode != "open" || res.Scheduled != 200 || res.Requests != 200 || res.Answered != 200 {
		t.Fatalf("open loop at 200/s for 1s: mode %s, %d scheduled, %d sent, %d answered; want 200 each", res.Mode, res.Scheduled, res.Requests, res.Answered)
	}
	if res.ErrorCount() != 0 {
		t.Errorf("errors: %v %v", res.Errors, res.ErrorSamples)
	}
	// The last request is due at 995ms: the run lasts about a second.
	if res.Elapsed < 0.95 || res.Elapsed > 1.8 {
		t.Errorf("elapsed %.3fs, want about 1s", res.Elapsed)
	}
	if math.Abs(res.Throughput-200) > 40 {
		t.Errorf("throughput %.1f/s, want about 200", res.Throughput)
	}
	// Sends follow the schedule: at each tick, about 200/s so far.
	mu.Lock()
	defer mu.Unlock()
	if len(ticks) < 2 {
		t.Fatalf("%d progress ticks, want at least 2", len(ticks))
	}
	for _, p := range ticks {
		if want := p.Elapsed.Seconds() * 200; p.Elapsed < time.Second && math.Abs(float64(p.Sent)-want) > 40 {
			t.Errorf("at %v: %d sent, want about %.0f", p.Elapsed, p.Sent, want)
		}
	}
	for n := range uint64(200) {
		if !set.has(n) {
			t.Fatalf("request %d not tracked as answered", n)
		}
	}
	if set.has(200) || res.indexes != 200 {
		t.Errorf("indexes %d", res.indexes)
	}
	if res.Latency.Count != 200 || res.ServiceTime == nil || res.SendLag == nil {
		t.Errorf("latency %+v, service %v, lag %v", res.Latency, res.ServiceTime, res.SendLag)
	}
}

// TestCoordinatedOmissionVisible: the server stalls 300ms once, holding
// every request. Requests scheduled during the stall count the wait: p99
// holds the stall, and many more requests than the connections in flight
// are slow (a tool timing from the actual send would show only those).
func TestCoordinatedOmissionVisible(t *testing.T) {
	const stall = 300 * time.Millisecond
	var (
		mu      sync.Mutex
		count   atomic.Int64
		stalled atomic.Bool
	)
	url := testServer(t, func(ctx *fasthttp.RequestCtx) {
		if count.Add(1) == 60 && stalled.CompareAndSwap(false, true) {
			mu.Lock()
			time.Sleep(stall)
			mu.Unlock()
		} else {
			mu.Lock()
			mu.Unlock() //nolint:staticcheck // waits for the stall
		}
		ctx.SetContentType("application/json")
		ctx.SetBodyString(BaselineCallflow)
	})
	res, _ := load(t, LoadSpec{URL: url, Rate: 200, Duration: time.Second, Drain: time.Second, Connections: 16}, testTraffic(t, 10))
	if res.Answered != 200 {
		t.Fatalf("%d answered, want 200: %v", res.Answered, res.Errors)
	}
	lat, svc := res.latency, res.ServiceTime
	t.Logf("latency %+v\nservice %+v\nlag %+v", res.Latency, *svc, *res.SendLag)
	p99 := lat.Percentile(99)
	if p99 < stall*8/10 || p99 > 3*stall {
		t.Errorf("p99 %v, want about the %v stall", p99, stall)
	}
	// About 60 requests were due during the stall, 16 of them in flight:
	// their latencies spread from 0 to 300ms, so p90 is well above 50ms.
	if p90 := lat.Percentile(90); p90 < 50*time.Millisecond {
		t.Errorf("p90 %v: the requests queued behind the stall were not counted from their schedule", p90)
	}
	if slow := lat.CountAbove(100 * time.Millisecond); slow <= 16 {
		t.Errorf("%d requests >= 100ms, want more than the 16 connections in flight", slow)
	}
	// Timed from the actual send only the 16 in flight would be slow.
	if svc.P90 >= res.Latency.P90/2 {
		t.Errorf("service time p90 %vms not below latency p90 %vms", svc.P90, res.Latency.P90)
	}
}

func TestClosedLoop(t *testing.T) {
	res, _ := load(t, LoadSpec{URL: baseline(t), Duration: 500 * time.Millisecond, Drain: time.Second, Connections: 4}, testTraffic(t, 10))
	if res.Mode != "closed" || res.Requests < 100 || res.Answered != res.Requests || res.ErrorCount() != 0 {
		t.Fatalf("closed loop: mode %s, %d sent, %d answered, errors %v %v", res.Mode, res.Requests, res.Answered, res.Errors, res.ErrorSamples)
	}
	if res.ServiceTime != nil || res.SendLag != nil || res.Scheduled != 0 {
		t.Errorf("closed loop reports open-loop figures")
	}
	if res.Elapsed < 0.45 || res.Elapsed > 1.5 {
		t.Errorf("elapsed %.3fs, want about 0.5s", res.Elapsed)
	}
	// The baseline answers a makeCall to every call, an ack to the rest.
	calls := res.SentByKind["in_session"] + res.SentByKind["out_of_session"]
	if res.Answers["connect"] != calls || res.Answers["ack"] != res.Requests-calls {
		t.Errorf("answers %v for sent %v", res.Answers, res.SentByKind)
	}
	if res.Wrong != nil {
		t.Errorf("answers checked against the baseline: %v", res.Wrong)
	}
}

// TestErrorsByKind: status codes, timeouts and refused connections are
// counted apart; only 200s count as answered.
func TestErrorsByKind(t *testing.T) {
	var n atomic.Int64
	url := testServer(t, func(ctx *fasthttp.RequestCtx) {
		switch n.Add(1) % 4 {
		case 0:
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		case 1:
			time.Sleep(400 * time.Millisecond) // beyond the timeout
			fallthrough
		default:
			ctx.SetBodyString(BaselineCallflow)
		}
	})
	res, _ := load(t, LoadSpec{URL: url, Rate: 100, Duration: 500 * time.Millisecond, Timeout: 150 * time.Millisecond,
		Drain: time.Second, Connections: 20, CheckAnswers: true}, testTraffic(t, 10))
	if res.Requests != 50 {
		t.Fatalf("%d sent, want 50", res.Requests)
	}
	if res.Errors["http_503"] < 5 || res.Errors["timeout"] < 5 || res.Answered < 10 {
		t.Errorf("errors %v, answered %d: want 503s, timeouts and answers", res.Errors, res.Answered)
	}
	if res.Errors["http_503"]+res.Errors["timeout"]+res.Errors["connection"]+res.Answered != res.Requests {
		t.Errorf("errors %v + answered %d != sent %d", res.Errors, res.Answered, res.Requests)
	}
	if res.ErrorSamples["timeout"] == "" {
		t.Errorf("no sample message for timeouts: %v", res.ErrorSamples)
	}
	// Only answered requests have a latency (503s included).
	if res.Latency.Count != res.Answered+res.Errors["http_503"] {
		t.Errorf("latency samples %d, want %d", res.Latency.Count, res.Answered+res.Errors["http_503"])
	}
	// The baseline's makeCall to a stranger is a wrong answer.
	if res.Wrong["out_of_session_connected"] == 0 && res.SentByKind["out_of_session"] > 2 {
		t.Errorf("wrong answers %v", res.Wrong)
	}

	// Nothing listening: connection errors.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/vca"
	ln.Close()
	res, _ = load(t, LoadSpec{URL: dead, Rate: 50, Duration: 200 * time.Millisecond, Timeout: 200 * time.Millisecond}, testTraffic(t, 0))
	if res.Errors["connection"] != res.Requests || res.Requests != 10 || res.Answered != 0 {
		t.Errorf("refused: %d sent, errors %v", res.Requests, res.Errors)
	}
}

// TestDrainBound: a server that never answers does not hold the run past
// duration + drain; what could not be sent is counted as not_sent.
func TestDrainBound(t *testing.T) {
	release := make(chan struct{})
	url := testServer(t, func(ctx *fasthttp.RequestCtx) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	})
	defer close(release)
	start := time.Now()
	res, _ := load(t, LoadSpec{URL: url, Rate: 100, Duration: 500 * time.Millisecond, Drain: 300 * time.Millisecond,
		Timeout: 2 * time.Second, Connections: 2}, testTraffic(t, 0))
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("run took %v, want about duration + drain (800ms)", took)
	}
	if res.Requests != 2 || res.Errors["drain_cut"] != 2 || res.Errors["not_sent"] != 48 {
		t.Errorf("sent %d, errors %v: want 2 cut at the drain bound and 48 not sent", res.Requests, res.Errors)
	}
}

// TestInterrupted: cancelling the context ends the run early; requests
// not yet due are not errors.
func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, _, err := Load(ctx, LoadSpec{URL: baseline(t), Rate: 100, Duration: 10 * time.Second, Timeout: time.Second, Connections: 4}, testTraffic(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("interrupted run took %v", time.Since(start))
	}
	if !res.Interrupted || res.Scheduled > 40 || res.Errors["not_sent"] > 2 {
		t.Errorf("interrupted %v, scheduled %d, errors %v", res.Interrupted, res.Scheduled, res.Errors)
	}
}

// TestChain loads the straightforward chain: every event answered, a
// CALL_ACTION with the responders' makeCall, and each record stored once
// in its stream, a webhook sent twice included.
func TestChain(t *testing.T) {
	c, err := StartChain("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	res, _ := load(t, LoadSpec{URL: c.URL(), Rate: 200, Duration: 500 * time.Millisecond, Drain: time.Second}, testTraffic(t, 5))
	if res.Answered == 0 || res.Answered != res.Requests || res.ErrorCount() != 0 {
		t.Fatalf("%d sent, %d answered, errors %v %v", res.Requests, res.Answered, res.Errors, res.ErrorSamples)
	}
	if res.Answers["connect"] == 0 || res.Answers["ack"] == 0 {
		t.Errorf("answers %v", res.Answers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stored := func() uint64 {
		s, err := c.js.Stream(ctx, chainStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	if n := stored(); n != res.Answered {
		t.Errorf("stream holds %d records for %d answered", n, res.Answered)
	}
	body := []byte(`{"namespace":"VOICE","eventType":"CALL_ACTION","payload":{"eventId":"twice","callId":"c","sessionId":"s","subAccountId":"a","source":"+6591234567","destination":"+6598765432"}}`)
	for range 2 {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(c.URL())
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetBody(body)
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(`"makeCall"`)) {
			t.Errorf("answer %d %s", resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	if n := stored(); n != res.Answered+1 {
		t.Errorf("after a webhook sent twice the stream holds %d records, want %d", n, res.Answered+1)
	}
}
