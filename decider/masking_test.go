package decider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Numbers as +digits.
const (
	vn1 = "+6598765432"
	vn2 = "+6598765433"
	vn3 = "+6598765434"
	pA  = "+6512345678"
	pB  = "+6587654321"
	pC  = "+6511112222"
	pD  = "+6533334444"
)

// fakeSessions is an in-memory Sessions with the contract of
// session.Store.Lookup: only open sessions are found.
type fakeSessions map[[2]string]*session.Session

func (f fakeSessions) add(s *session.Session) {
	for _, p := range s.Participants {
		f[[2]string{s.VirtualNumber, p}] = s
	}
}

func (f fakeSessions) Lookup(virtual, caller, subAccount string, now time.Time) (*session.Session, bool) {
	s, ok := f[[2]string{virtual, caller}]
	if !ok || !s.Open(now) || !s.Admits(subAccount) {
		return nil, false
	}
	return s, true
}

// OutOfSession: no number or sub-account has a policy of its own.
func (f fakeSessions) OutOfSession(virtual, subAccount string) (*session.Policy, string) {
	return nil, wire.PolicyDefault
}

// RecordCalls counts nothing.
func (f fakeSessions) RecordCalls(ctx context.Context, id string, n int64, at time.Time) (session.Session, error) {
	return session.Session{}, nil
}

// CountsMatter: every call is counted at once.
func (f fakeSessions) CountsMatter(id string) bool { return true }

// FlowFor: no number has a flow.
func (f fakeSessions) FlowFor(virtual, subAccount string) (*session.Flow, bool) { return nil, false }

// FlowVersion: no flow is kept.
func (f fakeSessions) FlowVersion(id string, version uint64) (*session.Flow, bool) { return nil, false }

// LookupPIN: no session has a pin.
func (f fakeSessions) LookupPIN(virtual, pin, subAccount string, now time.Time) (*session.Session, bool) {
	return nil, false
}

var outOfSession = wire.Say{Text: "This number is not in service.", VoiceProfile: "en-GB-HazelRUS", Language: "en-GB"}

func outOfSessionFlow(s wire.Say) []wire.Action {
	return []wire.Action{wire.SayAction(s), wire.Hangup()}
}

// checkAnswer parses a decider's answer as 8x8 would and compares it.
func checkAnswer(t testing.TB, body []byte, wantID string, wantFlow []wire.Action) {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("answer is not valid JSON: %s", body)
	}
	resp, err := wire.ParseResponse(body)
	if err != nil {
		t.Fatalf("ParseResponse(%s): %v", body, err)
	}
	if resp.ClientActionID != wantID {
		t.Errorf("clientActionId = %q, want %q", resp.ClientActionID, wantID)
	}
	if !reflect.DeepEqual(resp.Callflow, wantFlow) {
		got, _ := json.Marshal(resp.Callflow)
		want, _ := json.Marshal(wantFlow)
		t.Errorf("callflow =\n%s\nwant\n%s", got, want)
	}
}

func TestPolicyDecide(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	past := now.Add(-time.Second)
	later := now.Add(time.Hour)
	greeting := wire.Say{Text: "Connecting you to your driver.", VoiceProfile: "en-US-ZiraRUS"}
	plain := &session.Session{ID: "11111111111111111111111111111111", VirtualNumber: vn1, Participants: [2]string{pA, pB}}
	greeted := &session.Session{ID: "22222222222222222222222222222222", VirtualNumber: vn2, Participants: [2]string{pA, pC},
		CallRecording: true, Greeting: &greeting, ExpiresAt: &later}
	expired := &session.Session{ID: "33333333333333333333333333333333", VirtualNumber: vn3, Participants: [2]string{pA, pD}, ExpiresAt: &past}
	sessions := fakeSessions{}
	for _, s := range []*session.Session{plain, greeted, expired} {
		sessions.add(s)
	}
	p := decider.NewPolicy(sessions, outOfSession)

	out := outOfSessionFlow(outOfSession)
	tests := []struct {
		name        string
		source      string
		destination string
		wantOutcome string
		wantID      string
		wantFlow    []wire.Action
	}{
		{"first participant", pA, vn1, wire.OutcomeConnect, plain.ID,
			[]wire.Action{wire.MakeCall(vn1, pB, false)}},
		{"second participant", pB, vn1, wire.OutcomeConnect, plain.ID,
			[]wire.Action{wire.MakeCall(vn1, pA, false)}},
		{"greeting first, with recording", pA, vn2, wire.OutcomeConnect, greeted.ID,
			[]wire.Action{wire.SayAction(greeting), wire.MakeCall(vn2, pC, true)}},
		{"greeting, other way", pC, vn2, wire.OutcomeConnect, greeted.ID,
			[]wire.Action{wire.SayAction(greeting), wire.MakeCall(vn2, pA, true)}},
		{"source without plus", "6512345678", vn1, wire.OutcomeConnect, plain.ID,
			[]wire.Action{wire.MakeCall(vn1, pB, false)}},
		{"destination without plus", pB, "6598765432", wire.OutcomeConnect, plain.ID,
			[]wire.Action{wire.MakeCall(vn1, pA, false)}},
		{"neither with plus", "6512345678", "6598765433", wire.OutcomeConnect, greeted.ID,
			[]wire.Action{wire.SayAction(greeting), wire.MakeCall(vn2, pC, true)}},

		{"stranger", pD, vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"participant of a session on another number", pC, vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"expired session", pA, vn3, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"other participant of expired session", pD, vn3, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"number without sessions", pA, "+6500000000", wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"dialled a participant, not the virtual number", pA, pB, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"the virtual number calling itself", vn1, vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"anonymous source", "anonymous", vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"short source", "123", vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"empty source", "", vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"plus only", "+", vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"leading 0 source", "+0512345678", vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"16 digit source", "+1234567890123456", vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"source with spaces (webhook numbers are not cleaned)", "+65 1234 5678", vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"source with double plus", "++6512345678", vn1, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"anonymous destination", pA, "anonymous", wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"short destination", pA, "123", wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"empty destination", pA, "", wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
		{"both unusable", "anonymous", "unknown", wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, out},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &wire.DecideRequest{EventID: "e", CallID: "c", SessionID: "s", SubAccountID: "a",
				Source: tt.source, Destination: tt.destination}
			body, v := p.Decide(nil, req, now)
			if outcome := v.Outcome; outcome != tt.wantOutcome {
				t.Errorf("outcome = %q, want %q", outcome, tt.wantOutcome)
			}
			checkAnswer(t, body, tt.wantID, tt.wantFlow)

			// Decide appends: whatever dst holds stays in front.
			prefix := []byte("prefix:")
			body2, v2 := p.Decide(append(make([]byte, 0, 4), prefix...), req, now)
			if !bytes.HasPrefix(body2, prefix) || !bytes.Equal(body2[len(prefix):], body) || v2 != v {
				t.Errorf("Decide with a dst prefix = %q, %+v", body2, v2)
			}
		})
	}
}

func TestPolicyExactJSON(t *testing.T) {
	now := time.Now()
	s := &session.Session{ID: "0123456789abcdef0123456789abcdef", VirtualNumber: vn1, Participants: [2]string{pA, pB}}
	g := &session.Session{ID: "fedcba9876543210fedcba9876543210", VirtualNumber: vn2, Participants: [2]string{pA, pB},
		CallRecording: true, Greeting: &wire.Say{Text: `Say "hi" \ bye`, VoiceProfile: "en-US-ZiraRUS"}}
	sessions := fakeSessions{}
	sessions.add(s)
	sessions.add(g)
	p := decider.NewPolicy(sessions, wire.Say{Text: "Goodbye.", VoiceProfile: "en-US-ZiraRUS"})
	tests := []struct {
		name, source, destination, want string
	}{
		{"connect", pA, vn1, `{"clientActionId":"0123456789abcdef0123456789abcdef","callflow":[{"action":"makeCall","params":{"source":"+6598765432","destination":"+6587654321"}}]}`},
		{"greeting and recording", pB, vn2, `{"clientActionId":"fedcba9876543210fedcba9876543210","callflow":[{"action":"say","params":{"text":"Say \"hi\" \\ bye","voiceProfile":"en-US-ZiraRUS"}},{"action":"makeCall","params":{"source":"+6598765433","destination":"+6512345678","callRecording":true}}]}`},
		{"out of session", pC, vn1, `{"clientActionId":"out-of-session","callflow":[{"action":"say","params":{"text":"Goodbye.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, _ := p.Decide(nil, &wire.DecideRequest{Source: tt.source, Destination: tt.destination}, now)
			if string(body) != tt.want {
				t.Errorf("Decide =\n%s\nwant\n%s", body, tt.want)
			}
		})
	}
}

func TestPolicyOutOfSessionNotAliased(t *testing.T) {
	// The out-of-session answer is pre-encoded; a caller that reuses or
	// scribbles over the returned buffer must not change later answers.
	p := decider.NewPolicy(fakeSessions{}, outOfSession)
	req := &wire.DecideRequest{Source: pA, Destination: vn1}
	first, _ := p.Decide(nil, req, time.Now())
	want := string(first)
	for i := range first {
		first[i] = 'x'
	}
	second, _ := p.Decide(first[:0], req, time.Now())
	if string(second) != want {
		t.Fatalf("second answer %q, want %q", second, want)
	}
	third, _ := p.Decide(nil, req, time.Now())
	if string(third) != want {
		t.Fatalf("third answer %q, want %q", third, want)
	}
}

// openStore opens a real session store on a real in-process server.
func openStore(t testing.TB, js jetstream.JetStream) *session.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := session.Open(ctx, js, session.Config{})
	if err != nil {
		t.Fatalf("session.Open: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

func createSession(t testing.TB, st *session.Store, req session.Request) session.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := st.Create(ctx, req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return s
}

func TestPolicyWithStore(t *testing.T) {
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	// The admin API takes typed numbers; 8x8 sends them without '+'.
	s := createSession(t, st, session.Request{
		VirtualNumber: "+65 9876 5432",
		Participants:  []string{"+65 1234-5678", "6587654321"},
		TTLSeconds:    3600,
		CallRecording: true,
		Greeting:      &wire.Say{Text: "Please hold."},
	})
	p := decider.NewPolicy(st, outOfSession)
	greet := wire.SayAction(wire.Say{Text: "Please hold.", VoiceProfile: session.DefaultVoiceProfile})
	now := time.Now()
	tests := []struct {
		name                string
		source, destination string
		at                  time.Time
		wantOutcome         string
		wantID              string
		wantFlow            []wire.Action
	}{
		{"participant A", "6512345678", "6598765432", now, wire.OutcomeConnect, s.ID, []wire.Action{greet, wire.MakeCall(vn1, pB, true)}},
		{"participant B", pB, vn1, now, wire.OutcomeConnect, s.ID, []wire.Action{greet, wire.MakeCall(vn1, pA, true)}},
		{"stranger", pC, vn1, now, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, outOfSessionFlow(outOfSession)},
		{"after the ttl", pA, vn1, s.ExpiresAt.Add(time.Millisecond), wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, outOfSessionFlow(outOfSession)},
		{"at expiresAt", pA, vn1, *s.ExpiresAt, wire.OutcomeOutOfSession, wire.ClientActionOutOfSession, outOfSessionFlow(outOfSession)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, v := p.Decide(nil, &wire.DecideRequest{Source: tt.source, Destination: tt.destination}, tt.at)
			if outcome := v.Outcome; outcome != tt.wantOutcome {
				t.Errorf("outcome = %q, want %q", outcome, tt.wantOutcome)
			}
			checkAnswer(t, body, tt.wantID, tt.wantFlow)
		})
	}

	// After Delete the participants are out of session.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := st.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	body, v := p.Decide(nil, &wire.DecideRequest{Source: pA, Destination: vn1}, time.Now())
	if outcome := v.Outcome; outcome != wire.OutcomeOutOfSession {
		t.Errorf("after Delete: outcome %q, body %s", outcome, body)
	}
}

// benchSessions loads n sessions into a real session.Store's index: the
// session keys are published straight into the bucket (as Create writes
// them), and a second Store loads them as its initial snapshot.
func benchSessions(b *testing.B, n int) (*session.Store, []session.Session) {
	b.Helper()
	srv := natstest.RunServer(b)
	_, js := natstest.Connect(b, srv)
	openStore(b, js) // creates the bucket
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now().UTC()
	exp := now.Add(time.Hour)
	all := make([]session.Session, n)
	for i := range all {
		s := session.Session{
			ID:            fmt.Sprintf("%032x", i+1),
			VirtualNumber: fmt.Sprintf("+659%07d", i%1000),
			Participants:  [2]string{fmt.Sprintf("+651%07d", i), fmt.Sprintf("+652%07d", i)},
			CallRecording: i%3 == 0,
			CreatedAt:     now,
		}
		if i%2 == 0 {
			s.Greeting = &wire.Say{Text: "Connecting you now.", VoiceProfile: session.DefaultVoiceProfile}
			s.TTLSeconds = 3600
			s.ExpiresAt = &exp
		}
		data, err := json.Marshal(&s)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync("$KV."+session.DefaultBucket+".s."+s.ID, data); err != nil {
			b.Fatal(err)
		}
		all[i] = s
		// In batches, so that the publisher never stalls on its limit of
		// outstanding acknowledgements.
		if i%1000 == 999 || i == n-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				b.Fatal("publishing sessions timed out")
			}
		}
	}
	st := openStore(b, js)
	if st.Len() != n {
		b.Fatalf("index holds %d sessions, want %d", st.Len(), n)
	}
	return st, all
}

// benchCase is a case of BenchmarkDecide: requests and the outcome they
// all get.
type benchCase struct {
	name    string
	reqs    []wire.DecideRequest
	outcome string
}

// policyBenchCases gives numbers outside the sessions of benchSessions
// out-of-session policies of their own (forward, with a say) and a
// sub-account one (hangup, with a say), and returns the cases answered
// by them, and follow-ups.
func policyBenchCases(b *testing.B, st *session.Store) []benchCase {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const numbers = 100
	sub := "b"
	forward := &session.Policy{Action: session.PolicyForward, Destination: "+6560000000",
		Say: &wire.Say{Text: "Connecting you to our team.", VoiceProfile: session.DefaultVoiceProfile}}
	for i := range numbers {
		if _, _, err := st.PutNumber(ctx, fmt.Sprintf("+658%07d", i), session.NumberRequest{SubAccountID: &sub, OutOfSession: forward}, nil); err != nil {
			b.Fatal(err)
		}
	}
	hangup := &session.Policy{Action: session.PolicyHangup, Say: &wire.Say{Text: "This conversation has ended."}}
	if _, _, err := st.PutSubAccount(ctx, sub, hangup, nil); err != nil {
		b.Fatal(err)
	}
	reqs := func(f func(i int) wire.DecideRequest) []wire.DecideRequest {
		out := make([]wire.DecideRequest, 1024)
		for i := range out {
			out[i] = f(i)
			out[i].EventID, out[i].CallID, out[i].SessionID = "e", "c", "s"
		}
		return out
	}
	return []benchCase{
		{"number_policy_forward", reqs(func(i int) wire.DecideRequest {
			return wire.DecideRequest{SubAccountID: sub, Source: fmt.Sprintf("653%07d", i), Destination: fmt.Sprintf("658%07d", i%numbers)}
		}), wire.OutcomeForward},
		{"subaccount_policy_hangup", reqs(func(i int) wire.DecideRequest {
			return wire.DecideRequest{SubAccountID: sub, Source: fmt.Sprintf("+653%07d", i), Destination: fmt.Sprintf("+657%07d", i)}
		}), wire.OutcomeOutOfSession},
		{"follow_up", reqs(func(i int) wire.DecideRequest {
			return wire.DecideRequest{SubAccountID: sub, CallStatus: "ACTION_COMPLETED", Source: fmt.Sprintf("653%07d", i), Destination: "6580000000"}
		}), wire.OutcomeFollowUp},
	}
}

func BenchmarkDecide(b *testing.B) {
	const n = 10000
	st, all := benchSessions(b, n)
	p := decider.NewPolicy(st, decider.DefaultOutOfSession)
	reqs := func(f func(i int) (string, string)) []wire.DecideRequest {
		out := make([]wire.DecideRequest, 1024)
		for i := range out {
			src, dst := f(i)
			out[i] = wire.DecideRequest{EventID: "e", CallID: "c", SessionID: "s", SubAccountID: "a", Source: src, Destination: dst}
		}
		return out
	}
	cases := []benchCase{
		{"connect", reqs(func(i int) (string, string) {
			s := all[(i*7919)%n]
			return s.Participants[i%2][1:], s.VirtualNumber[1:] // as 8x8 may send them
		}), wire.OutcomeConnect},
		{"connect_e164", reqs(func(i int) (string, string) {
			s := all[(i*7919)%n]
			return s.Participants[i%2], s.VirtualNumber
		}), wire.OutcomeConnect},
		{"out_of_session", reqs(func(i int) (string, string) {
			return fmt.Sprintf("+653%07d", i), all[i%n].VirtualNumber
		}), wire.OutcomeOutOfSession},
		{"unusable_number", reqs(func(i int) (string, string) {
			return "anonymous", all[i%n].VirtualNumber
		}), wire.OutcomeOutOfSession},
	}
	cases = append(cases, policyBenchCases(b, st)...)
	cases = append(cases, flowBenchCases(b, st)...)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			now := time.Now()
			buf := make([]byte, 0, 512)
			// Check once, outside the timing, that the case is what it says.
			for i := range c.reqs {
				if _, v := p.Decide(buf[:0], &c.reqs[i], now); v.Outcome != c.outcome {
					b.Fatalf("request %d: outcome %q, want %q", i, v.Outcome, c.outcome)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf, _ = p.Decide(buf[:0], &c.reqs[i%len(c.reqs)], now)
			}
		})
	}
	b.Run("connect_parallel", func(b *testing.B) {
		rs := cases[0].reqs
		now := time.Now()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 0, 512)
			i := 0
			for pb.Next() {
				buf, _ = p.Decide(buf[:0], &rs[i%len(rs)], now)
				i++
			}
		})
	})
}

// testContext bounds storage calls made by a test.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// uncounted is a store whose call counts go nowhere: what the call path
// pays for counting (the queue), without the writes' own work.
type uncounted struct{ *session.Store }

func (uncounted) RecordCalls(context.Context, string, int64, time.Time) (session.Session, error) {
	return session.Session{}, nil
}

func BenchmarkServiceDecide(b *testing.B) {
	// The in-process path (serve's ingest): the decision, its counter and,
	// for a connect, queueing the call's count.
	const n = 10000
	st, all := benchSessions(b, n)
	srv := natstest.RunServer(b)
	nc, _ := natstest.Connect(b, srv)
	d, err := decider.Start(nc, uncounted{st}, decider.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Stop() })
	reqs := make([]wire.DecideRequest, 1024)
	for i := range reqs {
		s := all[(i*7919)%n]
		reqs[i] = wire.DecideRequest{EventID: "e", CallID: "c", SessionID: "s", SubAccountID: "a", CallStatus: "CALL_RECEIVED",
			Source: s.Participants[i%2], Destination: s.VirtualNumber}
	}
	b.Run("connect_e164", func(b *testing.B) {
		now := time.Now()
		buf := make([]byte, 0, 512)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			buf, _ = d.Decide(buf[:0], &reqs[i%len(reqs)], now)
		}
	})
}
