package decider_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callflow/callflow/decider"
	"github.com/callflow/callflow/internal/natstest"
	"github.com/callflow/callflow/internal/session"
	"github.com/callflow/callflow/wire"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Numbers of the flow tests, as +digits.
const (
	vnMenu      = "+6568340001" // acme's: the main menu
	vnTour      = "+6568340002" // acme's: the tour flow (every step kind); forwards out of session
	vnBetaFlow  = "+6568340003" // beta's, no flow of its own: beta's default flow
	vnNoFlow    = "+6568340004" // acme's, no flow: number masking
	vnOdd       = "+6568340005" // acme's: a flow whose start 8x8 could not play (not in the store)
	pE          = "+6555556666" // in no session
	salesLine   = "+6560000001"
	supportLine = "+6560000002"
	tourForward = "+6560000003"
)

// mainMenuJSON is the example flow, as the admin API takes it.
const mainMenuJSON = `{
  "id": "main-menu",
  "subAccountId": "acme",
  "start": "welcome",
  "steps": {
    "welcome": {"menu": {"say": {"text": "For sales press 1. For your driver press 2."},
                         "maxDigits": 1, "timeoutSeconds": 5, "tries": 3,
                         "options": {"1": "sales", "2": "driver"}, "onFailure": "bye"}},
    "sales":   {"transfer": {"destination": "+6560000001", "say": {"text": "Connecting you to sales."}}},
    "driver":  {"pin": {"say": {"text": "Enter your order PIN, then hash."},
                        "minDigits": 4, "maxDigits": 8, "tries": 2, "onFailure": "bye"}},
    "bye":     {"hangup": {"say": {"text": "Goodbye."}}}
  }
}`

// tourJSON has every step kind: a play chained into a menu prompted by a
// file and a say, with a retry and no onFailure; a masking step falling through to
// a pin step; a play into a masking step without onFailure (the number's
// out-of-session policy); a transfer without an announcement; a hangup
// without a message.
const tourJSON = `{
  "id": "tour",
  "subAccountId": "acme",
  "start": "hello",
  "steps": {
    "hello":   {"play": {"say": {"text": "Welcome to Acme."}, "next": "choose"}},
    "choose":  {"menu": {"playFile": {"fileUrl": "https://media.example.com/menu.mp3"},
                         "say": {"text": "Press 1 to talk, 2 for news, 3 for support, 9 to leave."},
                         "retry": {"text": "Sorry, that is not an option."},
                         "tries": 2, "timeoutSeconds": 8,
                         "options": {"1": "mask", "2": "notice", "3": "support", "9": "bye", "*0": "bye"}}},
    "mask":    {"masking": {"onFailure": "pin"}},
    "pin":     {"pin": {"say": {"text": "Enter your PIN."}, "minDigits": 4, "maxDigits": 6, "tries": 1}},
    "notice":  {"play": {"playFile": {"fileUrl": "https://media.example.com/notice.wav", "repetition": 2}, "next": "mask2"}},
    "mask2":   {"masking": {}},
    "support": {"transfer": {"destination": "+65 6000 0002", "callRecording": true}},
    "bye":     {"hangup": {}}
  }
}`

// betaJSON, without a sub-account, is beta's default flow: masking first,
// a message for everyone else.
const betaJSON = `{
  "id": "beta-flow",
  "start": "route",
  "steps": {
    "route":  {"masking": {"onFailure": "closed"}},
    "closed": {"hangup": {"say": {"text": "We are closed."}}}
  }
}`

// flowFixture is a real session store on a real server with the flows
// above attached, and sessions (some with pins) on their numbers.
type flowFixture struct {
	srv *server.Server
	js  jetstream.JetStream
	st  *session.Store
	// Sessions: driver and shared share vnMenu by pins; tourPlain
	// (without a pin) and tourPinned share vnTour; betaSession is on
	// vnBetaFlow, plain on vnNoFlow.
	driver, shared, tourPlain, tourPinned, betaSession, plain session.Session
}

var (
	driverGreeting = wire.Say{Text: "Connecting you to your driver."}
	tourForwardSay = wire.Say{Text: "Connecting you to reception.", VoiceProfile: "en-GB-HazelRUS"}
)

func openStoreWith(t testing.TB, js jetstream.JetStream, cfg session.Config) *session.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := session.Open(ctx, js, cfg)
	if err != nil {
		t.Fatalf("session.Open: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

func putFlowJSON(t testing.TB, st *session.Store, doc string) session.Flow {
	t.Helper()
	f, err := session.ParseFlow([]byte(doc))
	if err != nil {
		t.Fatalf("ParseFlow: %v", err)
	}
	got, _, err := st.PutFlow(testContext(t), f, nil)
	if err != nil {
		t.Fatalf("PutFlow(%s): %v", f.ID, err)
	}
	return got
}

func newFlowFixture(t *testing.T, cfg session.Config) *flowFixture {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	st := openStoreWith(t, js, cfg)
	ctx := testContext(t)
	for _, doc := range []string{mainMenuJSON, tourJSON, betaJSON} {
		putFlowJSON(t, st, doc)
	}
	acme, beta := "acme", "beta"
	flow := func(id string) *string { return &id }
	numbers := []struct {
		number string
		req    session.NumberRequest
	}{
		{vnMenu, session.NumberRequest{SubAccountID: &acme, Flow: flow("main-menu")}},
		{vnTour, session.NumberRequest{SubAccountID: &acme, Flow: flow("tour"),
			OutOfSession: &session.Policy{Action: session.PolicyForward, Destination: tourForward, Say: &tourForwardSay}}},
		{vnBetaFlow, session.NumberRequest{SubAccountID: &beta}},
		{vnNoFlow, session.NumberRequest{SubAccountID: &acme}},
	}
	for _, n := range numbers {
		if _, _, err := st.PutNumber(ctx, n.number, n.req, nil); err != nil {
			t.Fatalf("PutNumber %s: %v", n.number, err)
		}
	}
	if _, err := st.UpdateSubAccount(ctx, beta, session.SubAccountRequest{DefaultFlow: flow("beta-flow")}, nil); err != nil {
		t.Fatalf("UpdateSubAccount: %v", err)
	}
	fx := &flowFixture{srv: srv, js: js, st: st}
	fx.driver = createSession(t, st, session.Request{VirtualNumber: vnMenu, Participants: []string{pA, pB}, PIN: "1234",
		Greeting: &driverGreeting, CallRecording: true})
	fx.shared = createSession(t, st, session.Request{VirtualNumber: vnMenu, Participants: []string{pC, pD}, PIN: "5678"})
	fx.tourPlain = createSession(t, st, session.Request{VirtualNumber: vnTour, Participants: []string{pA, pB}})
	fx.tourPinned = createSession(t, st, session.Request{VirtualNumber: vnTour, Participants: []string{pC, pD}, PIN: "4321"})
	fx.betaSession = createSession(t, st, session.Request{VirtualNumber: vnBetaFlow, Participants: []string{pA, pB}})
	fx.plain = createSession(t, st, session.Request{VirtualNumber: vnNoFlow, Participants: []string{pA, pB}})
	return fx
}

// flowDecider is a decider under test: the service, a client connection to
// ask it over NATS on its subject, and its metrics.
type flowDecider struct {
	svc     *decider.Service
	client  *nats.Conn
	subject string
	reg     *prometheus.Registry
}

// startDecider starts a decider over st on subject ("": the default).
func (fx *flowFixture) startDecider(t *testing.T, st *session.Store, subject string) *flowDecider {
	t.Helper()
	reg := prometheus.NewRegistry()
	svc := startDecider(t, fx.srv, st, decider.Config{Subject: subject, CountDelay: -1, Metrics: decider.NewMetrics(reg)})
	client, _ := natstest.Connect(t, fx.srv)
	if subject == "" {
		subject = decider.DefaultSubject
	}
	return &flowDecider{svc: svc, client: client, subject: subject, reg: reg}
}

// decide asks d in process (Service.Decide, as serve's ingest does) and
// over NATS (as a remote ingest does), checks that both give the same
// bytes and that the verdict is what the ingest reads from them
// (wire.CheckCallflow), and returns them.
func (d *flowDecider) decide(t testing.TB, req *wire.DecideRequest) ([]byte, wire.Verdict) {
	t.Helper()
	local, v := d.svc.Decide(nil, req, time.Now())
	msg := ask(t, d.client, d.subject, req.AppendJSON(nil))
	if string(msg.Data) != string(local) {
		t.Fatalf("over NATS:\n%s\nin process:\n%s", msg.Data, local)
	}
	checkVerdict(t, msg.Data, v)
	return local, v
}

// checkFlowAnswer checks an answer against w: its verdict, clientActionId
// and callflow, and that it is exactly what wire's encoder writes for the
// callflow it decodes to.
func checkFlowAnswer(t testing.TB, body []byte, v wire.Verdict, w want) {
	t.Helper()
	if v != w.verdict {
		t.Errorf("verdict %+v, want %+v", v, w.verdict)
	}
	checkVerdict(t, body, v)
	checkAnswer(t, body, w.id, w.flow)
	if r, err := wire.ParseResponse(body); err == nil {
		if again := r.JSON(); string(again) != string(body) {
			t.Errorf("answer\n%s\nis not wire's encoding\n%s", body, again)
		}
		if err := r.Validate(); err != nil {
			t.Errorf("answer %s: %v", body, err)
		}
	}
}

// Expected answers.

func inFlow(flow string, version uint64, step string) wire.Verdict {
	return wire.Verdict{Outcome: wire.OutcomeFlow, FlowID: flow, FlowVersion: version, FlowStep: step}
}

func connectInFlow(flow string, version uint64, step, session string) wire.Verdict {
	return wire.Verdict{Outcome: wire.OutcomeConnect, MaskingSessionID: session, FlowID: flow, FlowVersion: version, FlowStep: step}
}

// voiced is s with the voice profile the store fills in.
func voiced(s wire.Say) wire.Say {
	if s.VoiceProfile == "" {
		s.VoiceProfile = session.DefaultVoiceProfile
	}
	return s
}

func say(text string) wire.Action { return wire.SayAction(voiced(wire.Say{Text: text})) }

// capture is a flow's sayAndCapture: asked once, ended early by '#'.
func capture(text string, minDigits, maxDigits, timeoutSeconds int) wire.Action {
	return wire.SayAndCaptureAction(wire.Capture{Say: voiced(wire.Say{Text: text}), MinDigits: minDigits, MaxDigits: maxDigits,
		OverallTimeout: timeoutSeconds * 1000, CompleteOnHash: true, NoOfTries: 1})
}

func playFile(url string, repetition int) wire.Action {
	return wire.PlayFileAction(wire.PlayFile{FileURL: url, Repetition: repetition})
}

var (
	followUpWant = want{wire.Verdict{Outcome: wire.OutcomeFollowUp}, wire.ClientActionFollowUp, []wire.Action{wire.Hangup()}}
	endedWant    = want{wire.Verdict{Outcome: wire.OutcomeFollowUp}, wire.ClientActionFollowUp,
		[]wire.Action{wire.SayAction(decider.DefaultFlowEnd), wire.Hangup()}}
	goodbye = []wire.Action{wire.SayAction(decider.DefaultFlowEnd), wire.Hangup()}

	mmWelcome = capture("For sales press 1. For your driver press 2.", 1, 1, 5)
	mmDriver  = capture("Enter your order PIN, then hash.", 4, 8, session.DefaultPINTimeoutSeconds)
	mmSales   = []wire.Action{say("Connecting you to sales."), wire.MakeCall(vnMenu, salesLine, false)}
	mmBye     = []wire.Action{say("Goodbye."), wire.Hangup()}

	tourMenu   = []wire.Action{playFile("https://media.example.com/menu.mp3", 0), capture("Press 1 to talk, 2 for news, 3 for support, 9 to leave.", 1, 2, 8)}
	tourRetry  = say("Sorry, that is not an option.")
	tourPIN    = capture("Enter your PIN.", 4, 6, session.DefaultPINTimeoutSeconds)
	tourNotice = playFile("https://media.example.com/notice.wav", 2)
)

func welcomeAt(tries int) want {
	return want{inFlow("main-menu", 1, "welcome"), fmt.Sprintf("flow:main-menu:1:welcome:%d", tries), []wire.Action{mmWelcome}}
}

func driverAt(tries int) want {
	return want{inFlow("main-menu", 1, "driver"), fmt.Sprintf("flow:main-menu:1:driver:%d", tries), []wire.Action{mmDriver}}
}

var (
	mmSalesWant = want{connectInFlow("main-menu", 1, "sales", ""), "flow:main-menu:1:sales:0", mmSales}
	mmByeWant   = want{inFlow("main-menu", 1, "bye"), "flow:main-menu:1:bye:0", mmBye}
)

func tourAt(tries int, flow ...wire.Action) want {
	return want{inFlow("tour", 1, "choose"), fmt.Sprintf("flow:tour:1:choose:%d", tries), flow}
}

// flowTurn is one CALL_ACTION of a call: the keys pressed in answer to
// the previous answer ("" for none), and the answer it must get.
type flowTurn struct {
	dtmf string
	want want
}

// flowScript is a call walking a flow: the first turn is the CALL_RECEIVED
// (its dtmf unused), each next one the ACTION_COMPLETED that echoes the
// previous answer's clientActionId.
type flowScript struct {
	name                     string
	source, destination, sub string
	turns                    []flowTurn
}

// turnRequest is the CALL_ACTION of turn i of a call whose previous
// answer had clientActionId prev.
func turnRequest(s *flowScript, i int, prev string) *wire.DecideRequest {
	req := &wire.DecideRequest{EventID: fmt.Sprintf("ev-%d", i), CallID: "call-1", SessionID: "sess-1", SubAccountID: s.sub,
		CallStatus: "CALL_RECEIVED", Source: s.source, Destination: s.destination}
	if i > 0 {
		req.CallStatus, req.ClientActionID, req.DTMF = "ACTION_COMPLETED", prev, s.turns[i].dtmf
	}
	return req
}

// run walks the script, turn i answered by deciders[i%len(deciders)].
func (s *flowScript) run(t *testing.T, deciders ...*flowDecider) {
	t.Helper()
	prev := ""
	for i, turn := range s.turns {
		req := turnRequest(s, i, prev)
		body, v := deciders[i%len(deciders)].decide(t, req)
		checkFlowAnswer(t, body, v, turn.want)
		if t.Failed() {
			t.Fatalf("turn %d (dtmf %q, clientActionId %q): %s", i+1, req.DTMF, req.ClientActionID, body)
		}
		r, err := wire.ParseResponse(body)
		if err != nil {
			t.Fatal(err)
		}
		prev = r.ClientActionID
	}
}

func TestFlowCalls(t *testing.T) {
	fx := newFlowFixture(t, session.Config{})
	d := fx.startDecider(t, fx.st, "")
	driverConnect := func(tries int, to string) want {
		return want{connectInFlow("main-menu", 1, "driver", fx.driver.ID), fmt.Sprintf("flow:main-menu:1:driver:%d:%s", tries, fx.driver.ID),
			[]wire.Action{wire.SayAction(voiced(driverGreeting)), wire.MakeCall(vnMenu, to, true)}}
	}
	start := flowTurn{want: welcomeAt(0)}
	tourStart := flowTurn{want: tourAt(0, append([]wire.Action{say("Welcome to Acme.")}, tourMenu...)...)}
	scripts := []flowScript{
		// The menu.
		{"valid digit: transfer to sales", pE, vnMenu, "acme", []flowTurn{start,
			{"1", mmSalesWant},
			{"", followUpWant}, // the transfer's call completed
		}},
		{"as 8x8 sends numbers, a digit ended by hash", pE[1:], vnMenu[1:], "acme", []flowTurn{start, {"1#", mmSalesWant}}},
		{"invalid digit and no input are asked again", pE, vnMenu, "acme", []flowTurn{start,
			{"7", welcomeAt(1)},
			{"", welcomeAt(2)},
			{"2", driverAt(0)},
		}},
		{"tries used up: onFailure", pE, vnMenu, "acme", []flowTurn{start,
			{"7", welcomeAt(1)},
			{"", welcomeAt(2)},
			{"#", mmByeWant},
		}},
		{"two keys where the menu takes one", pE, vnMenu, "acme", []flowTurn{start, {"12", welcomeAt(1)}}},
		{"pin: the customer is connected to the driver", pB, vnMenu, "acme", []flowTurn{start,
			{"2", driverAt(0)},
			{"1234#", driverConnect(0, pA)},
			{"", followUpWant},
		}},
		{"pin: the driver is connected to the customer", pA, vnMenu, "acme", []flowTurn{start,
			{"2", driverAt(0)},
			{"1234", driverConnect(0, pB)},
		}},
		{"pin of another session on the number: a failed try, then its own", pC, vnMenu, "acme", []flowTurn{start,
			{"2", driverAt(0)},
			{"1234", driverAt(1)},
			{"5678", want{connectInFlow("main-menu", 1, "driver", fx.shared.ID), "flow:main-menu:1:driver:1:" + fx.shared.ID,
				[]wire.Action{wire.MakeCall(vnMenu, pD, false)}}},
		}},
		{"stranger: wrong pins until onFailure", pE, vnMenu, "acme", []flowTurn{start,
			{"2", driverAt(0)},
			{"1234", driverAt(1)},
			{"12a4", mmByeWant},
		}},
		{"no pin entered", pE, vnMenu, "acme", []flowTurn{start, {"2", driverAt(0)}, {"", driverAt(1)}, {"", mmByeWant}}},
		{"a pin of a session on another number", pC, vnMenu, "acme", []flowTurn{start, {"2", driverAt(0)}, {"4321", driverAt(1)}}},
		{"withheld caller: a pin connects no one", "anonymous", vnMenu, "acme", []flowTurn{start, {"2", driverAt(0)}, {"1234", driverAt(1)}}},

		// Every step kind.
		{"play into a file menu; fails twice without onFailure: goodbye", pE, vnTour, "acme", []flowTurn{tourStart,
			{"4", tourAt(1, append([]wire.Action{tourRetry}, tourMenu...)...)},
			{"", tourAt(2, goodbye...)},
			{"", followUpWant},
		}},
		{"masking step: a participant is connected", pA, vnTour, "acme", []flowTurn{tourStart,
			{"1", want{connectInFlow("tour", 1, "mask", fx.tourPlain.ID), "flow:tour:1:mask:0:" + fx.tourPlain.ID,
				[]wire.Action{wire.MakeCall(vnTour, pB, false)}}},
		}},
		{"masking step falls through to the pin step", pC, vnTour, "acme", []flowTurn{tourStart,
			{"1", want{inFlow("tour", 1, "pin"), "flow:tour:1:pin:0", []wire.Action{tourPIN}}},
			{"4321", want{connectInFlow("tour", 1, "pin", fx.tourPinned.ID), "flow:tour:1:pin:0:" + fx.tourPinned.ID,
				[]wire.Action{wire.MakeCall(vnTour, pD, false)}}},
		}},
		{"pin step's one try fails: goodbye", pE, vnTour, "acme", []flowTurn{tourStart,
			{"1", want{inFlow("tour", 1, "pin"), "flow:tour:1:pin:0", []wire.Action{tourPIN}}},
			{"4321", want{inFlow("tour", 1, "pin"), "flow:tour:1:pin:1", goodbye}},
		}},
		{"play into a masking step: connected after the file", pB, vnTour, "acme", []flowTurn{tourStart,
			{"2", want{connectInFlow("tour", 1, "mask2", fx.tourPlain.ID), "flow:tour:1:mask2:0:" + fx.tourPlain.ID,
				[]wire.Action{tourNotice, wire.MakeCall(vnTour, pA, false)}}},
		}},
		{"play into a masking step out of session: the number's policy after the file", pE, vnTour, "acme", []flowTurn{tourStart,
			{"2", want{wire.Verdict{Outcome: wire.OutcomeForward, Policy: wire.PolicyNumber}, "forward:number",
				[]wire.Action{tourNotice, wire.SayAction(tourForwardSay), wire.MakeCall(vnTour, tourForward, false)}}},
			{"", followUpWant},
		}},
		{"transfer without an announcement, recorded", pE, vnTour, "acme", []flowTurn{tourStart,
			{"3", want{connectInFlow("tour", 1, "support", ""), "flow:tour:1:support:0", []wire.Action{wire.MakeCall(vnTour, supportLine, true)}}},
		}},
		{"hangup without a message, a two-key option", pE, vnTour, "acme", []flowTurn{tourStart,
			{"*0", want{inFlow("tour", 1, "bye"), "flow:tour:1:bye:0", []wire.Action{wire.Hangup()}}},
		}},
		{"hangup option ended by hash", pE, vnTour, "acme", []flowTurn{tourStart,
			{"9#", want{inFlow("tour", 1, "bye"), "flow:tour:1:bye:0", []wire.Action{wire.Hangup()}}},
		}},

		// A sub-account's default flow, starting with a masking step.
		{"default flow: masking connects a participant", pA, vnBetaFlow, "beta", []flowTurn{
			{"", want{connectInFlow("beta-flow", 1, "route", fx.betaSession.ID), "flow:beta-flow:1:route:0:" + fx.betaSession.ID,
				[]wire.Action{wire.MakeCall(vnBetaFlow, pB, false)}}},
			{"", followUpWant},
		}},
		{"default flow: anyone else hears the message", pE, vnBetaFlow, "beta", []flowTurn{
			{"", want{inFlow("beta-flow", 1, "closed"), "flow:beta-flow:1:closed:0", []wire.Action{say("We are closed."), wire.Hangup()}}},
		}},

		// Without a flow: number masking as before.
		{"no flow: masking", pA, vnNoFlow, "acme", []flowTurn{
			{"", want{wire.Verdict{Outcome: wire.OutcomeConnect, MaskingSessionID: fx.plain.ID}, fx.plain.ID, []wire.Action{wire.MakeCall(vnNoFlow, pB, false)}}},
			{"", followUpWant},
		}},
		{"no flow: out of session", pE, vnNoFlow, "acme", []flowTurn{
			{"", want{wire.Verdict{Outcome: wire.OutcomeOutOfSession, Policy: wire.PolicyDefault}, wire.ClientActionOutOfSession,
				outOfSessionFlow(decider.DefaultOutOfSession)}},
			{"", followUpWant},
		}},
	}
	for i := range scripts {
		t.Run(scripts[i].name, func(t *testing.T) { scripts[i].run(t, d) })
	}
	if t.Failed() {
		return
	}
	// No state was stale.
	for reason, results := range flowRestarts(t, d.reg) {
		for result, n := range results {
			if n != 0 {
				t.Errorf("callflow_flow_restarts_total{reason=%q,result=%q} = %v, want 0", reason, result, n)
			}
		}
	}
}

// flowRestarts reads callflow_flow_restarts_total by reason and result.
func flowRestarts(t testing.TB, reg *prometheus.Registry) map[string]map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "callflow_flow_restarts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if out[labels["reason"]] == nil {
				out[labels["reason"]] = map[string]float64{}
			}
			out[labels["reason"]][labels["result"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

// counterValue reads the series of counter name whose label is value.
func counterValue(t testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
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
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

func TestFlowMetricsPreregistered(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	decider.NewMetrics(reg)
	got := flowRestarts(t, reg)
	reasons := []string{"undecodable", "not_attached", "version_gone", "step_missing", "step_unusable"}
	if len(got) != len(reasons) {
		t.Errorf("reasons %v, want %v", got, reasons)
	}
	for _, reason := range reasons {
		for _, result := range []string{"restarted", "ended"} {
			if n, ok := got[reason][result]; !ok || n != 0 {
				t.Errorf("callflow_flow_restarts_total{reason=%q,result=%q} = %v, %v", reason, result, n, ok)
			}
		}
	}
	if v := counterValue(t, reg, "callflow_decider_requests_total", "outcome", wire.OutcomeFlow); v != 0 {
		t.Errorf("outcome flow = %v", v)
	}
}

func TestFlowStaleStates(t *testing.T) {
	fx := newFlowFixture(t, session.Config{})
	d := fx.startDecider(t, fx.st, "")
	restarted := want{inFlow("main-menu", 1, "welcome"), "flow:main-menu:1:welcome:0:r", []wire.Action{mmWelcome}}
	tests := []struct {
		name        string
		destination string
		sub         string
		source      string
		status      string // default ACTION_COMPLETED
		id, dtmf    string
		want        want
		reason      string // counted in callflow_flow_restarts_total; "" for none
		result      string
	}{
		{"undecodable", vnMenu, "acme", pE, "", "flow:main-menu", "1", restarted, "undecodable", "restarted"},
		{"undecodable: a field too many", vnMenu, "acme", pE, "", "flow:main-menu:1:welcome:0:r:x", "1", restarted, "undecodable", "restarted"},
		{"undecodable: tries not canonical", vnMenu, "acme", pE, "", "flow:main-menu:1:welcome:01", "1", restarted, "undecodable", "restarted"},
		{"undecodable on a number without a flow", vnNoFlow, "acme", pA, "", "flow:?", "", endedWant, "undecodable", "ended"},
		{"version never kept", vnMenu, "acme", pE, "", "flow:main-menu:7:welcome:0", "1", restarted, "version_gone", "restarted"},
		{"version gone after a restart", vnMenu, "acme", pE, "", "flow:main-menu:7:welcome:0:r", "1", endedWant, "version_gone", "ended"},
		{"step missing", vnMenu, "acme", pE, "", "flow:main-menu:1:nowhere:0", "1", restarted, "step_missing", "restarted"},
		{"step missing after a restart", vnMenu, "acme", pE, "", "flow:main-menu:1:nowhere:2:r", "", endedWant, "step_missing", "ended"},
		{"another number's flow: never its transfer", vnMenu, "acme", pE, "", "flow:tour:1:choose:0", "3", restarted, "not_attached", "restarted"},
		{"another sub-account's flow: the number's restarts", vnBetaFlow, "beta", pE, "", "flow:main-menu:1:welcome:0", "1",
			want{inFlow("beta-flow", 1, "closed"), "flow:beta-flow:1:closed:0:r", []wire.Action{say("We are closed."), wire.Hangup()}}, "not_attached", "restarted"},
		{"a flow on a number without one", vnNoFlow, "acme", pA, "", "flow:main-menu:1:welcome:0", "1", endedWant, "not_attached", "ended"},
		{"a flow's state, the call's sub-account elsewhere", vnNoFlow, "beta", pA, "", "flow:beta-flow:1:route:0", "", endedWant, "not_attached", "ended"},
		{"unusable number called", "anonymous", "acme", pE, "", "flow:main-menu:1:welcome:0", "1", endedWant, "not_attached", "ended"},
		{"restarted, unusable number", "", "acme", pE, "", "flow:main-menu:1:welcome:0:r", "1", endedWant, "not_attached", "ended"},

		// States that decode and fit go on, whatever they claim.
		{"a restarted call goes on, marked", vnMenu, "acme", pE, "", "flow:main-menu:1:welcome:0:r", "1",
			want{connectInFlow("main-menu", 1, "sales", ""), "flow:main-menu:1:sales:0:r", mmSales}, "", ""},
		{"a restarted call fails a try, marked", vnMenu, "acme", pE, "", "flow:main-menu:1:welcome:1:r", "7",
			want{inFlow("main-menu", 1, "welcome"), "flow:main-menu:1:welcome:2:r", []wire.Action{mmWelcome}}, "", ""},
		{"a state with any callStatus", vnMenu, "acme", pE, "CALL_RECEIVED", "flow:main-menu:1:welcome:0", "2", driverAt(0), "", ""},
		{"a state without callStatus", vnMenu, "acme", pE, "-", "flow:main-menu:1:welcome:0", "2", driverAt(0), "", ""},
		// Tries used up: the call was ended at the step (no onFailure).
		{"the VCA after the goodbye of a menu", vnTour, "acme", pE, "", "flow:tour:1:choose:2", "1", followUpWant, "", ""},
		{"tries beyond the step's", vnMenu, "acme", pE, "", "flow:main-menu:1:welcome:99", "7", followUpWant, "", ""},
		{"tries beyond the step's, a valid choice", vnMenu, "acme", pE, "", "flow:main-menu:1:welcome:42", "1", followUpWant, "", ""},
		{"tries beyond a pin's", vnTour, "acme", pE, "", "flow:tour:1:pin:99", "4321", followUpWant, "", ""},
		{"the VCA after a pin connect", vnMenu, "acme", pB, "", "flow:main-menu:1:driver:0:" + fx.driver.ID, "", followUpWant, "", ""},
		{"a session in a state where none connects", vnMenu, "acme", pB, "", "flow:main-menu:1:welcome:0:" + fx.driver.ID, "1", followUpWant, "", ""},
		{"the VCA after a transfer", vnMenu, "acme", pE, "", "flow:main-menu:1:sales:0", "1", followUpWant, "", ""},
		{"the VCA after a hangup step", vnMenu, "acme", pE, "", "flow:main-menu:1:bye:0", "", followUpWant, "", ""},

		// Not flow states: as without flows.
		{"follow-up of a non-flow answer on a flow number", vnMenu, "acme", pE, "", wire.ClientActionOutOfSession, "1", followUpWant, "", ""},
		{"follow-up without a clientActionId on a flow number", vnMenu, "acme", pE, "", "", "1", followUpWant, "", ""},
		{"follow-up of a masking connect on a flow number", vnMenu, "acme", pE, "", fx.plain.ID, "", followUpWant, "", ""},
		{"a new call with a damaged state starts the flow", vnMenu, "acme", pE, "CALL_RECEIVED", "flow:main-menu:x", "1", welcomeAt(0), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := flowRestarts(t, d.reg)
			req := &wire.DecideRequest{EventID: "e", CallID: "c", SessionID: "s", SubAccountID: tt.sub, CallStatus: "ACTION_COMPLETED",
				Source: tt.source, Destination: tt.destination, ClientActionID: tt.id, DTMF: tt.dtmf}
			switch tt.status {
			case "":
			case "-":
				req.CallStatus = ""
			default:
				req.CallStatus = tt.status
			}
			body, v := d.decide(t, req)
			checkFlowAnswer(t, body, v, tt.want)
			after := flowRestarts(t, d.reg)
			for reason, results := range after {
				for result, n := range results {
					want := before[reason][result]
					if reason == tt.reason && result == tt.result {
						want += 2 // asked in process and over NATS
					}
					if n != want {
						t.Errorf("callflow_flow_restarts_total{reason=%q,result=%q} = %v, want %v", reason, result, n, want)
					}
				}
			}
		})
	}
}

func TestFlowExactJSON(t *testing.T) {
	fx := newFlowFixture(t, session.Config{})
	p := decider.NewPolicy(fx.st, decider.DefaultOutOfSession)
	tests := []struct {
		name string
		req  wire.DecideRequest
		want string
	}{
		{"menu prompt", wire.DecideRequest{Source: pE, Destination: vnMenu[1:], SubAccountID: "acme", CallStatus: "CALL_RECEIVED"},
			`{"clientActionId":"flow:main-menu:1:welcome:0","callflow":[{"action":"sayAndCapture","params":{"text":"For sales press 1. For your driver press 2.","voiceProfile":"en-US-ZiraRUS","minDigits":1,"maxDigits":1,"overallTimeout":5000,"completeOnHash":true,"noOfTries":1}}]}`},
		{"transfer", wire.DecideRequest{Source: pE, Destination: vnMenu, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:main-menu:1:welcome:1", DTMF: "1"},
			`{"clientActionId":"flow:main-menu:1:sales:0","callflow":[{"action":"say","params":{"text":"Connecting you to sales.","voiceProfile":"en-US-ZiraRUS"}},{"action":"makeCall","params":{"source":"+6568340001","destination":"+6560000001"}}]}`},
		{"pin prompt", wire.DecideRequest{Source: pE, Destination: vnMenu, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:main-menu:1:welcome:0", DTMF: "2"},
			`{"clientActionId":"flow:main-menu:1:driver:0","callflow":[{"action":"sayAndCapture","params":{"text":"Enter your order PIN, then hash.","voiceProfile":"en-US-ZiraRUS","minDigits":4,"maxDigits":8,"overallTimeout":10000,"completeOnHash":true,"noOfTries":1}}]}`},
		{"pin connect", wire.DecideRequest{Source: pB[1:], Destination: vnMenu[1:], SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:main-menu:1:driver:1", DTMF: "1234#"},
			`{"clientActionId":"flow:main-menu:1:driver:1:` + fx.driver.ID + `","callflow":[{"action":"say","params":{"text":"Connecting you to your driver.","voiceProfile":"en-US-ZiraRUS"}},{"action":"makeCall","params":{"source":"+6568340001","destination":"+6512345678","callRecording":true}}]}`},
		{"onFailure", wire.DecideRequest{Source: pE, Destination: vnMenu, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:main-menu:1:welcome:2"},
			`{"clientActionId":"flow:main-menu:1:bye:0","callflow":[{"action":"say","params":{"text":"Goodbye.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}`},
		{"play into a file menu", wire.DecideRequest{Source: pE, Destination: vnTour, SubAccountID: "acme"},
			`{"clientActionId":"flow:tour:1:choose:0","callflow":[{"action":"say","params":{"text":"Welcome to Acme.","voiceProfile":"en-US-ZiraRUS"}},{"action":"playFile","params":{"fileUrl":"https://media.example.com/menu.mp3"}},{"action":"sayAndCapture","params":{"text":"Press 1 to talk, 2 for news, 3 for support, 9 to leave.","voiceProfile":"en-US-ZiraRUS","minDigits":1,"maxDigits":2,"overallTimeout":8000,"completeOnHash":true,"noOfTries":1}}]}`},
		{"retry", wire.DecideRequest{Source: pE, Destination: vnTour, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:tour:1:choose:0", DTMF: "5"},
			`{"clientActionId":"flow:tour:1:choose:1","callflow":[{"action":"say","params":{"text":"Sorry, that is not an option.","voiceProfile":"en-US-ZiraRUS"}},{"action":"playFile","params":{"fileUrl":"https://media.example.com/menu.mp3"}},{"action":"sayAndCapture","params":{"text":"Press 1 to talk, 2 for news, 3 for support, 9 to leave.","voiceProfile":"en-US-ZiraRUS","minDigits":1,"maxDigits":2,"overallTimeout":8000,"completeOnHash":true,"noOfTries":1}}]}`},
		{"tries used up without onFailure", wire.DecideRequest{Source: pE, Destination: vnTour, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:tour:1:choose:1"},
			`{"clientActionId":"flow:tour:1:choose:2","callflow":[{"action":"say","params":{"text":"Sorry, we could not complete your call. Goodbye.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}`},
		{"file, then the number's policy", wire.DecideRequest{Source: pE, Destination: vnTour, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:tour:1:choose:0", DTMF: "2"},
			`{"clientActionId":"forward:number","callflow":[{"action":"playFile","params":{"fileUrl":"https://media.example.com/notice.wav","repetition":2}},{"action":"say","params":{"text":"Connecting you to reception.","voiceProfile":"en-GB-HazelRUS"}},{"action":"makeCall","params":{"source":"+6568340002","destination":"+6560000003"}}]}`},
		{"masking step connect", wire.DecideRequest{Source: pA, Destination: vnTour, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:tour:1:choose:0", DTMF: "1"},
			`{"clientActionId":"flow:tour:1:mask:0:` + fx.tourPlain.ID + `","callflow":[{"action":"makeCall","params":{"source":"+6568340002","destination":"+6587654321"}}]}`},
		{"transfer, recorded", wire.DecideRequest{Source: pE, Destination: vnTour, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:tour:1:choose:0", DTMF: "3"},
			`{"clientActionId":"flow:tour:1:support:0","callflow":[{"action":"makeCall","params":{"source":"+6568340002","destination":"+6560000002","callRecording":true}}]}`},
		{"restart", wire.DecideRequest{Source: pE, Destination: vnMenu, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:main-menu:9:welcome:0", DTMF: "1"},
			`{"clientActionId":"flow:main-menu:1:welcome:0:r","callflow":[{"action":"sayAndCapture","params":{"text":"For sales press 1. For your driver press 2.","voiceProfile":"en-US-ZiraRUS","minDigits":1,"maxDigits":1,"overallTimeout":5000,"completeOnHash":true,"noOfTries":1}}]}`},
		{"ended after a restart", wire.DecideRequest{Source: pE, Destination: vnMenu, SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:main-menu:9:welcome:0:r", DTMF: "1"},
			`{"clientActionId":"follow-up","callflow":[{"action":"say","params":{"text":"Sorry, we could not complete your call. Goodbye.","voiceProfile":"en-US-ZiraRUS"}},{"action":"hangup"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice (compiled, then from the cache), and appended after
			// what dst holds.
			for i := range 2 {
				body, v := p.Decide([]byte("prefix:"), &tt.req, time.Now())
				if got, ok := strings.CutPrefix(string(body), "prefix:"); !ok || got != tt.want {
					t.Errorf("call %d: Decide =\n%s\nwant\nprefix:%s", i+1, body, tt.want)
				}
				checkVerdict(t, body[len("prefix:"):], v)
			}
		})
	}
}

// TestFlowConnectsCounted: a pin step's connect and a masking step's are
// counted in their session after the answer, as masking connects are; a
// transfer names no session and counts nothing.
func TestFlowConnectsCounted(t *testing.T) {
	fx := newFlowFixture(t, session.Config{})
	d := fx.startDecider(t, fx.st, "")
	reqs := []struct {
		id, dtmf, source, destination string
		outcome                       string
	}{
		{"flow:main-menu:1:driver:0", "1234#", pB, vnMenu, wire.OutcomeConnect},
		{"flow:tour:1:choose:0", "1", pA, vnTour, wire.OutcomeConnect},
		{"flow:tour:1:choose:0", "3", pA, vnTour, wire.OutcomeConnect}, // the transfer
	}
	for _, r := range reqs {
		// Each is decided twice: in process and over NATS.
		_, v := d.decide(t, &wire.DecideRequest{SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", Source: r.source, Destination: r.destination,
			ClientActionID: r.id, DTMF: r.dtmf})
		if v.Outcome != r.outcome {
			t.Fatalf("%s %s: %+v", r.id, r.dtmf, v)
		}
	}
	natstest.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, s := range []session.Session{fx.driver, fx.tourPlain} {
			got, err := fx.st.Get(testContext(t), s.ID)
			if err != nil {
				return err
			}
			if got.CallCount != 2 {
				return fmt.Errorf("session on %s: callCount %d, want 2", s.VirtualNumber, got.CallCount)
			}
		}
		return nil
	})
	if n := counterValue(t, d.reg, "callflow_session_updates_total", "result", "recorded"); n != 4 {
		t.Errorf("recorded %v calls, want 4", n)
	}
	for _, s := range []session.Session{fx.shared, fx.tourPinned} {
		if got, err := fx.st.Get(testContext(t), s.ID); err != nil || got.CallCount != 0 {
			t.Errorf("session %s: callCount %d, %v; want 0", s.ID, got.CallCount, err)
		}
	}
}

// oddSessions is a real store that also holds, for vnOdd, a flow the store
// itself would refuse: one whose start plays a file over plain http,
// which 8x8's rules refuse. The store and 8x8's rules agree today; the
// engine still checks every step it compiles against the latter.
type oddSessions struct {
	*session.Store
	odd *session.Flow
}

func (o oddSessions) FlowFor(virtual, subAccount string) (*session.Flow, bool) {
	if virtual == vnOdd {
		return o.odd, true
	}
	return o.Store.FlowFor(virtual, subAccount)
}

func (o oddSessions) FlowVersion(id string, version uint64) (*session.Flow, bool) {
	if id == o.odd.ID && version == o.odd.Version {
		return o.odd, true
	}
	return o.Store.FlowVersion(id, version)
}

// TestFlowUnusableStep: a step 8x8 could not carry out ends the call
// politely where it is, and is counted; the flow's other steps still work.
func TestFlowUnusableStep(t *testing.T) {
	fx := newFlowFixture(t, session.Config{})
	odd := &session.Flow{ID: "odd", SubAccountID: "acme", Start: "intro", Version: 1, Steps: map[string]session.Step{
		"intro": {Play: &session.PlayStep{Prompt: session.Prompt{PlayFile: &wire.PlayFile{FileURL: "http://media.example.com/intro.mp3"}}, Next: "menu"}},
		"menu": {Menu: &session.MenuStep{Prompt: session.Prompt{Say: &wire.Say{Text: "Press 1."}}, MaxDigits: 1, TimeoutSeconds: 5, Tries: 1,
			Options: map[string]string{"1": "bye"}}},
		"bye": {Hangup: &session.HangupStep{}},
	}}
	reg := prometheus.NewRegistry()
	svc := startDecider(t, fx.srv, oddSessions{fx.st, odd}, decider.Config{Metrics: decider.NewMetrics(reg)})
	client, _ := natstest.Connect(t, fx.srv)
	d := &flowDecider{svc: svc, client: client, subject: decider.DefaultSubject, reg: reg}
	tests := []struct {
		name string
		req  wire.DecideRequest
		want want
	}{
		{"the unusable start", wire.DecideRequest{CallStatus: "CALL_RECEIVED", Source: pE, Destination: vnOdd, SubAccountID: "acme"},
			want{inFlow("odd", 1, "intro"), "flow:odd:1:intro:0", goodbye}},
		{"a usable step of the flow", wire.DecideRequest{CallStatus: "ACTION_COMPLETED", Source: pE, Destination: vnOdd, SubAccountID: "acme",
			ClientActionID: "flow:odd:1:menu:0", DTMF: "1"},
			want{inFlow("odd", 1, "bye"), "flow:odd:1:bye:0", []wire.Action{wire.Hangup()}}},
		{"the VCA after the goodbye", wire.DecideRequest{CallStatus: "ACTION_COMPLETED", Source: pE, Destination: vnOdd, SubAccountID: "acme",
			ClientActionID: "flow:odd:1:intro:0"}, followUpWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, v := d.decide(t, &tt.req)
			checkFlowAnswer(t, body, v, tt.want)
		})
	}
	// The start was reached twice: in process and over NATS.
	if n := flowRestarts(t, reg)["step_unusable"]["ended"]; n != 2 {
		t.Errorf("step_unusable ended = %v, want 2", n)
	}
}

// TestFlowChangedMidCall: a flow changed through another process's store
// reaches the decider; a caller already in it finishes on the version the
// call started in, a new caller gets the new version.
func TestFlowChangedMidCall(t *testing.T) {
	fx := newFlowFixture(t, session.Config{})
	d := fx.startDecider(t, fx.st, "")
	admin := openStoreWith(t, fx.js, session.Config{})

	// A caller is at the menu of version 1.
	old := flowScript{name: "old", source: pE, destination: vnMenu, sub: "acme", turns: []flowTurn{{want: welcomeAt(0)}}}
	old.run(t, d)

	// Version 2: a new prompt; 1 now says goodbye, sales moved to 3.
	v2 := strings.NewReplacer(`For sales press 1.`, `To leave press 1.`, `"1": "sales"`, `"1": "bye", "3": "sales"`).Replace(mainMenuJSON)
	if got := putFlowJSON(t, admin, v2); got.Version != 2 {
		t.Fatalf("version %d", got.Version)
	}
	natstest.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if f, ok := fx.st.FlowFor(vnMenu, "acme"); !ok || f.Version != 2 {
			return fmt.Errorf("the decider's index has version %v of the flow", f)
		}
		return nil
	})

	// The caller of version 1 fails a try (asked the version 1 prompt),
	// then presses 1: version 1's transfer.
	prev := "flow:main-menu:1:welcome:0"
	for _, turn := range []flowTurn{{"", welcomeAt(1)}, {"1", mmSalesWant}} {
		body, v := d.decide(t, &wire.DecideRequest{SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", Source: pE, Destination: vnMenu,
			ClientActionID: prev, DTMF: turn.dtmf})
		checkFlowAnswer(t, body, v, turn.want)
		r, err := wire.ParseResponse(body)
		if err != nil {
			t.Fatal(err)
		}
		prev = r.ClientActionID
	}

	// A new caller gets version 2, on which 1 says goodbye.
	fresh := flowScript{name: "new", source: pA, destination: vnMenu, sub: "acme", turns: []flowTurn{
		{"", want{inFlow("main-menu", 2, "welcome"), "flow:main-menu:2:welcome:0",
			[]wire.Action{capture("To leave press 1. For your driver press 2.", 1, 1, 5)}}},
		{"1", want{inFlow("main-menu", 2, "bye"), "flow:main-menu:2:bye:0", mmBye}},
	}}
	fresh.run(t, d)
}

// TestFlowVersionExpires: once the version a call is in is no longer
// kept, the call restarts on the current version, once; a second stale
// state ends it.
func TestFlowVersionExpires(t *testing.T) {
	fx := newFlowFixture(t, session.Config{FlowRetention: time.Second})
	d := fx.startDecider(t, fx.st, "")
	v2 := strings.Replace(mainMenuJSON, `For sales press 1.`, `Sales: press 1.`, 1)
	putFlowJSON(t, fx.st, v2)
	natstest.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		if _, ok := fx.st.FlowVersion("main-menu", 1); ok {
			return fmt.Errorf("version 1 still kept")
		}
		return nil
	})
	v2Welcome := capture("Sales: press 1. For your driver press 2.", 1, 1, 5)
	steps := []struct {
		id     string
		want   want
		result string
	}{
		{"flow:main-menu:1:welcome:1", want{inFlow("main-menu", 2, "welcome"), "flow:main-menu:2:welcome:0:r", []wire.Action{v2Welcome}}, "restarted"},
		{"flow:main-menu:1:welcome:1:r", endedWant, "ended"},
	}
	for _, s := range steps {
		before := flowRestarts(t, d.reg)["version_gone"][s.result]
		body, v := d.decide(t, &wire.DecideRequest{SubAccountID: "acme", CallStatus: "ACTION_COMPLETED", Source: pE, Destination: vnMenu,
			ClientActionID: s.id, DTMF: "1"})
		checkFlowAnswer(t, body, v, s.want)
		if after := flowRestarts(t, d.reg)["version_gone"][s.result]; after != before+2 {
			t.Errorf("%s: version_gone %s went from %v to %v, want +2", s.id, s.result, before, after)
		}
	}
}

// TestFlowAnyDeciderAnswers: where a caller is travels in the
// clientActionId alone, so a call goes on across deciders, including ones
// started (on a fresh index) after the call began.
func TestFlowAnyDeciderAnswers(t *testing.T) {
	fx := newFlowFixture(t, session.Config{})
	d := fx.startDecider(t, fx.st, "callflow.decide.0")
	s := flowScript{name: "pin", source: pB, destination: vnMenu, sub: "acme", turns: []flowTurn{
		{"", welcomeAt(0)},
		{"7", welcomeAt(1)},
		{"2", driverAt(0)},
		{"1234", want{connectInFlow("main-menu", 1, "driver", fx.driver.ID), "flow:main-menu:1:driver:0:" + fx.driver.ID,
			[]wire.Action{wire.SayAction(voiced(driverGreeting)), wire.MakeCall(vnMenu, pA, true)}}},
	}}
	prev := ""
	for i, turn := range s.turns {
		if i > 0 {
			// The decider that answered the last turn stops; a new one,
			// with an index of its own (a process started meanwhile),
			// answers this one, on a subject of its own so that no
			// request reaches the stopped one.
			if err := d.svc.Stop(); err != nil {
				t.Fatal(err)
			}
			d = fx.startDecider(t, openStoreWith(t, fx.js, session.Config{}), fmt.Sprintf("callflow.decide.%d", i))
		}
		body, v := d.decide(t, turnRequest(&s, i, prev))
		checkFlowAnswer(t, body, v, turn.want)
		r, err := wire.ParseResponse(body)
		if err != nil {
			t.Fatal(err)
		}
		prev = r.ClientActionID
	}
}

// flowBenchCases attaches the menu to numbers of their own, with a
// session with a pin on each, and returns the flow cases of
// BenchmarkDecide: the menu prompt of a new call, the digit that leads to
// the pin prompt, the pin that connects.
func flowBenchCases(b *testing.B, st *session.Store) []benchCase {
	b.Helper()
	putFlowJSON(b, st, mainMenuJSON)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const numbers = 100
	acme, flow := "acme", "main-menu"
	type line struct{ number, driver, customer, pin string }
	lines := make([]line, numbers)
	for i := range lines {
		l := line{fmt.Sprintf("+655%07d", i), fmt.Sprintf("+654%07d", i), fmt.Sprintf("+653%07d", i), fmt.Sprintf("%04d", 1000+i)}
		if _, _, err := st.PutNumber(ctx, l.number, session.NumberRequest{SubAccountID: &acme, Flow: &flow}, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Create(ctx, session.Request{VirtualNumber: l.number, Participants: []string{l.driver, l.customer}, PIN: l.pin,
			Greeting: &driverGreeting}); err != nil {
			b.Fatal(err)
		}
		lines[i] = l
	}
	reqs := func(f func(l line, i int) wire.DecideRequest) []wire.DecideRequest {
		out := make([]wire.DecideRequest, 1024)
		for i := range out {
			out[i] = f(lines[(i*31)%numbers], i)
			out[i].EventID, out[i].CallID, out[i].SessionID, out[i].SubAccountID = "e", "c", "s", acme
		}
		return out
	}
	return []benchCase{
		{"flow_menu_prompt", reqs(func(l line, i int) wire.DecideRequest {
			return wire.DecideRequest{CallStatus: "CALL_RECEIVED", Source: l.customer, Destination: l.number}
		}), wire.OutcomeFlow},
		{"flow_menu_digits", reqs(func(l line, i int) wire.DecideRequest {
			return wire.DecideRequest{CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:main-menu:1:welcome:0", DTMF: "2",
				Source: l.customer, Destination: l.number}
		}), wire.OutcomeFlow},
		{"flow_pin_connect", reqs(func(l line, i int) wire.DecideRequest {
			return wire.DecideRequest{CallStatus: "ACTION_COMPLETED", ClientActionID: "flow:main-menu:1:driver:0", DTMF: l.pin + "#",
				Source: l.customer, Destination: l.number}
		}), wire.OutcomeConnect},
	}
}
