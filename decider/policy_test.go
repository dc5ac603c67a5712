package decider_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats.go/jetstream"
)

// Pool numbers and lines of the policy tests.
const (
	vnForward   = "+6568330001" // acme's, forwards (the number's policy)
	vnAcme      = "+6568330002" // acme's, no policy: acme's hangup policy
	vnHangup    = "+6568330003" // beta's, hangs up without a say (the number's)
	vnBeta      = "+6568330004" // beta's, no policy anywhere: the default
	vnOutside   = "+6598760001" // not in the pool
	vnOutside2  = "+6598760002" // not in the pool
	callCentre  = "+6560000000" // acme's forward destination
	gammaCentre = "+6560000009" // gamma's forward destination
)

var (
	forwardSay  = wire.Say{Text: "Connecting you to our team.", VoiceProfile: "en-GB-HazelRUS", Language: "en-GB"}
	acmeGoodbye = wire.Say{Text: "This conversation has ended.", VoiceProfile: session.DefaultVoiceProfile}
)

// policyStore is a real store with a pool, sub-account policies and
// sessions, as the policy tests use it.
type policyStore struct {
	st                         *session.Store
	js                         jetstream.JetStream
	tenant, anyTenant, closing session.Session
}

func newPolicyStore(t *testing.T) policyStore {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	ctx := testContext(t)
	acme, beta := "acme", "beta"
	numbers := []struct {
		number, sub string
		policy      *session.Policy
	}{
		{vnForward, acme, &session.Policy{Action: session.PolicyForward, Destination: "+65 6000 0000", Say: &forwardSay}},
		{vnAcme, acme, nil},
		{vnHangup, beta, &session.Policy{Action: session.PolicyHangup}},
		{vnBeta, beta, nil},
	}
	for _, n := range numbers {
		if _, _, err := st.PutNumber(ctx, n.number, session.NumberRequest{SubAccountID: &n.sub, OutOfSession: n.policy}, nil); err != nil {
			t.Fatalf("PutNumber %s: %v", n.number, err)
		}
	}
	accounts := map[string]*session.Policy{
		"acme":  {Action: session.PolicyHangup, Say: &wire.Say{Text: acmeGoodbye.Text}},
		"gamma": {Action: session.PolicyForward, Destination: gammaCentre},
	}
	for id, p := range accounts {
		if _, _, err := st.PutSubAccount(ctx, id, p, nil); err != nil {
			t.Fatalf("PutSubAccount %s: %v", id, err)
		}
	}
	ps := policyStore{st: st, js: js}
	// A session on a pool number belongs to the number's sub-account.
	ps.tenant = createSession(t, st, session.Request{VirtualNumber: vnForward, Participants: []string{pA, pB}})
	if ps.tenant.SubAccountID != acme {
		t.Fatalf("session on an acme number has sub-account %q", ps.tenant.SubAccountID)
	}
	ps.anyTenant = createSession(t, st, session.Request{VirtualNumber: vnOutside, Participants: []string{pA, pC}})
	ps.closing = createSession(t, st, session.Request{VirtualNumber: vnForward, Participants: []string{pC, pD}})
	if _, err := st.Update(ctx, ps.closing.ID, session.Patch{Close: true}); err != nil {
		t.Fatalf("close: %v", err)
	}
	return ps
}

// checkVerdict checks that the verdict Decide returned is what the ingest
// reads back from the callflow (wire.CheckCallflow), so that local and
// remote deciders are recorded alike.
func checkVerdict(t testing.TB, body []byte, v wire.Verdict) {
	t.Helper()
	back, err := wire.CheckCallflow(body)
	if err != nil {
		t.Fatalf("CheckCallflow(%s): %v", body, err)
	}
	if back != v {
		t.Errorf("Decide's verdict %+v, the ingest reads %+v from %s", v, back, body)
	}
}

func TestPolicyOutOfSessionPolicies(t *testing.T) {
	ps := newPolicyStore(t)
	p := decider.NewPolicy(ps.st, outOfSession)

	forward := func(virtual, dest string, say ...wire.Say) []wire.Action {
		var out []wire.Action
		for _, s := range say {
			out = append(out, wire.SayAction(s))
		}
		return append(out, wire.MakeCall(virtual, dest, false))
	}
	hangup := func(say ...wire.Say) []wire.Action {
		var out []wire.Action
		for _, s := range say {
			out = append(out, wire.SayAction(s))
		}
		return append(out, wire.Hangup())
	}
	connect := func(s session.Session, flow ...wire.Action) want {
		return want{wire.Verdict{Outcome: wire.OutcomeConnect, MaskingSessionID: s.ID}, s.ID, flow}
	}
	numberForward := want{wire.Verdict{Outcome: wire.OutcomeForward, Policy: wire.PolicyNumber}, "forward:number",
		forward(vnForward, callCentre, forwardSay)}
	acmePolicy := want{wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: wire.PolicySubAccount}, "out-of-session:subaccount",
		hangup(acmeGoodbye)}
	dflt := want{wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: wire.PolicyDefault}, wire.ClientActionOutOfSession,
		outOfSessionFlow(outOfSession)}
	followUp := want{wire.Verdict{Outcome: wire.OutcomeFollowUp}, wire.ClientActionFollowUp, []wire.Action{wire.Hangup()}}

	tests := []struct {
		name                     string
		source, destination, sub string
		callStatus               string
		want                     want
	}{
		// Tenancy: a session with a sub-account connects only its calls.
		{"in session, its sub-account", pA, vnForward, "acme", "", connect(ps.tenant, wire.MakeCall(vnForward, pB, false))},
		{"in session, as 8x8 sends numbers", pB[1:], vnForward[1:], "acme", "CALL_RECEIVED", connect(ps.tenant, wire.MakeCall(vnForward, pA, false))},
		{"in session, another sub-account", pA, vnForward, "beta", "", numberForward},
		{"in session, no sub-account in the webhook", pA, vnForward, "", "", numberForward},
		{"session without sub-account, any call's", pA, vnOutside, "zeta", "", connect(ps.anyTenant, wire.MakeCall(vnOutside, pC, false))},
		{"session without sub-account, none in the webhook", pC, vnOutside, "", "", connect(ps.anyTenant, wire.MakeCall(vnOutside, pA, false))},

		// Out of session: the number's policy, else the sub-account's, else the default.
		{"stranger, number forwards", pD, vnForward, "acme", "", numberForward},
		{"stranger, number forwards, as 8x8 sends numbers", pD[1:], vnForward[1:], "acme", "", numberForward},
		{"closed session, number forwards", pC, vnForward, "acme", "", numberForward},
		{"stranger, sub-account hangs up", pD, vnAcme, "acme", "", acmePolicy},
		{"the number's sub-account, not the call's", pD, vnAcme, "beta", "", acmePolicy},
		{"stranger, number hangs up without a say", pD, vnHangup, "beta", "",
			want{wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: wire.PolicyNumber}, "out-of-session:number", hangup()}},
		{"stranger, no policy: the default", pD, vnBeta, "beta", "", dflt},
		{"outside the pool, the call's sub-account", pD, vnOutside, "acme", "", acmePolicy},
		{"outside the pool, sub-account forwards", pD, vnOutside, "gamma", "",
			want{wire.Verdict{Outcome: wire.OutcomeForward, Policy: wire.PolicySubAccount}, "forward:subaccount", forward(vnOutside, gammaCentre)}},
		{"same policy, another number", pD, vnOutside2, "gamma", "",
			want{wire.Verdict{Outcome: wire.OutcomeForward, Policy: wire.PolicySubAccount}, "forward:subaccount", forward(vnOutside2, gammaCentre)}},
		{"outside the pool, no policy", pD, vnOutside2, "zeta", "", dflt},

		// Numbers that are not usable: never an error.
		{"withheld caller: the number's policy", "anonymous", vnForward, "acme", "", numberForward},
		{"empty caller: the number's policy", "", vnAcme, "acme", "", acmePolicy},
		{"withheld caller, no policy", "anonymous", vnBeta, "beta", "", dflt},
		{"unusable destination: the default", pA, "anonymous", "acme", "", dflt},
		{"short destination: the default", pA, "123", "acme", "", dflt},
		{"both unusable: the default", "unknown", "", "acme", "", dflt},

		// Follow-ups are never answered as new calls.
		{"follow-up of a participant", pA, vnForward, "acme", "ACTION_COMPLETED", followUp},
		{"follow-up of a forwarded stranger", pD, vnForward, "acme", "ACTION_COMPLETED", followUp},
		{"follow-up, unknown status", pA, vnForward, "acme", "CALL_UPDATED", followUp},
		{"follow-up, unusable numbers", "anonymous", "", "", "ACTION_COMPLETED", followUp},
		{"CALL_RECEIVED in lower case is a new call", pA, vnForward, "acme", "call_received", connect(ps.tenant, wire.MakeCall(vnForward, pB, false))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &wire.DecideRequest{EventID: "e", CallID: "c", SessionID: "s", SubAccountID: tt.sub,
				CallStatus: tt.callStatus, Source: tt.source, Destination: tt.destination}
			// Twice: encoded, then from the cache.
			var first []byte
			for i := range 2 {
				body, v := p.Decide([]byte("x"), req, time.Now())
				body = body[1:]
				if v != tt.want.verdict {
					t.Errorf("call %d: verdict %+v, want %+v", i+1, v, tt.want.verdict)
				}
				checkVerdict(t, body, v)
				checkAnswer(t, body, tt.want.id, tt.want.flow)
				if i == 1 && string(body) != string(first) {
					t.Errorf("second answer\n%s\ndiffers from the first\n%s", body, first)
				}
				first = body
			}
		})
	}
}

// want is a decision a test expects.
type want struct {
	verdict wire.Verdict
	id      string
	flow    []wire.Action
}

func TestPolicyAnswersExactJSON(t *testing.T) {
	ps := newPolicyStore(t)
	p := decider.NewPolicy(ps.st, wire.Say{Text: "Goodbye.", VoiceProfile: "en-US-ZiraRUS"})
	tests := []struct {
		name, source, destination, sub, status, want string
	}{
		{"forward with a say", pD, vnForward[1:], "acme", "CALL_RECEIVED",
			`{"clientActionId":"forward:number","callflow":[{"action":"say","params":{"text":"Connecting you to our team.","voiceProfile":"en-GB-HazelRUS","language":"en-GB"}},{"action":"makeCall","params":{"source":"+6568330001","destination":"+6560000000"}}]}`},
		{"forward without a say", pD, vnOutside, "gamma", "",
			`{"clientActionId":"forward:subaccount","callflow":[{"action":"makeCall","params":{"source":"+6598760001","destination":"+6560000009"}}]}`},
		{"hangup with a say", pD, vnAcme, "acme", "",
			`{"clientActionId":"out-of-session:subaccount","callflow":[{"action":"say","params":{"text":"This conversation has ended.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}`},
		{"hangup without a say", pD, vnHangup, "beta", "",
			`{"clientActionId":"out-of-session:number","callflow":[{"action":"hangup"}]}`},
		{"default", pD, vnBeta, "beta", "",
			`{"clientActionId":"out-of-session","callflow":[{"action":"say","params":{"text":"Goodbye.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}`},
		{"follow-up", pA, vnForward, "acme", "ACTION_COMPLETED",
			`{"clientActionId":"follow-up","callflow":[{"action":"hangup"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &wire.DecideRequest{Source: tt.source, Destination: tt.destination, SubAccountID: tt.sub, CallStatus: tt.status}
			for i := range 2 {
				if body, _ := p.Decide(nil, req, time.Now()); string(body) != tt.want {
					t.Errorf("call %d: Decide =\n%s\nwant\n%s", i+1, body, tt.want)
				}
			}
		})
	}
}

func TestPolicyFollowsPolicyChanges(t *testing.T) {
	// A policy changed through another store (another process's admin
	// API) reaches the decider's index, and the cached answer follows.
	ps := newPolicyStore(t)
	p := decider.NewPolicy(ps.st, outOfSession)
	admin := openStore(t, ps.js)
	ctx := testContext(t)
	acme := "acme"
	decide := func() ([]byte, wire.Verdict) {
		return p.Decide(nil, &wire.DecideRequest{Source: pD, Destination: vnForward, SubAccountID: "acme"}, time.Now())
	}
	if _, v := decide(); v.Outcome != wire.OutcomeForward {
		t.Fatalf("before: %+v", v)
	}
	line := "+6560000077"
	if _, _, err := admin.PutNumber(ctx, vnForward, session.NumberRequest{SubAccountID: &acme,
		OutOfSession: &session.Policy{Action: session.PolicyForward, Destination: line}}, nil); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		body, v := decide()
		r, err := wire.ParseResponse(body)
		if err != nil {
			return err
		}
		if last := r.Callflow[len(r.Callflow)-1]; v.Outcome != wire.OutcomeForward || len(r.Callflow) != 1 || last.Params.Destination != line {
			return fmt.Errorf("after the change: %+v %s", v, body)
		}
		return nil
	})
	// Removing the number's policy leaves the sub-account's.
	if _, _, err := admin.PutNumber(ctx, vnForward, session.NumberRequest{SubAccountID: &acme, ClearOutOfSession: true}, nil); err != nil {
		t.Fatal(err)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if body, v := decide(); v != (wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: wire.PolicySubAccount}) {
			return fmt.Errorf("after removing the number's policy: %+v %s", v, body)
		}
		return nil
	})
}

func TestPolicyUnusableStoredPolicy(t *testing.T) {
	// The store validates policies; a bucket edited by hand may still hold
	// one the deciders cannot carry out. Its callers get the default.
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStore(t, js)
	ctx := testContext(t)
	p := decider.NewPolicy(st, outOfSession)
	bad := map[string]*session.Policy{
		"+6568330005": {Action: "transfer", Destination: callCentre},
		"+6568330006": {Action: session.PolicyForward, Destination: "reception"},
		"+6568330007": {Action: session.PolicyForward},
	}
	for number, pol := range bad {
		data, err := json.Marshal(session.Number{Number: number, SubAccountID: "acme", Status: session.NumberActive, OutOfSession: pol})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, "$KV."+session.DefaultBucket+".n."+number[1:], data); err != nil {
			t.Fatal(err)
		}
	}
	for number := range bad {
		t.Run(number, func(t *testing.T) {
			natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if pol, _ := st.OutOfSession(number, "acme"); pol == nil {
					return fmt.Errorf("the index has no policy for %s yet", number)
				}
				return nil
			})
			body, v := p.Decide(nil, &wire.DecideRequest{Source: pD, Destination: number, SubAccountID: "acme"}, time.Now())
			if v != (wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: wire.PolicyDefault}) {
				t.Errorf("verdict %+v", v)
			}
			checkVerdict(t, body, v)
			checkAnswer(t, body, wire.ClientActionOutOfSession, outOfSessionFlow(outOfSession))
		})
	}
}
