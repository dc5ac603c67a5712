package decider_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// cluster is a real server with a session store and deciders, each decider
// on a connection of its own, as separate processes would be.
type cluster struct {
	srv      *server.Server
	client   *nats.Conn
	store    *session.Store
	deciders []*decider.Service
}

func startCluster(t *testing.T, n int, cfg decider.Config) *cluster {
	t.Helper()
	srv := natstest.RunServer(t)
	client, js := natstest.Connect(t, srv)
	c := &cluster{srv: srv, client: client, store: openStore(t, js)}
	for i := 0; i < n; i++ {
		c.deciders = append(c.deciders, startDecider(t, srv, c.store, cfg))
	}
	return c
}

func startDecider(t *testing.T, srv *server.Server, sessions decider.Sessions, cfg decider.Config) *decider.Service {
	t.Helper()
	nc, _ := natstest.Connect(t, srv)
	svc, err := decider.Start(nc, sessions, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	// Start returns before the server has the endpoint's subscription (it
	// does not flush): a request from another connection right away could
	// meet "no responders".
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return svc
}

func ask(t testing.TB, nc *nats.Conn, subject string, body []byte) *nats.Msg {
	t.Helper()
	msg, err := nc.Request(subject, body, 5*time.Second)
	if err != nil {
		t.Fatalf("request on %s: %v", subject, err)
	}
	return msg
}

func decideBody(source, destination string) []byte {
	r := wire.DecideRequest{EventID: "ev-1", CallID: "call-1", SessionID: "sess-1", SubAccountID: "acct",
		CallStatus: "CALL_RECEIVED", Source: source, Destination: destination}
	return r.AppendJSON(nil)
}

func TestServiceAnswers(t *testing.T) {
	c := startCluster(t, 2, decider.Config{})
	s := createSession(t, c.store, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB},
		Greeting: &wire.Say{Text: "Hello", VoiceProfile: "en-US-ZiraRUS"}})
	greet := wire.SayAction(wire.Say{Text: "Hello", VoiceProfile: "en-US-ZiraRUS"})
	out := outOfSessionFlow(decider.DefaultOutOfSession)

	tests := []struct {
		name        string
		body        []byte
		wantOutcome string
		wantID      string
		wantFlow    []wire.Action
	}{
		{"participant A", decideBody(pA, vn1), wire.OutcomeConnect, s.ID, []wire.Action{greet, wire.MakeCall(vn1, pB, false)}},
		{"participant B without plus", decideBody("6587654321", "6598765432"), wire.OutcomeConnect, s.ID, []wire.Action{greet, wire.MakeCall(vn1, pA, false)}},
		{"stranger", decideBody(pC, vn1), wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"anonymous", decideBody("anonymous", vn1), wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"short destination", decideBody(pA, "123"), wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		// A well-formed request without numbers is a decision, not an error.
		{"empty object", []byte(`{}`), wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"unknown fields", []byte(`{"source":"+6512345678","destination":"+6598765432","extra":{"x":[1]}}`), wire.OutcomeConnect, s.ID, []wire.Action{greet, wire.MakeCall(vn1, pB, false)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Several times, so that both deciders answer some.
			for i := 0; i < 4; i++ {
				msg := ask(t, c.client, decider.DefaultSubject, tt.body)
				if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
					t.Fatalf("service error %s: %s", code, msg.Header.Get(micro.ErrorHeader))
				}
				if got := outcomeOf(msg); got != tt.wantOutcome {
					t.Errorf("outcome = %q, want %q", got, tt.wantOutcome)
				}
				checkAnswer(t, msg.Data, tt.wantID, tt.wantFlow)
			}
		})
	}
}

func TestServiceMalformedRequest(t *testing.T) {
	c := startCluster(t, 1, decider.Config{})
	tests := []struct {
		name string
		body []byte
	}{
		{"not json", []byte("not json")},
		{"empty", nil},
		{"truncated", decideBody(pA, vn1)[:20]},
		{"array", []byte(`[1,2]`)},
		{"number where a string belongs", []byte(`{"source":6512345678,"destination":"+6598765432"}`)},
		{"string", []byte(`"+6512345678"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := ask(t, c.client, decider.DefaultSubject, tt.body)
			if code := msg.Header.Get(micro.ErrorCodeHeader); code != "400" {
				t.Errorf("%s = %q, want 400", micro.ErrorCodeHeader, code)
			}
			if msg.Header.Get(micro.ErrorHeader) == "" {
				t.Errorf("no %s header", micro.ErrorHeader)
			}
			if _, err := wire.ParseResponse(msg.Data); err == nil {
				t.Errorf("an error carries a callflow: %s", msg.Data)
			}
		})
	}
	// The decider still answers after bad requests.
	msg := ask(t, c.client, decider.DefaultSubject, decideBody(pA, vn1))
	if outcomeOf(msg) != wire.OutcomeOutOfSession {
		t.Errorf("after bad requests: %v %s", msg.Header, msg.Data)
	}
	// micro counts them as errors, summed over the deciders of the queue
	// group (any of them may have taken any request).
	var requests, errs int
	for _, d := range c.deciders {
		var stats micro.Stats
		statsSubject, _ := micro.ControlSubject(micro.StatsVerb, decider.DefaultServiceName, d.ID())
		if err := json.Unmarshal(ask(t, c.client, statsSubject, nil).Data, &stats); err != nil {
			t.Fatal(err)
		}
		if len(stats.Endpoints) != 1 {
			t.Fatalf("stats = %+v", stats)
		}
		requests += stats.Endpoints[0].NumRequests
		errs += stats.Endpoints[0].NumErrors
	}
	if errs != len(tests) || requests != len(tests)+1 {
		t.Errorf("deciders counted %d requests, %d errors; want %d, %d", requests, errs, len(tests)+1, len(tests))
	}
}

// gather sends a request on subject and collects every reply that arrives
// until want replies came or the wait ended.
func gather(t *testing.T, nc *nats.Conn, subject string, want int, wait time.Duration) [][]byte {
	t.Helper()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	deadline := time.Now().Add(wait)
	for len(out) < want {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		m, err := sub.NextMsg(left)
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("Status") == "503" { // no responders
			break
		}
		out = append(out, m.Data)
	}
	return out
}

func TestServiceDiscovery(t *testing.T) {
	c := startCluster(t, 2, decider.Config{Version: "1.2.3"})
	ids := map[string]bool{c.deciders[0].ID(): true, c.deciders[1].ID(): true}
	if len(ids) != 2 {
		t.Fatalf("instances share an id: %v", ids)
	}

	pingAll, _ := micro.ControlSubject(micro.PingVerb, "", "")
	pingName, _ := micro.ControlSubject(micro.PingVerb, decider.DefaultServiceName, "")
	infoName, _ := micro.ControlSubject(micro.InfoVerb, decider.DefaultServiceName, "")
	if pingName != "$SRV.PING.callflow-decider" {
		t.Errorf("ping subject %q", pingName)
	}
	for _, subject := range []string{pingAll, pingName} {
		t.Run(subject, func(t *testing.T) {
			seen := map[string]bool{}
			for _, data := range gather(t, c.client, subject, 2, 3*time.Second) {
				var p micro.Ping
				if err := json.Unmarshal(data, &p); err != nil {
					t.Fatal(err)
				}
				if p.Name != decider.DefaultServiceName || p.Version != "1.2.3" || p.Type != micro.PingResponseType {
					t.Errorf("ping = %+v", p)
				}
				seen[p.ID] = true
			}
			if len(seen) != 2 || !seen[c.deciders[0].ID()] || !seen[c.deciders[1].ID()] {
				t.Errorf("ping answered by %v, want both %v", seen, ids)
			}
		})
	}

	t.Run("info", func(t *testing.T) {
		replies := gather(t, c.client, infoName, 2, 3*time.Second)
		if len(replies) != 2 {
			t.Fatalf("%d info replies, want 2", len(replies))
		}
		for _, data := range replies {
			var info micro.Info
			if err := json.Unmarshal(data, &info); err != nil {
				t.Fatal(err)
			}
			if !ids[info.ID] || info.Name != decider.DefaultServiceName || info.Description == "" {
				t.Errorf("info = %+v", info)
			}
			if len(info.Endpoints) != 1 {
				t.Fatalf("endpoints = %+v", info.Endpoints)
			}
			ep := info.Endpoints[0]
			if ep.Subject != decider.DefaultSubject || ep.QueueGroup != "callflow-deciders" {
				t.Errorf("endpoint = %+v, want subject %s in queue group %s", ep, decider.DefaultSubject, decider.DefaultQueueGroup)
			}
		}
	})

	t.Run("ping one instance", func(t *testing.T) {
		for _, d := range c.deciders {
			subject, _ := micro.ControlSubject(micro.PingVerb, decider.DefaultServiceName, d.ID())
			var p micro.Ping
			if err := json.Unmarshal(ask(t, c.client, subject, nil).Data, &p); err != nil {
				t.Fatal(err)
			}
			if p.ID != d.ID() {
				t.Errorf("ping %s answered by %s", d.ID(), p.ID)
			}
		}
	})

	t.Run("queue group shares the work", func(t *testing.T) {
		const n = 60
		for i := 0; i < n; i++ {
			ask(t, c.client, decider.DefaultSubject, decideBody(pA, vn1))
		}
		// micro counts a request after its handler returned, so just
		// after the reply: the counts are read until they settle.
		natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			total := 0
			for _, d := range c.deciders {
				subject, _ := micro.ControlSubject(micro.StatsVerb, decider.DefaultServiceName, d.ID())
				var st micro.Stats
				if err := json.Unmarshal(ask(t, c.client, subject, nil).Data, &st); err != nil {
					return err
				}
				if len(st.Endpoints) != 1 || st.Endpoints[0].QueueGroup != decider.DefaultQueueGroup {
					return fmt.Errorf("stats = %+v", st)
				}
				got := st.Endpoints[0].NumRequests
				if got == 0 {
					return fmt.Errorf("decider %s answered none of %d requests", d.ID(), n)
				}
				total += got
			}
			if total != n {
				return fmt.Errorf("deciders counted %d requests, want %d (each request answered once)", total, n)
			}
			return nil
		})
	})
}

func TestServiceStop(t *testing.T) {
	c := startCluster(t, 2, decider.Config{})
	first, second := c.deciders[0], c.deciders[1]
	if first.Stopped() || second.Stopped() {
		t.Fatal("stopped right after Start")
	}
	if err := first.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !first.Stopped() {
		t.Error("Stopped() = false after Stop")
	}
	if err := first.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	// Once the first has unsubscribed, everything goes to the second.
	pingName, _ := micro.ControlSubject(micro.PingVerb, decider.DefaultServiceName, "")
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if got := gather(t, c.client, pingName, 2, 300*time.Millisecond); len(got) != 1 {
			return fmt.Errorf("%d instances answer ping, want 1", len(got))
		}
		return nil
	})
	for i := 0; i < 20; i++ {
		msg := ask(t, c.client, decider.DefaultSubject, decideBody(pA, vn1))
		if outcomeOf(msg) == "" {
			t.Fatalf("request %d: no outcome: %v", i, msg.Header)
		}
	}

	// With every decider stopped, nobody answers: the ingestor's breaker
	// sees "no responders" at once rather than a timeout.
	if err := second.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	natstest.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		_, err := c.client.Request(decider.DefaultSubject, decideBody(pA, vn1), time.Second)
		if !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("request after Stop: %v, want ErrNoResponders", err)
		}
		return nil
	})
	if got := gather(t, c.client, pingName, 1, 300*time.Millisecond); len(got) != 0 {
		t.Errorf("%d instances answer ping after Stop", len(got))
	}
}

func TestServiceStoppedWhenConnectionCloses(t *testing.T) {
	srv := natstest.RunServer(t)
	client, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	nc, _ := natstest.Connect(t, srv)
	svc, err := decider.Start(nc, st, decider.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ask(t, client, decider.DefaultSubject, decideBody(pA, vn1))
	nc.Close()
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !svc.Stopped() {
			return errors.New("service not stopped after its connection closed")
		}
		return nil
	})
	if err := svc.Stop(); err != nil {
		t.Errorf("Stop after close: %v", err)
	}
}

func TestServiceConfig(t *testing.T) {
	custom := wire.Say{Text: "Wrong number.", VoiceProfile: "en-AU-HayleyRUS", Repetition: 2}
	tests := []struct {
		name         string
		cfg          decider.Config
		subject      string
		queueGroup   string
		serviceName  string
		outOfSession wire.Say
	}{
		{"defaults", decider.Config{}, decider.DefaultSubject, decider.DefaultQueueGroup, decider.DefaultServiceName, decider.DefaultOutOfSession},
		{"custom", decider.Config{ServiceName: "masking", Version: "2.0.0", Subject: "calls.decide.v2", QueueGroup: "qg2", OutOfSession: custom},
			"calls.decide.v2", "qg2", "masking", custom},
		{"voice without text takes the default say", decider.Config{OutOfSession: wire.Say{VoiceProfile: "x"}},
			decider.DefaultSubject, decider.DefaultQueueGroup, decider.DefaultServiceName, decider.DefaultOutOfSession},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startCluster(t, 1, tt.cfg)
			msg := ask(t, c.client, tt.subject, decideBody(pC, vn1))
			if outcomeOf(msg) != wire.OutcomeOutOfSession {
				t.Fatalf("outcome %q", outcomeOf(msg))
			}
			checkAnswer(t, msg.Data, wire.ClientActionOutOfSession, outOfSessionFlow(tt.outOfSession))

			infoSubject, _ := micro.ControlSubject(micro.InfoVerb, tt.serviceName, c.deciders[0].ID())
			var info micro.Info
			if err := json.Unmarshal(ask(t, c.client, infoSubject, nil).Data, &info); err != nil {
				t.Fatal(err)
			}
			if len(info.Endpoints) != 1 || info.Endpoints[0].Subject != tt.subject || info.Endpoints[0].QueueGroup != tt.queueGroup {
				t.Errorf("info = %+v", info)
			}
		})
	}
}

func TestServiceInvalidConfig(t *testing.T) {
	srv := natstest.RunServer(t)
	nc, _ := natstest.Connect(t, srv)
	tests := []struct {
		name    string
		cfg     decider.Config
		wantCfg bool // error wraps ErrInvalidConfig
	}{
		{"negative repetition", decider.Config{OutOfSession: wire.Say{Text: "x", Repetition: -1}}, true},
		{"negative speed", decider.Config{OutOfSession: wire.Say{Text: "x", Speed: -1}}, true},
		{"version not semver", decider.Config{Version: "latest"}, false},
		{"service name with a space", decider.Config{ServiceName: "call flow"}, false},
		{"queue group with a space", decider.Config{QueueGroup: "a b"}, false},
		{"negative call queue", decider.Config{CallQueue: -1}, true},
		{"negative call writers", decider.Config{CallWriters: -1}, true},
		{"too many call writers", decider.Config{CallWriters: 65}, true},
		{"negative call write timeout", decider.Config{CallWriteTimeout: -time.Second}, true},
		{"negative stop timeout", decider.Config{StopTimeout: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := decider.Start(nc, fakeSessions{}, tt.cfg)
			if err == nil {
				_ = svc.Stop()
				t.Fatal("Start succeeded")
			}
			if got := errors.Is(err, decider.ErrInvalidConfig); got != tt.wantCfg {
				t.Errorf("errors.Is(%v, ErrInvalidConfig) = %v, want %v", err, got, tt.wantCfg)
			}
		})
	}
	// Nothing was registered by the refused configurations.
	if _, err := nc.Request(decider.DefaultSubject, decideBody(pA, vn1), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("request: %v, want ErrNoResponders", err)
	}
}

func TestServiceFollowsSessions(t *testing.T) {
	// Sessions made and ended through another store (the admin API of
	// another process) reach the deciders through their watcher.
	c := startCluster(t, 2, decider.Config{})
	_, js := natstest.Connect(t, c.srv)
	admin := openStore(t, js)

	s := createSession(t, admin, session.Request{VirtualNumber: vn2, Participants: []string{pA, pD}, CallRecording: true})
	outcomeOf := func(source, destination string) (string, []byte) {
		msg := ask(t, c.client, decider.DefaultSubject, decideBody(source, destination))
		return outcomeOf(msg), msg.Data
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		// Both deciders share one store here; ask a few times anyway.
		for i := 0; i < 4; i++ {
			if o, body := outcomeOf(pD, vn2); o != wire.OutcomeConnect {
				return fmt.Errorf("outcome %q: %s", o, body)
			}
		}
		return nil
	})
	_, body := outcomeOf(pD, vn2)
	checkAnswer(t, body, s.ID, []wire.Action{wire.MakeCall(vn2, pA, true)})

	ctx := testContext(t)
	if _, err := admin.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if o, body := outcomeOf(pD, vn2); o != wire.OutcomeOutOfSession {
			return fmt.Errorf("after delete: outcome %q: %s", o, body)
		}
		return nil
	})
}

func TestServiceConcurrentRequests(t *testing.T) {
	// Requests in parallel from many callers while sessions come and go:
	// every answer is a valid callflow with an outcome (and -race watches
	// the index and the buffer pool).
	c := startCluster(t, 2, decider.Config{})
	stable := createSession(t, c.store, session.Request{VirtualNumber: vn1, Participants: []string{pA, pB}})

	stop := make(chan struct{})
	churnDone := make(chan struct{})
	go func() {
		defer close(churnDone)
		ctx := testContext(t)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s, err := c.store.Create(ctx, session.Request{VirtualNumber: vn2, Participants: []string{pC, pD}})
			if err != nil {
				t.Errorf("churn create %d: %v", i, err)
				return
			}
			if _, err := c.store.Delete(ctx, s.ID); err != nil {
				t.Errorf("churn delete %d: %v", i, err)
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				src, dst, wantStable := pC, vn2, false
				if i%2 == 0 {
					src, dst, wantStable = pB, vn1, true
				}
				msg, err := c.client.Request(decider.DefaultSubject, decideBody(src, dst), 5*time.Second)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				outcome := outcomeOf(msg)
				r, err := wire.ParseResponse(msg.Data)
				if err != nil || !json.Valid(msg.Data) {
					t.Errorf("answer %s: %v", msg.Data, err)
					return
				}
				switch {
				case wantStable && (outcome != wire.OutcomeConnect || r.ClientActionID != stable.ID):
					t.Errorf("stable session: outcome %q, id %q", outcome, r.ClientActionID)
				case !wantStable && outcome != wire.OutcomeConnect && outcome != wire.OutcomeOutOfSession:
					t.Errorf("churned session: outcome %q", outcome)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-churnDone
}

// outcomeOf is the outcome of a decider's reply, as the ingestor derives it.
func outcomeOf(msg *nats.Msg) string {
	o, err := wire.Outcome(msg.Data)
	if err != nil {
		return ""
	}
	return o
}
