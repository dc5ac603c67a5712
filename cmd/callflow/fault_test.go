package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/bench"
	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
)

// faultDecideTimeout is the ingest's --decide-timeout in the decider
// fault tests (the default).
const faultDecideTimeout = 500 * time.Millisecond

// TestFaultDeciders breaks the deciders while calls flow and brings them
// back: every decider process killed with SIGKILL (then new ones started),
// hung with SIGSTOP (then SIGCONT), or slow (responders that answer only
// after twice the decide timeout join the deciders' queue group,
// outnumbering the real deciders twelve to one, then leave). It proves that every call is answered
// throughout, with the fallback while the deciders fail (recorded with the
// reason: no_responders or timeout, then breaker_open once the breaker has
// opened, those immediate since they never touch NATS), that the breaker
// opens and closes again once the deciders are back, after which calls
// are connected again, and that every answered webhook is in ClickHouse
// exactly once.
func TestFaultDeciders(t *testing.T) {
	tests := []struct {
		name string
		// inject breaks the deciders and returns what repairs them.
		inject func(t *testing.T, r *faultRig) (restore func(t *testing.T))
		// want are the fallback reasons the fault must produce (besides
		// breaker_open); allowed the only ones it may.
		want, allowed []string
	}{
		{
			name: "killed",
			inject: func(t *testing.T, r *faultRig) func(*testing.T) {
				n := len(r.Deciders)
				for _, p := range r.Deciders {
					r.Kill(t, p)
				}
				return func(t *testing.T) {
					for range n {
						r.StartDecider(t)
					}
				}
			},
			// A request in flight when its decider died times out.
			want:    []string{ingestReasonNoResponders},
			allowed: []string{ingestReasonNoResponders, ingestReasonTimeout},
		},
		{
			name: "hung",
			inject: func(t *testing.T, r *faultRig) func(*testing.T) {
				hung := append([]*proc(nil), r.Deciders...)
				for _, p := range hung {
					r.Signal(t, p, syscall.SIGSTOP)
				}
				return func(t *testing.T) {
					for _, p := range hung {
						r.Signal(t, p, syscall.SIGCONT)
					}
				}
			},
			want:    []string{ingestReasonTimeout},
			allowed: []string{ingestReasonTimeout},
		},
		{
			name: "slow",
			inject: func(t *testing.T, r *faultRig) func(*testing.T) {
				stop := r.joinSlowDeciders(t, 12*len(r.Deciders), 2*faultDecideTimeout)
				return func(*testing.T) { stop() }
			},
			want:    []string{ingestReasonTimeout},
			allowed: []string{ingestReasonTimeout},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			began := time.Now()
			r := newFaultRig(t, faultConfig{IngestArgs: []string{"--decide-timeout", faultDecideTimeout.String()}})
			load := r.startLoad(t, faultLoadConfig{})
			load.waitStarted(t)

			// Healthy first: calls are connected.
			time.Sleep(3 * time.Second)
			r.WaitBreaker(t, breakerClosed, 5*time.Second)

			faultAt := time.Now()
			restore := tt.inject(t, r)
			r.WaitBreaker(t, breakerOpen, 20*time.Second)
			t.Logf("breaker open %s after the fault", time.Since(faultAt).Round(time.Millisecond))
			// Calls keep coming with the breaker open, and it probes the
			// failing deciders (--breaker-open-for 2s) at least once.
			time.Sleep(3 * time.Second)

			restoreAt := time.Now()
			restore(t)
			if !load.running() {
				t.Fatal("the load ended before the deciders were back; lengthen it")
			}
			r.WaitBreaker(t, breakerClosed, 30*time.Second)
			closedAt := time.Now()
			t.Logf("breaker closed %s after the deciders were back", closedAt.Sub(restoreAt).Round(time.Millisecond))

			rep := load.wait(t)
			r.requireExactlyOnce(t, rep)
			r.checkDeciderFault(t, rep, faultAt, closedAt, tt.want, tt.allowed)
			if st, err := r.BreakerState(); err != nil || st != breakerClosed {
				t.Errorf("breaker state %d (%v) at the end, want closed", st, err)
			}
			t.Logf("scenario took %s", time.Since(began).Round(100*time.Millisecond))
		})
	}
}

// The ingest's fallback reasons (ingest.Reason*), as recorded.
const (
	ingestReasonBreakerOpen  = "breaker_open"
	ingestReasonTimeout      = "timeout"
	ingestReasonNoResponders = "no_responders"
)

// checkDeciderFault checks the decisions a decider fault left in the
// archive: fallbacks only for the fault's reasons and breaker_open, both
// present; breaker_open ones immediate; calls connected before the fault
// and again after the breaker closed; and the answers the load tool got
// matching the decisions recorded.
func (r *faultRig) checkDeciderFault(t *testing.T, rep *bench.Report, faultAt, closedAt time.Time, want, allowed []string) {
	t.Helper()
	decs := r.decisions(t, rep.RunID)
	byReason := map[string]int{}
	bySource := map[string]int{}
	outcomes := map[string]int{}
	var openLat []time.Duration
	var connectBefore, connectAfter int
	for _, d := range decs {
		bySource[d.Source]++
		outcomes[d.Outcome]++
		if d.Source == wire.SourceFallback {
			byReason[d.Reason]++
			if d.Reason == ingestReasonBreakerOpen {
				openLat = append(openLat, time.Duration(d.LatencyMicros)*time.Microsecond)
			}
		}
		// received_at is whole seconds: strictly before the fault's
		// second, strictly after the closing's.
		if d.Outcome == wire.OutcomeConnect {
			if d.ReceivedAt.Unix() < faultAt.Unix() {
				connectBefore++
			}
			if d.ReceivedAt.Unix() > closedAt.Unix() {
				connectAfter++
			}
		}
	}
	t.Logf("%d calls: sources %v, outcomes %v, fallback reasons %v; connected %d before the fault, %d after the breaker closed",
		len(decs), bySource, outcomes, byReason, connectBefore, connectAfter)

	ok := map[string]bool{ingestReasonBreakerOpen: true}
	for _, reason := range allowed {
		ok[reason] = true
	}
	for reason, n := range byReason {
		if !ok[reason] {
			t.Errorf("%d fallbacks because %q; this fault allows only %v and %s", n, reason, allowed, ingestReasonBreakerOpen)
		}
	}
	for _, reason := range append([]string{ingestReasonBreakerOpen}, want...) {
		if byReason[reason] == 0 {
			t.Errorf("no fallback because %s (fallbacks: %v)", reason, byReason)
		}
	}
	for src := range bySource {
		if src != wire.SourceDecider && src != wire.SourceFallback {
			t.Errorf("%d calls with decision source %q", bySource[src], src)
		}
	}
	if connectBefore == 0 {
		t.Errorf("no call connected before the fault")
	}
	if connectAfter == 0 {
		t.Errorf("no call connected after the breaker closed at %s", closedAt.Format(time.TimeOnly))
	}

	// An open breaker answers without asking NATS: far below the decide
	// timeout, which every other fallback of these faults waits (or, for
	// no_responders, does not). The median is the steady figure on a
	// shared machine; the slowest only has to stay under the timeout.
	if len(openLat) > 0 {
		sort.Slice(openLat, func(i, j int) bool { return openLat[i] < openLat[j] })
		med, p99, slowest := openLat[len(openLat)/2], openLat[len(openLat)*99/100], openLat[len(openLat)-1]
		t.Logf("breaker_open decisions: %d, median %s, p99 %s, max %s", len(openLat), med, p99, slowest)
		if med > faultDecideTimeout/20 || slowest >= faultDecideTimeout {
			t.Errorf("breaker_open decisions took median %s, max %s: an open breaker must answer immediately (decide timeout %s)",
				med, slowest, faultDecideTimeout)
		}
	}

	// What the callers heard is what was recorded.
	sys := rep.System
	for _, c := range []struct {
		answer string
		n      int
	}{
		{"fallback", bySource[wire.SourceFallback]},
		{"connect", outcomes[wire.OutcomeConnect]},
		{"out_of_session", outcomes[wire.OutcomeOutOfSession]},
	} {
		if sys.Answers[c.answer] != uint64(c.n) {
			t.Errorf("the load tool got %d %s answers; %d are recorded", sys.Answers[c.answer], c.answer, c.n)
		}
	}
	if sys.Answers["fallback"] == 0 {
		t.Errorf("no caller heard the fallback")
	}
}

// joinSlowDeciders subscribes n responders to the deciders' subject in
// their queue group, each answering every request (with the out-of-session
// callflow, as a decider would) only after delay. With n well above the
// number of real deciders nearly every request lands on a slow one. The
// returned func leaves the group; it also runs when the test ends.
func (r *faultRig) joinSlowDeciders(t *testing.T, n int, delay time.Duration) (leave func()) {
	t.Helper()
	nc, _ := r.Connect(t)
	resp := wire.SayThenHangup(decider.ClientActionOutOfSession, decider.DefaultOutOfSession)
	body := resp.JSON()
	var (
		mu   sync.Mutex
		left bool
		wg   sync.WaitGroup
		quit = make(chan struct{})
		subs []*nats.Subscription
	)
	for range n {
		sub, err := nc.QueueSubscribe(wire.DecideSubject, decider.DefaultQueueGroup, func(m *nats.Msg) {
			mu.Lock()
			defer mu.Unlock()
			if left {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-time.After(delay):
					_ = m.Respond(body)
				case <-quit:
				}
			}()
		})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	leave = func() {
		once.Do(func() {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			_ = nc.Flush()
			mu.Lock()
			left = true
			mu.Unlock()
			close(quit)
			wg.Wait()
		})
	}
	t.Cleanup(leave)
	return leave
}

// TestFaultClickHouseRestart stops ClickHouse (a private server, killed as
// in a crash) for several seconds while calls flow, and starts it again.
// It proves that calls are answered throughout (ClickHouse is not on the
// call path), that the standalone archiver reports itself not ready while
// ClickHouse is away and ready again after, retrying meanwhile, and that
// every answered webhook reaches ClickHouse exactly once after the
// outage: records wait in JetStream, and an insert cut by the crash is
// retried without doubling what FINAL reads.
func TestFaultClickHouseRestart(t *testing.T) {
	began := time.Now()
	r := newFaultRig(t, faultConfig{PrivateClickHouse: true})
	load := r.startLoad(t, faultLoadConfig{})
	load.waitStarted(t)

	// Some of the run archived before the crash.
	conn := chtest.Conn(t, r.CHAddr)
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		var n uint64
		err := conn.QueryRow(context.Background(), "SELECT count() FROM "+r.DB+".call_events WHERE "+r.runWhere(load.RunID)).Scan(&n)
		if err == nil && n == 0 {
			err = fmt.Errorf("nothing of the run archived yet")
		}
		return err
	})
	time.Sleep(2 * time.Second)

	r.CH.Stop(t)
	stoppedAt := time.Now()
	natstest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		code, checks, err := r.Readyz(r.ArchiverAdmin)
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || checks["clickhouse"] == "ok" {
			return fmt.Errorf("archiver /readyz %d %v with ClickHouse down", code, checks)
		}
		return nil
	})
	time.Sleep(time.Until(stoppedAt.Add(6 * time.Second)))
	if !load.running() {
		t.Fatal("the load ended during the outage; lengthen it")
	}
	r.CH.Start(t)
	t.Logf("ClickHouse down for %s", time.Since(stoppedAt).Round(time.Millisecond))
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		code, checks, err := r.Readyz(r.ArchiverAdmin)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("archiver /readyz %d %v with ClickHouse back", code, checks)
		}
		return nil
	})

	rep := load.wait(t)
	r.requireExactlyOnce(t, rep)
	retries, _, err := r.Metric(r.ArchiverAdmin, "callflow_archiver_retries_total")
	if err != nil {
		t.Fatal(err)
	}
	if retries == 0 {
		t.Errorf("callflow_archiver_retries_total is 0 after a ClickHouse outage under load")
	}
	t.Logf("archiver retried %v times; scenario took %s", retries, time.Since(began).Round(100*time.Millisecond))
}

// TestFaultArchiverKilledUnderLoad kills the archiver with SIGKILL while it
// holds records it has not acknowledged (a batch under way) during a load,
// and starts it again. It proves that calls are answered throughout and
// that every answered webhook ends in ClickHouse exactly once through
// FINAL: what the killed archiver held is redelivered to the new one, and
// rows it had inserted without acknowledging do not count twice.
func TestFaultArchiverKilledUnderLoad(t *testing.T) {
	began := time.Now()
	r := newFaultRig(t, faultConfig{ArchiverArgs: []string{"--batch-max-rows", "100"}})
	load := r.startLoad(t, faultLoadConfig{})
	load.waitStarted(t)

	conn := chtest.Conn(t, r.CHAddr)
	natstest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		var n uint64
		err := conn.QueryRow(context.Background(), "SELECT count() FROM "+r.DB+".call_events WHERE "+r.runWhere(load.RunID)).Scan(&n)
		if err == nil && n == 0 {
			err = fmt.Errorf("nothing of the run archived yet")
		}
		return err
	})
	time.Sleep(2 * time.Second)

	// Kill it mid-batch: while records are delivered to it and not yet
	// acknowledged.
	_, js := r.Connect(t)
	natstest.CheckFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cons, err := js.Consumer(ctx, "CALLS", "archiver")
		if err != nil {
			return err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending == 0 {
			return fmt.Errorf("the archiver holds no unacknowledged record")
		}
		return nil
	})
	killed := r.Archiver
	r.Kill(t, killed)
	killedAt := time.Now()
	if strings.Contains(killed.log(), `"msg":"stopped"`) {
		t.Fatalf("the archiver stopped cleanly; it was to be killed")
	}
	time.Sleep(2 * time.Second)
	if !load.running() {
		t.Fatal("the load ended before the archiver was back; lengthen it")
	}
	r.StartArchiver(t)
	t.Logf("archiver down for %s", time.Since(killedAt).Round(time.Millisecond))

	rep := load.wait(t)
	r.requireExactlyOnce(t, rep)
	redelivered, _, err := r.Metric(r.ArchiverAdmin, "callflow_archiver_redeliveries_total")
	if err != nil {
		t.Fatal(err)
	}
	raw := chtest.Count(t, conn, "SELECT count() FROM "+r.DB+".call_events WHERE "+r.runWhere(rep.RunID))
	t.Logf("the new archiver got %v records again; %d rows of the run before FINAL, %d events; scenario took %s",
		redelivered, raw, rep.Audit.Expected, time.Since(began).Round(100*time.Millisecond))
}
