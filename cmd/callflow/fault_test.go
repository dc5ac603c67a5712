package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/ingest"
	"github.com/callflow/callflow/ingest/spool"
	"github.com/callflow/callflow/internal/bench"
	"github.com/callflow/callflow/internal/chtest"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

			// Healthy first: calls are connected, in a second before the
			// fault's.
			r.waitConnectedBefore(t)
			r.WaitBreaker(t, breakerClosed, 5*time.Second)

			faultAt := time.Now()
			probesBefore := r.breakerChanges("open", "half-open")
			restore := tt.inject(t, r)
			r.WaitBreaker(t, breakerOpen, 20*time.Second)
			t.Logf("breaker open %s after the fault", time.Since(faultAt).Round(time.Millisecond))
			// Calls keep coming with the breaker open, answered at once,
			// and it probes the failing deciders (--breaker-open-for 2s)
			// at least once.
			waitAtLeast(t, 20*time.Second, "calls answered because the breaker is open", 1, func() (float64, error) {
				v, _, err := r.Metric(r.IngestAdmin, "callflow_fallbacks_total", `reason="`+ingestReasonBreakerOpen+`"`)
				return v, err
			})
			waitAtLeast(t, 20*time.Second, "probes of the failing deciders (breaker open to half-open)", float64(probesBefore+1), func() (float64, error) {
				return float64(r.breakerChanges("open", "half-open")), nil
			})

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
			// Closed at the end too. A decide request starved of CPU on a
			// crowded machine may open it for a moment; with the load over,
			// only calls make it probe the deciders again, so a call is
			// posted while it is not closed.
			probe := 0
			natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
				state, err := r.BreakerState()
				if err != nil || state == breakerClosed {
					return err
				}
				probe++
				_, _ = r.PostCall(t, fmt.Sprintf("breaker-probe-%s-%d", tt.name, probe), "+6599990099", "+6598765432")
				return fmt.Errorf("breaker %d, not closed, after %d probe calls", state, probe)
			})
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

// faultOutageWebhooks is how many webhooks, or their records, an outage
// must see before it ends: enough that the repair has work to do.
const faultOutageWebhooks = 50

// natsRestartSessions is the number of sessions of TestFaultNATSRestart's
// load, which every decider's index must hold before the outage.
const natsRestartSessions = 20

// waitAtLeast waits up to within until count reaches atLeast, and returns
// the count: whatever it counted happened before waitAtLeast returned.
func waitAtLeast(t *testing.T, within time.Duration, what string, atLeast float64, count func() (float64, error)) float64 {
	t.Helper()
	var v float64
	natstest.CheckFor(t, within, 25*time.Millisecond, func() error {
		var err error
		if v, err = count(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if v < atLeast {
			return fmt.Errorf("%s: %v, waiting for %v", what, v, atLeast)
		}
		return nil
	})
	return v
}

// waitSecondAfter waits until the clock is in a later whole second than
// at: the archive stores received_at in whole seconds, so an event that
// happened by at is then strictly before anything received from now on.
// It waits at most a second.
func waitSecondAfter(at time.Time) {
	time.Sleep(time.Until(time.Unix(at.Unix()+1, 0)))
}

// waitConnectedBefore waits until the deciders have connected calls of
// the load and the clock has moved to a later second, so that calls
// connected before a fault injected now are in the archive as such.
func (r *faultRig) waitConnectedBefore(t *testing.T) {
	t.Helper()
	waitAtLeast(t, 30*time.Second, "calls connected by the deciders", 1, func() (float64, error) {
		v, _, err := r.Metric(r.IngestAdmin, "callflow_decisions_total", `source="`+wire.SourceDecider+`"`, `outcome="`+wire.OutcomeConnect+`"`)
		return v, err
	})
	waitSecondAfter(time.Now())
}

// waitRecorded waits until JetStream has acknowledged records of the
// ingest: the load flows end to end before a fault.
func (r *faultRig) waitRecorded(t *testing.T) {
	t.Helper()
	waitAtLeast(t, 30*time.Second, "records JetStream acknowledged", faultOutageWebhooks, func() (float64, error) {
		v, _, err := r.Metric(r.IngestAdmin, "callflow_record_publish_duration_seconds_count")
		return v, err
	})
}

// waitArchivedSome waits until some of the run is in ClickHouse.
func (r *faultRig) waitArchivedSome(t *testing.T, runID string) {
	t.Helper()
	conn := chtest.Conn(t, r.CHAddr)
	waitAtLeast(t, 30*time.Second, "rows of the run in ClickHouse", 1, func() (float64, error) {
		var n uint64
		err := conn.QueryRow(context.Background(), "SELECT count() FROM "+r.DB+".call_events WHERE "+r.runWhere(runID)).Scan(&n)
		return float64(n), err
	})
}

// breakerChanges counts the ingest's logged breaker changes from one
// state to another (gobreaker's names: closed, half-open, open).
func (r *faultRig) breakerChanges(from, to string) int {
	n := 0
	for _, e := range logEntries(r.Ingest, "decider circuit breaker changed state") {
		if e["from"] == from && e["to"] == to {
			n++
		}
	}
	return n
}

// archiverConsumer returns the state of the archiver's durable consumer.
func archiverConsumer(js jetstream.JetStream) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, "CALLS", "archiver")
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

// checkDeciderFault checks the decisions a decider fault left in the
// archive: fallbacks only for the fault's reasons and breaker_open, both
// present; breaker_open ones immediate; calls connected before the fault
// and again after the breaker closed; and the answers the load tool got
// matching the decisions recorded.
func (r *faultRig) checkDeciderFault(t *testing.T, rep *bench.Report, faultAt, closedAt time.Time, want, allowed []string) {
	t.Helper()
	decs := r.decisions(t, rep.RunID)
	tally := requireAnswersMatchRecords(t, rep, decs)
	byReason, bySource, outcomes := tally.byReason, tally.bySource, tally.outcomes
	var openLat []time.Duration
	var connectBefore, connectAfter int
	for _, d := range decs {
		if d.Source == wire.SourceFallback && d.Reason == ingestReasonBreakerOpen {
			openLat = append(openLat, time.Duration(d.LatencyMicros)*time.Microsecond)
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

	if rep.System.Answers["fallback"] == 0 {
		t.Errorf("no caller heard the fallback")
	}
}

// decisionTally counts a run's archived decisions.
type decisionTally struct {
	// bySource counts by decision source, outcomes by outcome, byReason
	// the fallbacks by reason.
	bySource, outcomes, byReason map[string]int
}

// requireAnswersMatchRecords checks that what the callers heard is what
// was recorded: the load tool's connect, out-of-session and fallback
// answers are as many as the archived decisions of each kind, and there
// are some. It returns the tally of the decisions.
func requireAnswersMatchRecords(t *testing.T, rep *bench.Report, decs []faultDecision) decisionTally {
	t.Helper()
	c := decisionTally{bySource: map[string]int{}, outcomes: map[string]int{}, byReason: map[string]int{}}
	for _, d := range decs {
		c.bySource[d.Source]++
		c.outcomes[d.Outcome]++
		if d.Source == wire.SourceFallback {
			c.byReason[d.Reason]++
		}
	}
	sys := rep.System
	var heard uint64
	for _, a := range []struct {
		answer string
		n      int
	}{
		{"fallback", c.bySource[wire.SourceFallback]},
		{"connect", c.outcomes[wire.OutcomeConnect]},
		{"out_of_session", c.outcomes[wire.OutcomeOutOfSession]},
	} {
		heard += sys.Answers[a.answer]
		if sys.Answers[a.answer] != uint64(a.n) {
			t.Errorf("the load tool got %d %s answers; %d are recorded", sys.Answers[a.answer], a.answer, a.n)
		}
	}
	if len(decs) == 0 || heard != uint64(len(decs)) {
		t.Errorf("%d calls answered, %d decisions recorded: want the same, and some", heard, len(decs))
	}
	return c
}

// joinSlowDeciders subscribes n responders to the deciders' subject in
// their queue group, each answering every request (with the out-of-session
// callflow, as a decider would) only after delay. With n well above the
// number of real deciders nearly every request lands on a slow one. The
// returned func leaves the group; it also runs when the test ends.
func (r *faultRig) joinSlowDeciders(t *testing.T, n int, delay time.Duration) (leave func()) {
	t.Helper()
	nc, _ := r.Connect(t)
	resp := wire.SayThenHangup(wire.ClientActionOutOfSession, decider.DefaultOutOfSession)
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
	r.waitArchivedSome(t, load.RunID)

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
	// Calls keep being answered while the archiver retries (more than
	// once: it keeps at it), their records waiting in JetStream.
	answeredAtStop, _, err := r.Metric(r.IngestAdmin, "callflow_webhook_requests_total")
	if err != nil {
		t.Fatal(err)
	}
	waitAtLeast(t, 30*time.Second, "failed ClickHouse attempts the archiver retried", 2, func() (float64, error) {
		v, _, err := r.Metric(r.ArchiverAdmin, "callflow_archiver_retries_total")
		return v, err
	})
	waitAtLeast(t, 30*time.Second, "webhooks answered with ClickHouse down", answeredAtStop+faultOutageWebhooks, func() (float64, error) {
		v, _, err := r.Metric(r.IngestAdmin, "callflow_webhook_requests_total")
		return v, err
	})
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

	r.waitArchivedSome(t, load.RunID)

	// Kill it mid-batch: while records are delivered to it and not yet
	// acknowledged.
	_, js := r.Connect(t)
	natstest.CheckFor(t, 20*time.Second, 5*time.Millisecond, func() error {
		info, err := archiverConsumer(js)
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
	// What it held waits for the ack wait, and the records of the calls
	// answered meanwhile wait in the stream for the next archiver.
	held := -1
	natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		info, err := archiverConsumer(js)
		if err != nil {
			return err
		}
		if held < 0 {
			held = info.NumAckPending
		}
		if info.NumPending < faultOutageWebhooks {
			return fmt.Errorf("%d records wait for the next archiver", info.NumPending)
		}
		return nil
	})
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
	if held > 0 && redelivered == 0 {
		t.Errorf("the killed archiver held %d unacknowledged records; the new one got none again", held)
	}
	conn := chtest.Conn(t, r.CHAddr)
	raw := chtest.Count(t, conn, "SELECT count() FROM "+r.DB+".call_events WHERE "+r.runWhere(rep.RunID))
	t.Logf("the new archiver got %v records again; %d rows of the run before FINAL, %d events; scenario took %s",
		redelivered, raw, rep.Audit.Expected, time.Since(began).Round(100*time.Millisecond))
}

// TestFaultNATSRestart stops the NATS server for several seconds while
// calls flow and starts it again on the same port with the same store,
// restarting no callflow process. It proves that every call is answered
// throughout, without an HTTP or connection error: while NATS is away a
// CALL_ACTION gets the fallback (reason unavailable: the ingest does not
// wait for a reconnect) and other events their acknowledgement; that the
// records of those calls go through the ingest's on-disk spool and are all
// republished once NATS is back (the spool empties, nothing is lost); that
// the deciders re-register (they answer a PING again, and calls are
// connected again after the restart); that their session caches resync (a
// session created after the restart reaches every decider's index and its
// calls are connected: the bucket watch resumed); that the archiver's
// consumer resumes; and that every answered webhook is in ClickHouse
// exactly once.
func TestFaultNATSRestart(t *testing.T) {
	began := time.Now()
	r := newFaultRig(t, faultConfig{})
	nc, _ := r.Connect(t)
	load := r.startLoad(t, faultLoadConfig{Duration: 25 * time.Second, Sessions: natsRestartSessions})
	load.waitStarted(t)

	// Healthy first: each decider's index holds the load's sessions, and
	// calls are connected, in a second before the outage's.
	sessionsBefore := make([]float64, len(r.DeciderAdmins))
	for i, addr := range r.DeciderAdmins {
		sessionsBefore[i] = waitAtLeast(t, 20*time.Second, fmt.Sprintf("sessions in decider %d's index", i), natsRestartSessions, func() (float64, error) {
			v, ok, err := r.Metric(addr, "callflow_sessions")
			if err == nil && !ok {
				err = fmt.Errorf("decider %d exports no callflow_sessions", i)
			}
			return v, err
		})
	}
	r.waitConnectedBefore(t)

	r.StopNATS(t)
	stoppedAt := time.Now()
	// Calls keep being answered, their records kept in the spool.
	natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		appended, _, err := r.Metric(r.IngestAdmin, "callflow_spool_appended_total")
		if err != nil {
			return err
		}
		waiting, _, err := r.Metric(r.IngestAdmin, "callflow_spool_records")
		if err != nil {
			return err
		}
		if appended == 0 || waiting == 0 {
			return fmt.Errorf("NATS is down and the ingest spooled %v records (%v waiting)", appended, waiting)
		}
		return nil
	})
	// Calls answered with the fallback (unavailable) in a whole second
	// after the stop's and before the restart's: the archive tells the
	// outage apart by received_at, in whole seconds. A call is counted
	// microseconds after it was received (no NATS to wait for), so of the
	// calls counted after base, most were received after it.
	waitSecondAfter(stoppedAt)
	base, _, err := r.Metric(r.IngestAdmin, "callflow_fallbacks_total", `reason="`+ingest.ReasonUnavailable+`"`)
	if err != nil {
		t.Fatal(err)
	}
	waitAtLeast(t, 20*time.Second, "calls answered with NATS down", base+10, func() (float64, error) {
		v, _, err := r.Metric(r.IngestAdmin, "callflow_fallbacks_total", `reason="`+ingest.ReasonUnavailable+`"`)
		return v, err
	})
	waitSecondAfter(time.Now())
	if !load.running() {
		t.Fatal("the load ended during the outage; lengthen it")
	}
	startingAt := time.Now()
	r.StartNATS(t)
	restartedAt := time.Now()
	t.Logf("NATS down for %s", restartedAt.Sub(stoppedAt).Round(time.Millisecond))

	// A session created right after the restart, through the ingest's
	// admin API (JetStream may still be recovering: retried).
	tag := time.Now().UnixNano() % 1_000_000_000
	virtual := fmt.Sprintf("+971%09d", tag)
	participants := [2]string{fmt.Sprintf("+972%09d", tag), fmt.Sprintf("+973%09d", tag)}
	failedBefore := false
	natstest.CheckFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		code, body, err := r.CreateSession(virtual, participants, 10*time.Minute)
		switch {
		case err != nil:
			failedBefore = true
			return err
		case code == http.StatusCreated:
			return nil
		case code == http.StatusConflict && failedBefore:
			return nil // an attempt that seemed to fail created it
		}
		failedBefore = true
		return fmt.Errorf("create session: %d %s", code, body)
	})
	createdAt := time.Now()

	// The deciders are registered again.
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		n, err := r.PingDeciders(nc)
		if err != nil {
			return err
		}
		if want := len(r.Deciders) * r.cfg.DecidersEach; n != want {
			return fmt.Errorf("%d deciders answered PING after the restart, want %d", n, want)
		}
		return nil
	})
	pingedAt := time.Now()
	// Every decider's index got the new session: its bucket watch resumed.
	for i, addr := range r.DeciderAdmins {
		natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			v, _, err := r.Metric(addr, "callflow_sessions")
			if err != nil {
				return err
			}
			if v != sessionsBefore[i]+1 {
				return fmt.Errorf("decider %d holds %v sessions; %v before the restart, and one was created after it", i, v, sessionsBefore[i])
			}
			return nil
		})
	}
	indexedAt := time.Now()
	// And calls from its participant are connected, whichever decider
	// takes them (the breaker may still be open at first).
	seq := 0
	call := func() (bench.Answer, error) {
		seq++
		return r.PostCall(t, fmt.Sprintf("natsrestart-%d-%d", tag, seq), participants[0], virtual)
	}
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		ans, err := call()
		if err != nil {
			return err
		}
		if ans != bench.AnswerConnect {
			return fmt.Errorf("a call in the session created after the restart was answered %s", ans)
		}
		return nil
	})
	for range 10 {
		if ans, err := call(); err != nil || ans != bench.AnswerConnect {
			t.Errorf("a call in the session created after the restart was answered %s (%v), want connect", ans, err)
		}
	}
	t.Logf("after the restart: session created after %s, deciders answered PING after %s, every decider indexed the session after %s, its calls connected after %s",
		createdAt.Sub(restartedAt).Round(time.Millisecond), pingedAt.Sub(restartedAt).Round(time.Millisecond),
		indexedAt.Sub(restartedAt).Round(time.Millisecond), time.Since(restartedAt).Round(time.Millisecond))
	if !load.running() {
		t.Fatal("the load ended before the deciders were back; lengthen it")
	}

	rep := load.wait(t)
	r.requireExactlyOnce(t, rep)

	// Everything spooled was republished, nothing lost.
	var appended, replayed float64
	natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var err error
		if appended, _, err = r.Metric(r.IngestAdmin, "callflow_spool_appended_total"); err != nil {
			return err
		}
		if replayed, _, err = r.Metric(r.IngestAdmin, "callflow_spool_replayed_total"); err != nil {
			return err
		}
		waiting, _, err := r.Metric(r.IngestAdmin, "callflow_spool_records")
		if err != nil {
			return err
		}
		if waiting != 0 {
			return fmt.Errorf("%v records still in the spool", waiting)
		}
		return nil
	})
	lost, _, err := r.Metric(r.IngestAdmin, "callflow_records_lost_total")
	if err != nil {
		t.Fatal(err)
	}
	if appended == 0 || replayed != appended || lost != 0 {
		t.Errorf("spool: %v records appended, %v replayed, %v lost; want some appended, all replayed, none lost", appended, replayed, lost)
	}

	// No component was restarted: each rode through.
	for _, p := range append([]*proc{r.Ingest, r.Archiver}, r.Deciders...) {
		if gone, err := exited(p); gone {
			t.Errorf("%v exited during the NATS restart: %v", p.cmd.Args[1:2], err)
		}
	}

	r.checkNATSOutage(t, rep, stoppedAt, startingAt, restartedAt)
	t.Logf("spool: %v appended, %v replayed; scenario took %s", appended, replayed, time.Since(began).Round(100*time.Millisecond))
}

// checkNATSOutage checks the decisions a NATS outage left in the archive:
// calls connected before it and after it; during it (the whole seconds
// between the stop and the start) every CALL_ACTION answered with the
// fallback because NATS was unavailable; fallbacks only for reasons a
// NATS restart explains; and the answers the load tool got matching the
// decisions recorded.
func (r *faultRig) checkNATSOutage(t *testing.T, rep *bench.Report, stoppedAt, startingAt, restartedAt time.Time) {
	t.Helper()
	decs := r.decisions(t, rep.RunID)
	tally := requireAnswersMatchRecords(t, rep, decs)
	byReason, bySource, outcomes := tally.byReason, tally.bySource, tally.outcomes
	var connectBefore, connectAfter, during int
	var duringWrong []faultDecision
	var unavailableLat []time.Duration
	for _, d := range decs {
		sec := d.ReceivedAt.Unix()
		switch {
		case sec < stoppedAt.Unix():
			if d.Outcome == wire.OutcomeConnect {
				connectBefore++
			}
		case sec > stoppedAt.Unix() && sec < startingAt.Unix():
			during++
			if d.Source != wire.SourceFallback || d.Reason != ingest.ReasonUnavailable {
				duringWrong = append(duringWrong, d)
			} else {
				unavailableLat = append(unavailableLat, time.Duration(d.LatencyMicros)*time.Microsecond)
			}
		case sec > restartedAt.Unix():
			if d.Outcome == wire.OutcomeConnect {
				connectAfter++
			}
		}
	}
	t.Logf("%d calls: sources %v, outcomes %v, fallback reasons %v; connected %d before the outage, %d after; %d received during it",
		len(decs), bySource, outcomes, byReason, connectBefore, connectAfter, during)
	if connectBefore == 0 {
		t.Errorf("no call connected before the outage")
	}
	if connectAfter == 0 {
		t.Errorf("no call of the load connected after NATS was back")
	}
	if during == 0 {
		t.Errorf("no call received during the outage")
	}
	if len(duringWrong) > 0 {
		t.Errorf("%d calls received while NATS was down were not answered with the fallback because unavailable, e.g. %+v",
			len(duringWrong), duringWrong[0])
	}
	if byReason[ingest.ReasonUnavailable] == 0 {
		t.Errorf("no fallback because %s (fallbacks: %v)", ingest.ReasonUnavailable, byReason)
	}
	// Besides unavailable: a request in flight when the server went away
	// times out; right after the restart the ingest may be back before
	// the deciders (no responders), and the breaker may open on those.
	ok := map[string]bool{ingest.ReasonUnavailable: true, ingest.ReasonTimeout: true,
		ingest.ReasonNoResponders: true, ingest.ReasonBreakerOpen: true}
	for reason, n := range byReason {
		if !ok[reason] {
			t.Errorf("%d fallbacks because %q, which a NATS restart does not explain", n, reason)
		}
	}
	if len(unavailableLat) > 0 {
		sort.Slice(unavailableLat, func(i, j int) bool { return unavailableLat[i] < unavailableLat[j] })
		t.Logf("fallbacks during the outage: %d, decided in median %s, max %s",
			len(unavailableLat), unavailableLat[len(unavailableLat)/2], unavailableLat[len(unavailableLat)-1])
	}
	if rep.System.Answers["ack"] == 0 {
		t.Errorf("no event other than a call was acknowledged")
	}
}

// sigtermShutdownTimeout is the ingest's --shutdown-timeout in
// TestFaultIngestSIGTERM; it must exit 0 within it.
const sigtermShutdownTimeout = 20 * time.Second

// sigtermIngestArgs: a call waits long enough for a hung decider that it
// is still in flight when the SIGTERM arrives.
var sigtermIngestArgs = []string{"--shutdown-timeout", sigtermShutdownTimeout.String(), "--decide-timeout", "5s"}

// TestFaultIngestSIGTERM sends SIGTERM to the ingest while calls flow,
// starts it again on the same addresses and data directory once it has
// exited, and lets the load run on. Requests sent while no ingest
// listened fail to connect: those are the only failures tolerated; every
// other request is answered, none with a 5xx or a timeout, every 200 is
// in ClickHouse exactly once, and nothing the ingest took went
// unanswered (no extra record). Each variant proves more:
//
//   - flushed: calls in flight at the SIGTERM (held at hung deciders,
//     their decide requests seen on NATS) are answered, stored and
//     archived; records JetStream refused before the SIGTERM (the stream
//     full, discarding new messages) went to the spool, JetStream takes
//     them again just before the SIGTERM, and the spool is empty on disk
//     when the ingest has exited 0: flushed to the stream before exit.
//   - resumed: with NATS stopped, the spooled records cannot be sent; the
//     ingest still exits 0, leaves them in <data-dir>/spool and says so,
//     and the next ingest started on that data directory (NATS back)
//     republishes them: each is archived exactly once.
func TestFaultIngestSIGTERM(t *testing.T) {
	t.Run("flushed", func(t *testing.T) {
		began := time.Now()
		r := newFaultRig(t, faultConfig{IngestArgs: sigtermIngestArgs})
		nc, js := r.Connect(t)
		snoop := snoopDecides(t, nc)
		load := r.startLoad(t, faultLoadConfig{})
		load.waitStarted(t)
		r.waitRecorded(t)

		// JetStream refuses records: they go to the spool, and the
		// ingest's replay loop backs off.
		setStreamRefusing(t, js, true)
		natstest.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			failed, _, err := r.Metric(r.IngestAdmin, "callflow_record_publish_failures_total")
			if err != nil {
				return err
			}
			waiting, _, err := r.Metric(r.IngestAdmin, "callflow_spool_records")
			if err != nil {
				return err
			}
			if failed == 0 || waiting == 0 {
				return fmt.Errorf("JetStream refuses records: %v publishes failed, %v records spooled", failed, waiting)
			}
			return nil
		})
		// The replay loop has failed to send them and backs off.
		natstest.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			if len(logEntries(r.Ingest, "spool replay interrupted; retrying")) == 0 {
				return fmt.Errorf("the ingest has not tried to replay its spool yet")
			}
			return nil
		})

		// Calls in flight: the deciders hang, so calls wait for them in
		// the ingest.
		for _, p := range r.Deciders {
			r.Signal(t, p, syscall.SIGSTOP)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				for _, p := range r.Deciders {
					r.Signal(t, p, syscall.SIGCONT)
				}
			}
		}
		t.Cleanup(resume)
		base := snoop.count()
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if n := snoop.count() - base; n < 20 {
				return fmt.Errorf("%d calls waiting for the hung deciders", n)
			}
			return nil
		})

		// JetStream takes records again, and the ingest is stopped at
		// once, its spool still holding records.
		setStreamRefusing(t, js, false)
		spooled, _, err := r.Metric(r.IngestAdmin, "callflow_spool_records")
		if err != nil {
			t.Fatal(err)
		}
		old := r.Ingest
		r.Signal(t, old, syscall.SIGTERM)
		termAt := time.Now()
		natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if len(logEntries(old, "stopping: draining in-flight calls")) == 0 {
				return fmt.Errorf("the ingest has not begun to stop")
			}
			return nil
		})
		held := snoop.since(base, load.RunID)
		resume()
		err = r.WaitExit(t, old, sigtermShutdownTimeout+10*time.Second)
		took := time.Since(termAt)
		t.Logf("ingest exited %s after SIGTERM (%v) with %d calls in flight and %v records spooled just before",
			took.Round(time.Millisecond), err, len(held), spooled)
		if err != nil {
			t.Errorf("the ingest exited with %v after SIGTERM, want status 0\n%s", err, old.log())
		}
		if spooled == 0 {
			t.Errorf("the spool was empty before the SIGTERM: nothing to flush")
		}
		drained := logEntries(old, "ingest drained")
		if len(drained) != 1 || logNumber(drained[0], "spool_waiting") != 0 || logNumber(drained[0], "lost") != 0 {
			t.Errorf("the ingest's last account: %v; want spool_waiting 0 and lost 0", drained)
		}
		if left := logEntries(old, "records remain in the spool; they are sent at the next start"); len(left) > 0 {
			t.Errorf("the ingest left records in its spool although JetStream answered: %v", left)
		}
		if entries, err := spool.Read(filepath.Join(r.DataDir, "spool")); err != nil || len(entries) != 0 {
			t.Errorf("%d records on disk in the spool after the ingest exited (%v), want none", len(entries), err)
		}
		// Who sent them: the replay loop before the drain, or the drain.
		var before, during float64
		logs := old.log()
		stopping := strings.Index(logs, "stopping: draining in-flight calls")
		if stopping < 0 {
			stopping = len(logs)
		}
		for _, e := range logEntriesIn(logs[:stopping], "spool replayed to JetStream") {
			before += logNumber(e, "records")
		}
		for _, e := range logEntriesIn(logs[stopping:], "spool replayed to JetStream") {
			during += logNumber(e, "records")
		}
		t.Logf("the old ingest replayed %v spooled records before the SIGTERM, %v after it", before, during)

		r.StartIngest(t)
		t.Logf("ingest down for %s", time.Since(termAt).Round(time.Millisecond))
		if !load.running() {
			t.Fatal("the load ended before the ingest was back; lengthen it")
		}
		rep := load.wait(t)
		r.requireExactlyOnceExcept(t, rep, "connection")
		r.requireArchived(t, held, "calls in flight at the SIGTERM")
		t.Logf("%d requests failed to connect while the ingest was down; scenario took %s",
			rep.System.Errors["connection"], time.Since(began).Round(100*time.Millisecond))
	})

	t.Run("resumed", func(t *testing.T) {
		began := time.Now()
		r := newFaultRig(t, faultConfig{IngestArgs: sigtermIngestArgs})
		load := r.startLoad(t, faultLoadConfig{})
		load.waitStarted(t)
		r.waitRecorded(t)

		// NATS away: records go to the spool.
		r.StopNATS(t)
		stoppedAt := time.Now()
		waitAtLeast(t, 20*time.Second, "records in the spool with NATS down", faultOutageWebhooks, func() (float64, error) {
			v, _, err := r.Metric(r.IngestAdmin, "callflow_spool_records")
			return v, err
		})

		old := r.Ingest
		took, err := r.Terminate(t, old, sigtermShutdownTimeout+10*time.Second)
		t.Logf("ingest exited %s after SIGTERM (%v) with NATS down", took.Round(time.Millisecond), err)
		if err != nil {
			t.Errorf("the ingest exited with %v after SIGTERM, want status 0\n%s", err, old.log())
		}
		entries, err := spool.Read(filepath.Join(r.DataDir, "spool"))
		if err != nil {
			t.Fatal(err)
		}
		left := logEntries(old, "records remain in the spool; they are sent at the next start")
		if len(entries) == 0 || len(left) != 1 || logNumber(left[0], "records") != float64(len(entries)) {
			t.Fatalf("%d records on disk in the spool after the ingest exited with NATS down; it said %v", len(entries), left)
		}

		r.StartNATS(t)
		t.Logf("NATS down for %s", time.Since(stoppedAt).Round(time.Millisecond))
		r.StartIngest(t)
		// The new ingest sends what the old one left.
		natstest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
			replayed, _, err := r.Metric(r.IngestAdmin, "callflow_spool_replayed_total")
			if err != nil {
				return err
			}
			waiting, _, err := r.Metric(r.IngestAdmin, "callflow_spool_records")
			if err != nil {
				return err
			}
			if waiting != 0 || replayed < float64(len(entries)) {
				return fmt.Errorf("the new ingest replayed %v records, %v waiting; the old one left %d", replayed, waiting, len(entries))
			}
			return nil
		})
		t.Logf("ingest down for %s; the new one replayed the %d records the old one left", time.Since(stoppedAt).Round(time.Millisecond), len(entries))
		if !load.running() {
			t.Fatal("the load ended before the ingest was back; lengthen it")
		}

		rep := load.wait(t)
		r.requireExactlyOnceExcept(t, rep, "connection")
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.ID)
		}
		r.requireArchived(t, ids, "records left in the spool")
		for _, p := range append([]*proc{r.Archiver}, r.Deciders...) {
			if gone, err := exited(p); gone {
				t.Errorf("%v exited during the NATS restart: %v", p.cmd.Args[1:2], err)
			}
		}
		t.Logf("%d requests failed to connect while the ingest was down; scenario took %s",
			rep.System.Errors["connection"], time.Since(began).Round(100*time.Millisecond))
	})
}

// setStreamRefusing makes the records stream refuse every new record (at
// most one message, discarding new ones: nothing stored is removed), or
// takes it back to its settings.
func setStreamRefusing(t *testing.T, js jetstream.JetStream, refuse bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CALLS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgs, cfg.Discard = -1, jetstream.DiscardOld
	if refuse {
		cfg.MaxMsgs, cfg.Discard = 1, jetstream.DiscardNew
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("update stream CALLS (refuse %v): %v", refuse, err)
	}
}

// decideSnoop sees every decide request the ingest sends (a plain
// subscription beside the deciders' queue group; it never answers).
type decideSnoop struct {
	mu  sync.Mutex
	ids []string // event ids, in arrival order
}

func snoopDecides(t *testing.T, nc *nats.Conn) *decideSnoop {
	t.Helper()
	s := &decideSnoop{}
	sub, err := nc.Subscribe(wire.DecideSubject, func(m *nats.Msg) {
		var req struct {
			EventID string `json:"eventId"`
		}
		if json.Unmarshal(m.Data, &req) == nil {
			s.mu.Lock()
			s.ids = append(s.ids, req.EventID)
			s.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return s
}

func (s *decideSnoop) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// since returns the event ids of run runID's calls seen from the base-th
// on (probes excluded).
func (s *decideSnoop) since(base int, runID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := "bench-" + runID + "-"
	var out []string
	for _, id := range s.ids[base:] {
		if strings.HasPrefix(id, prefix) && !strings.HasPrefix(id, prefix+"probe-") {
			out = append(out, id)
		}
	}
	return out
}

// requireArchived checks that each of the record ids is in ClickHouse
// exactly once through FINAL, and logs how the calls among them were
// decided.
func (r *faultRig) requireArchived(t *testing.T, ids []string, what string) {
	t.Helper()
	uniq := map[string]bool{}
	var quoted []string
	for _, id := range ids {
		if !uniq[id] {
			uniq[id] = true
			quoted = append(quoted, "'"+strings.ReplaceAll(id, "'", "\\'")+"'")
		}
	}
	if len(quoted) == 0 {
		t.Errorf("no %s to look for", what)
		return
	}
	conn := chtest.Conn(t, r.CHAddr)
	in := strings.Join(quoted, ",")
	final := chtest.Count(t, conn, "SELECT count() FROM "+r.DB+".call_events FINAL WHERE event_id IN ("+in+")")
	distinct := chtest.Count(t, conn, "SELECT uniqExact(event_id) FROM "+r.DB+".call_events WHERE event_id IN ("+in+")")
	if final != uint64(len(quoted)) || distinct != uint64(len(quoted)) {
		t.Errorf("%d %s: ClickHouse holds %d rows of them through FINAL, %d distinct", len(quoted), what, final, distinct)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT decision_source, decision_outcome, fallback_reason, count() FROM "+r.DB+
		".call_events FINAL WHERE event_type = 'CALL_ACTION' AND event_id IN ("+in+") GROUP BY decision_source, decision_outcome, fallback_reason")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var how []string
	for rows.Next() {
		var src, outcome, reason string
		var n uint64
		if err := rows.Scan(&src, &outcome, &reason, &n); err != nil {
			t.Fatal(err)
		}
		if reason != "" {
			outcome += "/" + reason
		}
		how = append(how, fmt.Sprintf("%s/%s: %d", src, outcome, n))
	}
	t.Logf("%d %s archived once each; calls among them: %s", len(quoted), what, strings.Join(how, ", "))
}
